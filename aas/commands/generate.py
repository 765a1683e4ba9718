"""``aas generate``: record scripted LIBERO demos with the plan-driven controller."""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass, field

from tqdm import tqdm

from aas.commands.common import prepare_output_dir, save_config, write_json
from aas.sims.env import DEFAULT_CAMERA_SIZE
from aas.sims.generate import (
    DEFAULT_MAX_FRAMES,
    STATUS_KEPT,
    generate_demos,
    parse_init_states,
    select_tasks,
)

logger = logging.getLogger(__name__)

RESULT_FILE = "generation.json"


@dataclass
class Config:
    # LIBERO suite: libero_spatial, libero_object, libero_goal, libero_10 or libero_90.
    suite: str = "libero_goal"
    # Task indices or names (BDDL file stems); empty means every task of the suite.
    tasks: list[str] = field(default_factory=list)
    # Init-state indices per task, such as "0-9,12"; "all" means all 50.
    init_states: str = "0-4"
    # Record agentview and wrist images; false records states and actions only (faster).
    render: bool = True
    # Image height and width in pixels.
    camera_size: int = DEFAULT_CAMERA_SIZE
    # Frame budget of one episode, at 20 frames per second.
    max_frames: int = DEFAULT_MAX_FRAMES
    # With resume: run again init states that failed or raised in an earlier run.
    retry_failed: bool = False
    # Directory for <suite>/<task>_demo.hdf5, status files and generation.json.
    output_dir: str = "outputs/generate"
    # Continue an interrupted run in output_dir (finished init states are skipped).
    resume: bool = True
    # Delete earlier results in output_dir first.
    overwrite: bool = False

    def __post_init__(self) -> None:
        if self.camera_size < 1:
            raise ValueError(
                f"--camera_size must be a positive number of pixels, got {self.camera_size}"
            )
        if self.max_frames < 1:
            raise ValueError(f"--max_frames must be positive, got {self.max_frames}")


def run(cfg: Config) -> int:
    out = prepare_output_dir(cfg.output_dir, overwrite=cfg.overwrite, resume=cfg.resume)
    if cfg.overwrite:
        shutil.rmtree(out / cfg.suite, ignore_errors=True)
    save_config(cfg, out)
    specs = select_tasks(cfg.suite, cfg.tasks)

    summary = []
    for spec in specs:
        init_states = parse_init_states(cfg.init_states, spec.num_init_states)
        with tqdm(total=len(init_states), desc=spec.name[:40], unit="demo") as bar:
            report = generate_demos(
                spec,
                init_states,
                out,
                render=cfg.render,
                camera_size=cfg.camera_size,
                max_frames=cfg.max_frames,
                resume=cfg.resume and not cfg.overwrite,
                retry_failed=cfg.retry_failed,
                progress=lambda outcome: bar.update(1),
            )
            bar.update(len(init_states) - bar.n)
        failures = {
            str(i): o.error.splitlines()[0] if o.error else o.status
            for i, o in report.outcomes.items()
            if o.status != STATUS_KEPT
        }
        summary.append(
            {
                "suite": spec.suite,
                "task_index": spec.index,
                "task": spec.name,
                "plan": [str(s) for s in report.plan.steps],
                "init_states": len(report.outcomes),
                "kept": report.kept,
                "success_rate": round(report.success_rate, 4),
                "demo_file": str(report.demo_file) if report.demo_file else "",
                "failures": failures,
            }
        )
        logger.info(
            "%s task %d: kept %d of %d demos -> %s",
            spec.suite,
            spec.index,
            report.kept,
            len(report.outcomes),
            report.demo_file,
        )
    write_json(out / RESULT_FILE, {"tasks": summary})
    return 0
