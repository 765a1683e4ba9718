"""Policy evaluation in LIBERO with the published protocol, in parallel, resumable.

Defaults follow the LIBERO evaluations of OpenVLA, OpenVLA-OFT and CLIP-RT+:
50 trials per task, trial i starting from the task's fixed init state i,
seed 7, 10 settle steps, max steps 220 / 280 / 300 / 520 / 400 for
libero_spatial / object / goal / 10 / 90, 256 px renders, and every action
of a chunk executed before the policy is queried again.
"""

from __future__ import annotations

import logging
import os
import platform
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from aas import __version__
from aas.policies.base import PolicyConfig
from aas.sims.eval_results import (
    EpisodeLog,
    EpisodeResult,
    format_table,
    plot_success,
    summarise,
    write_eval_info,
)
from aas.sims.rollout import RolloutConfig
from aas.sims.tasks import get_task, list_tasks
from aas.sims.workers import EpisodeJob, RolloutPool, WorkerSetup

logger = logging.getLogger(__name__)

MAX_STEPS = {
    "libero_spatial": 220,
    "libero_object": 280,
    "libero_goal": 300,
    "libero_10": 520,
    "libero_90": 400,
}
PROTOCOL_SEED = 7
PROTOCOL_TRIALS = 50
PLANNER_TYPES = ("symbolic", "llm")


@dataclass
class PlannerChoice:
    """Planner for planner-in-the-loop evaluation."""

    # "symbolic" or "llm".
    type: str = "symbolic"
    # LLM planner only: local model folder or GGUF path; empty uses the bundled SmolLM2.
    model: str = ""

    def __post_init__(self) -> None:
        # Checked here, not in build(): workers build the planner, and a
        # worker that raises is restarted until every episode counts as failed.
        if self.type not in PLANNER_TYPES:
            raise ValueError(
                f"unknown planner {self.type!r}; expected one of {list(PLANNER_TYPES)}"
            )

    def build(self):
        from aas.policies.planner import LLMPlanner, LLMPlannerConfig, SymbolicPlanner

        if self.type == "symbolic":
            return SymbolicPlanner()
        return LLMPlanner(LLMPlannerConfig(model=self.model) if self.model else None)


@dataclass
class EvalSettings:
    """Evaluation settings; the defaults are the protocol's values."""

    # LIBERO suite: libero_spatial, libero_object, libero_goal, libero_10 or libero_90.
    suite: str = "libero_goal"
    # Task indices of the suite; empty means every task.
    tasks: list[int] = field(default_factory=list)
    # Episodes per task; episode i starts from init state (first_init_state + i).
    trials: int = PROTOCOL_TRIALS
    # Index of the first fixed init state used.
    first_init_state: int = 0
    # Seeds; each task and init state runs once per seed.
    seeds: list[int] = field(default_factory=lambda: [PROTOCOL_SEED])
    # Steps with zero motion and an open gripper after each reset, before the policy acts.
    settle_steps: int = 10
    # Policy steps per episode (1/20 s each); None uses the suite's protocol value.
    max_steps: int | None = None
    # Actions of each chunk executed before re-querying; None executes the whole chunk.
    execute_steps: int | None = None
    # robosuite cameras rendered for the policy; videos use the agent view.
    camera_names: list[str] = field(
        default_factory=lambda: ["agentview", "robot0_eye_in_hand"]
    )
    # Rendered image height and width in pixels.
    camera_size: int = 256
    # Planner mode: environment steps per plan step; None splits max_steps evenly.
    step_budget: int | None = None
    # Videos of the first N episodes of each task (0 for none).
    videos_per_task: int = 0
    # Seconds after which a running episode counts as hung and its worker is restarted.
    episode_timeout_s: float = 900.0

    def __post_init__(self) -> None:
        for name in ("trials", "camera_size"):
            if getattr(self, name) < 1:
                raise ValueError(
                    f"--eval.{name} must be positive, got {getattr(self, name)}"
                )
        if self.settle_steps < 0:
            raise ValueError(
                f"--eval.settle_steps must be >= 0, got {self.settle_steps}"
            )
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"--eval.max_steps must be positive, got {self.max_steps}")

    def resolved_max_steps(self) -> int:
        if self.max_steps is not None:
            return self.max_steps
        if self.suite not in MAX_STEPS:
            raise ValueError(
                f"unknown suite {self.suite!r}; expected one of {', '.join(sorted(MAX_STEPS))}"
            )
        return MAX_STEPS[self.suite]


def versions() -> dict[str, str]:
    """Versions of the toolkit and of the simulator stack, for the result file."""
    found = {"aas": __version__, "python": platform.python_version()}
    for package in ("hf-libero", "robosuite", "mujoco", "torch", "open_clip_torch"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = "not installed"
    return found


def build_jobs(settings: EvalSettings, output_dir: Path) -> list[EpisodeJob]:
    """Enumerate the episodes of an evaluation, in task, seed, init-state order."""
    specs = (
        [get_task(settings.suite, i) for i in settings.tasks]
        if settings.tasks
        else list_tasks(settings.suite)
    )
    jobs = []
    for spec in specs:
        available = spec.num_init_states
        last = settings.first_init_state + settings.trials
        if last > available:
            raise ValueError(
                f"{spec.suite} task {spec.index} has {available} init states; "
                f"--eval.trials={settings.trials} from --eval.first_init_state="
                f"{settings.first_init_state} needs {last}"
            )
        for seed in settings.seeds:
            for n, init_index in enumerate(range(settings.first_init_state, last)):
                video = ""
                if n < settings.videos_per_task:
                    video = str(
                        output_dir
                        / "videos"
                        / f"{spec.suite}_task{spec.index:02d}_init{init_index:02d}_seed{seed}.mp4"
                    )
                jobs.append(
                    EpisodeJob(
                        spec.suite, spec.index, spec.name, init_index, seed, video
                    )
                )
    return jobs


def evaluate(
    policy: PolicyConfig,
    settings: EvalSettings,
    output_dir: str | Path,
    num_workers: int,
    planner: Any = None,
    on_result: Callable[[EpisodeResult], None] | None = None,
) -> dict[str, Any]:
    """Run (or resume) an evaluation and write ``eval_info.json`` and the plot.

    Returns:
        The ``eval_info.json`` content.
    """
    output_dir = Path(output_dir)
    log = EpisodeLog(output_dir)
    done = log.load()
    jobs = [job for job in build_jobs(settings, output_dir) if job.key not in done]
    logger.info("eval: %d episodes to run, %d already finished", len(jobs), len(done))

    built = policy.build()
    rollout = RolloutConfig(
        max_steps=settings.resolved_max_steps(),
        settle_steps=settings.settle_steps,
        execute_steps=settings.execute_steps,
        step_budget=settings.step_budget,
    )
    setup = WorkerSetup(
        policy=policy,
        rollout=rollout,
        camera_names=tuple(settings.camera_names),
        camera_size=settings.camera_size,
        render=built.needs_images,
        planner=planner,
        render_threads=max(1, (os.cpu_count() or 1) // num_workers),
    )
    del built

    def record(result: EpisodeResult) -> None:
        log.append(result)
        done[result.key] = result
        if on_result is not None:
            on_result(result)

    stats = None
    if jobs:
        pool = RolloutPool(setup, num_workers, settings.episode_timeout_s)
        stats = pool.run(jobs, record)

    protocol = {
        **asdict(settings),
        "max_steps": rollout.max_steps,
        "policy": {"type": policy.type, **asdict(policy)},
        "planner": None
        if planner is None
        else {"type": planner.type, **asdict(planner)},
        "num_workers": num_workers,
    }
    summary = summarise(done.values(), protocol, versions())
    info = summary.to_dict()
    if stats is not None:
        info["run"] = {
            "episodes": stats.episodes,
            "env_steps": stats.env_steps,
            "seconds": stats.seconds,
            "env_steps_per_second": stats.env_steps / stats.seconds
            if stats.seconds
            else 0.0,
            "worker_restarts": stats.restarts,
            "retries": stats.retries,
            "errored_episodes": stats.errors,
        }
    write_eval_info(output_dir, info)
    plot_success(summary, output_dir / "success.png")
    print(format_table(summary))
    return info
