"""Scripted demo generation: plan a task, run the controller, record LIBERO demos.

``generate_demos`` runs the plan-driven controller from LIBERO's fixed init
states of one task and writes the demos whose BDDL goal holds at the end into
``<output_dir>/<suite>/<task name>_demo.hdf5`` in LIBERO's original layout.
Each finished init state (kept, failed or raised) is recorded in
``<output_dir>/<suite>/<task name>.status.json`` right away, and each kept
demo in its own part file, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import json
import logging
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from aas.demo import (
    ACTIONS,
    AGENTVIEW,
    EE_ORI,
    EE_POS,
    EE_STATES,
    EYE_IN_HAND,
    GRIPPER_STATES,
    JOINT_STATES,
    ROBOT_STATES,
    STATES,
    Demo,
)
from aas.schema import Plan, write_atomic
from aas.sims.controller import EpisodeResult, run_plan
from aas.sims.env import DEFAULT_CAMERA_SIZE, LiberoEnv, make_env
from aas.sims.tasks import TaskSpec

logger = logging.getLogger(__name__)

REWARDS = "rewards"
DONES = "dones"
AGENTVIEW_CAMERA = "agentview"
EYE_IN_HAND_CAMERA = "robot0_eye_in_hand"
# LIBERO's demo files store images as MuJoCo renders them (OpenGL convention,
# rows bottom-up), and this file attribute records that.
IMAGE_CONVENTION = "opengl"
STATUS_KEPT = "kept"
STATUS_FAILED = "failed"
STATUS_ERROR = "error"
# Frames one episode may take; LIBERO's longest evaluation horizon is 520.
DEFAULT_MAX_FRAMES = 900


@dataclass
class EpisodeRecord:
    """Per-frame arrays of one episode, appended while the controller runs.

    Frame ``t`` pairs the observation and simulator state before action ``t``
    with that action and the reward and done flag after it, as in LIBERO's files.
    """

    actions: list[np.ndarray] = field(default_factory=list)
    states: list[np.ndarray] = field(default_factory=list)
    robot_states: list[np.ndarray] = field(default_factory=list)
    gripper_states: list[np.ndarray] = field(default_factory=list)
    joint_states: list[np.ndarray] = field(default_factory=list)
    ee_pos: list[np.ndarray] = field(default_factory=list)
    ee_ori: list[np.ndarray] = field(default_factory=list)
    agentview: list[np.ndarray] = field(default_factory=list)
    eye_in_hand: list[np.ndarray] = field(default_factory=list)
    rewards: list[float] = field(default_factory=list)
    dones: list[bool] = field(default_factory=list)

    def add(
        self,
        obs: dict[str, Any],
        state: np.ndarray,
        action: np.ndarray,
        reward: float,
        done: bool,
    ) -> None:
        import robosuite.utils.transform_utils as T

        self.actions.append(np.asarray(action, dtype=np.float64))
        self.states.append(state)
        gripper = np.asarray(obs["robot0_gripper_qpos"], dtype=np.float64)
        eef_pos = np.asarray(obs["robot0_eef_pos"], dtype=np.float64)
        eef_quat = np.asarray(obs["robot0_eef_quat"], dtype=np.float64)
        self.robot_states.append(np.concatenate([gripper, eef_pos, eef_quat]))
        self.gripper_states.append(gripper)
        self.joint_states.append(np.asarray(obs["robot0_joint_pos"], dtype=np.float64))
        self.ee_pos.append(eef_pos)
        self.ee_ori.append(T.quat2axisangle(eef_quat))
        if f"{AGENTVIEW_CAMERA}_image" in obs:
            self.agentview.append(
                np.asarray(obs[f"{AGENTVIEW_CAMERA}_image"], dtype=np.uint8)
            )
        if f"{EYE_IN_HAND_CAMERA}_image" in obs:
            self.eye_in_hand.append(
                np.asarray(obs[f"{EYE_IN_HAND_CAMERA}_image"], dtype=np.uint8)
            )
        self.rewards.append(float(reward))
        self.dones.append(bool(done))

    def arrays(self) -> dict[str, np.ndarray]:
        """Return the datasets keyed by LIBERO dataset path."""
        dones = np.asarray(self.dones, dtype=np.uint8)
        if len(dones):
            dones[-1] = 1
        ee_pos = np.stack(self.ee_pos)
        ee_ori = np.stack(self.ee_ori)
        out = {
            ACTIONS: np.stack(self.actions),
            STATES: np.stack(self.states),
            ROBOT_STATES: np.stack(self.robot_states),
            REWARDS: np.asarray(self.rewards, dtype=np.uint8),
            DONES: dones,
            GRIPPER_STATES: np.stack(self.gripper_states),
            JOINT_STATES: np.stack(self.joint_states),
            EE_POS: ee_pos,
            EE_ORI: ee_ori,
            EE_STATES: np.concatenate([ee_pos, ee_ori], axis=1),
        }
        if self.agentview:
            out[AGENTVIEW] = np.stack(self.agentview)
        if self.eye_in_hand:
            out[EYE_IN_HAND] = np.stack(self.eye_in_hand)
        return out


@dataclass
class DemoOutcome:
    """Outcome of one init state; ``status`` is kept, failed or error."""

    init_state: int
    status: str
    num_frames: int = 0
    seconds: float = 0.0
    error: str = ""
    steps: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "init_state": self.init_state,
            "status": self.status,
            "num_frames": self.num_frames,
            "seconds": round(self.seconds, 3),
            "error": self.error,
            "steps": self.steps,
        }


@dataclass
class GenerationReport:
    """Outcomes of one task's generation run, including outcomes loaded on resume."""

    spec: TaskSpec
    plan: Plan
    demo_file: Path | None
    outcomes: dict[int, DemoOutcome]

    @property
    def kept(self) -> int:
        return sum(o.status == STATUS_KEPT for o in self.outcomes.values())

    @property
    def success_rate(self) -> float:
        return self.kept / len(self.outcomes) if self.outcomes else 0.0


def plan_for_task(spec: TaskSpec) -> Plan:
    """Plan the task from its BDDL file with the symbolic planner."""
    from aas.bddl import parse_bddl
    from aas.planning import plan_for_scene

    return plan_for_scene(parse_bddl(spec.bddl_path))


def task_paths(output_dir: Path, spec: TaskSpec) -> tuple[Path, Path, Path]:
    """Return (demo file, status file, folder of per-demo part files) of one task."""
    folder = Path(output_dir) / spec.suite
    return (
        folder / f"{spec.name}_demo.hdf5",
        folder / f"{spec.name}.status.json",
        folder / ".parts" / spec.name,
    )


def file_meta(
    env: LiberoEnv, spec: TaskSpec, camera_size: int, render: bool
) -> dict[str, Any]:
    """File attributes of LIBERO's original layout for one task."""
    from libero.libero.envs.bddl_utils import get_problem_info

    problem_info = get_problem_info(str(spec.bddl_path))
    env_kwargs = {
        "bddl_file_name": str(spec.bddl_path),
        "robots": ["Panda"],
        "controller": "OSC_POSE",
        "control_freq": 20,
        "camera_names": list(env.camera_names),
        "camera_heights": camera_size,
        "camera_widths": camera_size,
        "has_offscreen_renderer": render,
        "use_camera_obs": render,
    }
    return {
        "env_name": problem_info["problem_name"],
        "problem_info": problem_info,
        "bddl_file_name": str(Path(spec.suite) / spec.bddl_path.name),
        "bddl_file_content": spec.bddl_path.read_text(encoding="utf-8"),
        "env_args": {
            "type": 1,
            "env_name": problem_info["problem_name"],
            "env_kwargs": env_kwargs,
        },
        "macros_image_convention": IMAGE_CONVENTION,
        "generator": "aas scripted controller",
    }


def record_episode(
    env: LiberoEnv,
    plan: Plan,
    init_state: int,
    max_frames: int = DEFAULT_MAX_FRAMES,
) -> tuple[EpisodeResult, EpisodeRecord, np.ndarray]:
    """Reset to ``init_state``, run the plan and record every frame.

    Returns:
        The controller's result, the recorded frames and the start state
        (flattened MuJoCo state after settling).
    """
    obs = env.reset(init_state)
    record = EpisodeRecord()
    start_state = env.get_sim_state()
    current = {"obs": obs, "state": start_state}

    def on_step(
        action: np.ndarray, new_obs: dict[str, Any], reward: float, done: bool, _: int
    ) -> None:
        record.add(current["obs"], current["state"], action, reward, done)
        current["obs"] = new_obs
        current["state"] = env.get_sim_state()

    result = run_plan(env, plan, on_step=on_step, max_frames=max_frames)
    return result, record, start_state


def _model_xml(env: LiberoEnv) -> str:
    try:
        return env.sim.model.get_xml()
    except AttributeError:
        return ""


def _load_status(path: Path) -> dict[int, DemoOutcome]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return {
            int(item["init_state"]): DemoOutcome(
                init_state=int(item["init_state"]),
                status=item["status"],
                num_frames=int(item.get("num_frames", 0)),
                seconds=float(item.get("seconds", 0.0)),
                error=item.get("error", ""),
                steps=list(item.get("steps", [])),
            )
            for item in data["outcomes"]
        }
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise ValueError(
            f"{path}: invalid generation status file ({exc}); delete it to regenerate the task"
        ) from exc


def _save_status(
    path: Path, spec: TaskSpec, plan: Plan, outcomes: dict[int, DemoOutcome]
) -> None:
    data = {
        "suite": spec.suite,
        "task_index": spec.index,
        "task": spec.name,
        "plan": plan.to_dict(),
        "kept": sum(o.status == STATUS_KEPT for o in outcomes.values()),
        "outcomes": [outcomes[k].to_dict() for k in sorted(outcomes)],
    }
    write_atomic(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def generate_demos(
    spec: TaskSpec,
    init_states: Iterable[int],
    output_dir: str | Path,
    plan: Plan | None = None,
    render: bool = True,
    camera_size: int = DEFAULT_CAMERA_SIZE,
    max_frames: int = DEFAULT_MAX_FRAMES,
    resume: bool = True,
    retry_failed: bool = False,
    env: LiberoEnv | None = None,
    progress: Callable[[DemoOutcome], None] | None = None,
) -> GenerationReport:
    """Generate demos of one task from the given init-state indices.

    Args:
        spec: the task.
        init_states: indices into the task's fixed init states.
        output_dir: folder that receives ``<suite>/<task>_demo.hdf5``.
        plan: the plan to execute; planned from the BDDL file when None.
        render: record ``agentview_rgb`` and ``eye_in_hand_rgb`` images;
            False records everything else, much faster.
        camera_size: image height and width in pixels.
        max_frames: frame budget of one episode (20 frames per second).
        resume: skip init states recorded in the status file.
        retry_failed: with ``resume``, run again init states that failed or raised.
        env: an environment of ``spec`` to reuse (it is not closed);
            one is built and closed here when None.
        progress: called with each new outcome.

    Returns:
        The outcome of every requested init state, and the demo file path
        (None when no demo was kept).
    """
    from aas.datasets.libero_hdf5 import open_demo_file, write_demo_file

    plan = plan if plan is not None else plan_for_task(spec)
    demo_file, status_file, parts_dir = task_paths(Path(output_dir), spec)
    outcomes = _load_status(status_file) if resume else {}
    requested = [int(i) for i in init_states]
    todo = [
        i
        for i in requested
        if i not in outcomes or (retry_failed and outcomes[i].status != STATUS_KEPT)
    ]
    logger.info(
        "%s task %d (%s): %d init states to run, %d already finished, plan %s",
        spec.suite,
        spec.index,
        spec.name,
        len(todo),
        len(requested) - len(todo),
        [str(s) for s in plan.steps],
    )

    own_env = env is None and bool(todo)
    if own_env:
        env = make_env(spec, render=render, camera_size=camera_size)
    meta = None
    try:
        for init_state in todo:
            outcome = _generate_one(
                env, spec, plan, init_state, parts_dir, max_frames, render, camera_size
            )
            outcomes[init_state] = outcome
            _save_status(status_file, spec, plan, outcomes)
            if progress is not None:
                progress(outcome)
        if env is not None:
            meta = file_meta(env, spec, camera_size, render)
    finally:
        if own_env and env is not None:
            env.close()

    kept = [i for i in sorted(outcomes) if outcomes[i].status == STATUS_KEPT]
    part_files = [
        parts_dir / f"demo_{i}.hdf5"
        for i in kept
        if (parts_dir / f"demo_{i}.hdf5").is_file()
    ]
    written = None
    if part_files and (todo or not demo_file.is_file()):
        demos: list[Demo] = []
        for part in part_files:
            loaded = open_demo_file(part)
            demos.extend(loaded.demos)
            meta = meta or loaded.meta()
        written = write_demo_file(demo_file, demos, meta)
    elif demo_file.is_file():
        written = demo_file
    return GenerationReport(
        spec, plan, written, {i: outcomes[i] for i in requested if i in outcomes}
    )


def _generate_one(
    env: LiberoEnv,
    spec: TaskSpec,
    plan: Plan,
    init_state: int,
    parts_dir: Path,
    max_frames: int,
    render: bool,
    camera_size: int,
) -> DemoOutcome:
    from aas.datasets.libero_hdf5 import write_demo_file

    started = time.monotonic()
    try:
        result, record, start_state = record_episode(env, plan, init_state, max_frames)
    except Exception as exc:  # noqa: BLE001  one broken episode must not stop the others
        logger.error("%s init state %d raised %s", spec.name, init_state, exc)
        return DemoOutcome(
            init_state,
            STATUS_ERROR,
            seconds=time.monotonic() - started,
            error=f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=5)}",
        )

    steps = [
        {
            "op": s.step.op,
            "args": list(s.step.args),
            "success": s.success,
            "attempts": s.attempts,
            "start": s.start_frame,
            "end": s.end_frame,
            "error": s.error,
        }
        for s in result.steps
    ]
    seconds = time.monotonic() - started
    if not result.goal_reached:
        reason = result.error or "all steps finished but the BDDL goal does not hold"
        logger.warning(
            "%s init state %d: demo dropped: %s", spec.name, init_state, reason
        )
        return DemoOutcome(
            init_state, STATUS_FAILED, result.num_frames, seconds, reason, steps
        )

    demo = Demo.from_arrays(
        f"demo_{init_state}",
        record.arrays(),
        instruction=spec.language,
        attrs={
            "model_file": _model_xml(env),
            "init_state": start_state,
            "init_state_index": init_state,
        },
    )
    write_demo_file(
        parts_dir / f"demo_{init_state}.hdf5",
        [demo],
        file_meta(env, spec, camera_size, render),
    )
    logger.info(
        "%s init state %d: kept demo of %d frames",
        spec.name,
        init_state,
        demo.num_frames,
    )
    return DemoOutcome(init_state, STATUS_KEPT, result.num_frames, seconds, "", steps)


def parse_init_states(text: str, available: int) -> list[int]:
    """Parse ``"0-9,12"`` style init-state selections; ``""`` or ``"all"`` selects all.

    Raises:
        ValueError: a bad token or an index outside ``[0, available)``.
    """
    text = text.strip()
    if text in ("", "all"):
        return list(range(available))
    chosen: list[int] = []
    for token in text.split(","):
        token = token.strip()
        try:
            if "-" in token:
                first, last = (int(part) for part in token.split("-", 1))
                chosen.extend(range(first, last + 1))
            else:
                chosen.append(int(token))
        except ValueError as exc:
            raise ValueError(
                f"invalid init-state selection {token!r}; use forms like 0-9,12"
            ) from exc
    for index in chosen:
        if not 0 <= index < available:
            raise ValueError(
                f"init state {index} is out of range; this task has {available} (0..{available - 1})"
            )
    return sorted(dict.fromkeys(chosen))


def select_tasks(suite: str, tasks: Sequence[str]) -> list[TaskSpec]:
    """Return the tasks named or indexed in ``tasks``, or all of the suite when empty."""
    from aas.sims.tasks import get_task, list_tasks

    if not tasks:
        return list_tasks(suite)
    return [get_task(suite, t) for t in tasks]
