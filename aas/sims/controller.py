"""The scripted plan-driven controller: runs a plan's steps with registered skills.

``run_plan`` drives one episode from the current environment state. For each
step it builds the skill registered for the step's operator, feeds the
skill's actions to the environment, enforces the skill's step budget,
checks the step's effect, and retries a failed attempt as often as the skill
allows. Every applied action passes through ``on_step`` so a recorder can
store it with the observation it produced.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from aas.schema import Plan, Step
from aas.sims.env import LiberoEnv
from aas.sims.skills import SKILLS, SkillFailure
from aas.sims.skills.base import DEFAULT_MOTION, MotionConfig

logger = logging.getLogger(__name__)

# Called after every applied action with (action [7], obs, reward, done, step_index).
StepCallback = Callable[[np.ndarray, dict[str, Any], float, bool, int], None]


@dataclass
class StepResult:
    """The outcome of one plan step.

    Attributes:
        step: the plan step.
        success: whether the step's effect held after its last attempt.
        attempts: attempts made (1 + retries used).
        frames: actions applied for this step, over all attempts.
        start_frame / end_frame: first and last frame index of the step in
            the episode (inclusive; equal when no frame was applied).
        error: the last failure message, empty on success.
    """

    step: Step
    success: bool
    attempts: int
    frames: int
    start_frame: int
    end_frame: int
    error: str = ""


@dataclass
class EpisodeResult:
    """The outcome of running a plan: per-step results and the task's goal check."""

    steps: list[StepResult] = field(default_factory=list)
    num_frames: int = 0
    goal_reached: bool = False
    error: str = ""

    @property
    def failed_step(self) -> StepResult | None:
        return next((s for s in self.steps if not s.success), None)


class UnsupportedStepError(ValueError):
    """No skill is registered for a plan step's operator."""


def check_supported(plan: Plan) -> None:
    """Raise ``UnsupportedStepError`` naming the first step without a skill."""
    for step in plan.steps:
        if step.op not in SKILLS:
            raise UnsupportedStepError(
                f"no scripted skill for operator {step.op!r} in step {step}; "
                f"skills exist for {sorted(SKILLS)}"
            )


def run_plan(
    env: LiberoEnv,
    plan: Plan,
    on_step: StepCallback | None = None,
    motion: MotionConfig = DEFAULT_MOTION,
    max_frames: int = 1500,
    stop_on_failure: bool = True,
    finish_steps: int = 10,
) -> EpisodeResult:
    """Execute ``plan`` step by step from the environment's current state.

    Args:
        env: an environment that was reset.
        plan: the steps to execute; every operator needs a registered skill.
        on_step: called after each applied action (for recording).
        motion: gains and tolerances for the skills' motion primitives.
        max_frames: episode budget in frames (20 per second).
        stop_on_failure: stop at the first step that fails after its retries.
        finish_steps: frames of zero motion after the last step, so objects
            come to rest before the goal is checked.

    Returns:
        Per-step results, the frame count and whether the BDDL goal holds.
    """
    check_supported(plan)
    result = EpisodeResult()
    frame = 0

    def apply(action: np.ndarray) -> None:
        nonlocal frame
        obs, reward, done, _ = env.step(action)
        if on_step is not None:
            on_step(np.asarray(action, dtype=np.float64), obs, reward, done, frame)
        frame += 1

    for index, step in enumerate(plan.steps):
        next_step = plan.steps[index + 1] if index + 1 < len(plan.steps) else None
        step_result = _run_step(
            env, step, next_step, apply, lambda: frame, motion, max_frames
        )
        result.steps.append(step_result)
        if not step_result.success:
            logger.warning(
                "%s: step %s failed: %s", env.spec.name, step, step_result.error
            )
            if stop_on_failure:
                result.error = f"step {step} failed: {step_result.error}"
                break
        if frame >= max_frames:
            result.error = (
                result.error or f"episode budget of {max_frames} frames used up"
            )
            break

    gripper = 1.0 if _last_gripper(result, env) else -1.0
    for _ in range(finish_steps if frame < max_frames else 0):
        apply(np.array([0, 0, 0, 0, 0, 0, gripper], dtype=np.float64))
    result.num_frames = frame
    result.goal_reached = env.check_success()
    return result


def _last_gripper(result: EpisodeResult, env: LiberoEnv) -> bool:
    # Keep the gripper closed after the run only if it was closed (holding).
    qpos = env.gripper_qpos()
    return float(abs(qpos[0] - qpos[1])) < 0.06


def _run_step(
    env: LiberoEnv,
    step: Step,
    next_step: Step | None,
    apply: Callable[[np.ndarray], None],
    current_frame: Callable[[], int],
    motion: MotionConfig,
    max_frames: int,
) -> StepResult:
    skill_cls = SKILLS[step.op]
    start = current_frame()
    error = ""
    attempts = 0
    for attempt in range(1 + skill_cls.retries):
        attempts = attempt + 1
        skill = skill_cls(step, motion, next_step=next_step)
        used = 0
        try:
            for action in skill.act(env):
                apply(action)
                used += 1
                if used >= skill.max_steps:
                    raise SkillFailure(
                        f"{step} used its budget of {skill.max_steps} frames"
                    )
                if current_frame() >= max_frames:
                    raise SkillFailure(
                        f"{step} ran past the episode budget of {max_frames} frames"
                    )
            if skill.verify(env):
                return StepResult(
                    step,
                    True,
                    attempts,
                    current_frame() - start,
                    start,
                    max(start, current_frame() - 1),
                )
            error = f"{step} finished but its effect does not hold"
        except SkillFailure as exc:
            error = str(exc)
        if current_frame() >= max_frames:
            break
        if attempt < skill_cls.retries:
            logger.info("%s: retrying %s after: %s", env.spec.name, step, error)
    return StepResult(
        step,
        False,
        attempts,
        current_frame() - start,
        start,
        max(start, current_frame() - 1),
        error,
    )
