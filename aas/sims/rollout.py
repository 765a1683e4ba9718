"""One evaluation episode in LIBERO, in the published protocol or planner-in-the-loop.

Protocol (OpenVLA, OpenVLA-OFT and CLIP-RT+ LIBERO evaluations): reset to
the task's fixed init state, 10 settle steps with a zero motion and an open
gripper, then up to ``max_steps`` policy steps; the policy is queried for a
chunk and ``execute_steps`` actions of it (all, by default) run before the
next query; the episode succeeds as soon as the BDDL goal holds.

In planner-in-the-loop mode the policy gets one atomic instruction per plan
step. The episode moves to the next step when the step's effect holds in the
simulator or the step's budget runs out; after a failed step the planner may
re-plan from the event log.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from aas.planning import PlanError, apply_step, initial_state, observable_effects
from aas.policies.base import Policy
from aas.policies.planner import Event, Planner
from aas.schema import Step
from aas.sims.env import LiberoEnv
from aas.sims.eval_results import EpisodeResult

logger = logging.getLogger(__name__)

FrameCallback = Callable[[dict[str, Any], str], None]


@dataclass(frozen=True)
class RolloutConfig:
    """Settings of one episode (steps are 1/20 s control steps)."""

    max_steps: int
    settle_steps: int = 10
    # Actions of each chunk executed before the next query; None runs the whole chunk.
    execute_steps: int | None = None
    # Planner mode: environment steps each plan step may use; None splits
    # ``max_steps`` evenly over the plan.
    step_budget: int | None = None
    # Planner mode: how many times the planner may re-plan after failed steps.
    max_replans: int = 1


def step_reached(env: LiberoEnv, step: Step) -> bool:
    """Return whether a plan step's effect is true in the simulator now.

    ``grasp`` and ``take_out`` have no BDDL effect, so their effect is the
    object being held (both fingers in contact).
    """
    if step.op in ("grasp", "take_out"):
        return env.is_grasped(step.args[0])
    atoms = observable_effects(step)
    return bool(atoms) and all(env.eval_atom(atom) for atom in atoms)


class _ChunkRunner:
    """Queries the policy for chunks and hands out their actions one by one."""

    def __init__(self, policy: Policy, execute_steps: int | None) -> None:
        self.policy = policy
        self.execute_steps = execute_steps
        self.queue: list[np.ndarray] = []

    def next_action(self, obs: dict[str, Any], instruction: str) -> np.ndarray:
        if not self.queue:
            chunk = np.asarray(self.policy.predict(obs, instruction), dtype=np.float64)
            if chunk.ndim == 1:
                chunk = chunk[None, :]
            limit = self.execute_steps or len(chunk)
            self.queue = list(chunk[:limit])
        return self.queue.pop(0)

    def flush(self) -> None:
        self.queue = []


def run_episode(
    env: LiberoEnv,
    policy: Policy,
    init_state_index: int,
    seed: int,
    config: RolloutConfig,
    planner: Planner | None = None,
    scene: Any = None,
    on_frame: FrameCallback | None = None,
) -> EpisodeResult:
    """Run one episode and return its result (exceptions propagate to the caller)."""
    started = time.perf_counter()
    np.random.seed(seed)
    obs = env.reset(init_state=init_state_index, settle_steps=config.settle_steps)
    policy.attach(env)
    policy.reset()
    runner = _ChunkRunner(policy, config.execute_steps)
    instruction = env.spec.language

    if planner is None:
        success, steps = False, 0
        while steps < config.max_steps:
            action = runner.next_action(obs, instruction)
            obs, _, done, _ = env.step(action)
            steps += 1
            if on_frame is not None:
                on_frame(obs, instruction)
            if done:
                success = True
                break
        step_results: tuple[dict[str, Any], ...] = ()
    else:
        success, steps, step_results = _run_with_planner(
            env, runner, planner, scene, config, obs, on_frame
        )

    return EpisodeResult(
        suite=env.spec.suite,
        task_index=env.spec.index,
        task=env.spec.name,
        init_state_index=int(init_state_index),
        seed=int(seed),
        success=bool(success),
        steps=int(steps),
        wall_seconds=time.perf_counter() - started,
        step_results=step_results,
    )


def _run_with_planner(
    env: LiberoEnv,
    runner: _ChunkRunner,
    planner: Planner,
    scene: Any,
    config: RolloutConfig,
    obs: dict[str, Any],
    on_frame: FrameCallback | None,
) -> tuple[bool, int, tuple[dict[str, Any], ...]]:
    # The symbolic state follows the steps whose effect was reached in the
    # simulator, so a re-plan starts from what the robot achieved.
    planner.reset(scene)
    state = initial_state(scene)
    pending = list(planner.plan(scene, state).steps)
    budget = config.step_budget or max(1, config.max_steps // max(1, len(pending)))
    results: list[dict[str, Any]] = []
    replans = 0
    steps = 0
    success = False

    while pending and steps < config.max_steps and not success:
        step = pending.pop(0)
        planner.record(Event("step_started", step))
        runner.flush()
        used = 0
        reached = False
        while used < budget and steps < config.max_steps:
            action = runner.next_action(obs, step.instruction or env.spec.language)
            obs, _, done, _ = env.step(action)
            steps += 1
            used += 1
            if on_frame is not None:
                on_frame(obs, step.instruction)
            success = success or done
            if success or step_reached(env, step):
                reached = True
                break
        results.append(
            {
                "step": str(step),
                "instruction": step.instruction,
                "reached": reached,
                "t": steps,
                "steps_used": used,
            }
        )
        if reached:
            planner.record(Event("effect_reached", step))
            try:
                state = apply_step(scene, state, step)
            except PlanError as exc:
                logger.warning(
                    "%s: reached step %s is not applicable symbolically: %s",
                    env.spec.name,
                    step,
                    exc,
                )
            continue
        logger.info(
            "%s: step %s not reached within %d steps", env.spec.name, step, used
        )
        if replans < config.max_replans:
            replans += 1
            failure = f"{step} not reached within {used} steps"
            pending = list(planner.replan(scene, state, failure).steps)
        else:
            planner.record(Event("failure", step, f"not reached within {used} steps"))

    success = success or env.check_success()
    return success, steps, tuple(results)
