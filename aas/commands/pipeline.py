"""``aas pipeline``: generate, segment, validate, export, train and evaluate in one run.

``aas pipeline --config_path=configs/libero_goal_bowl_plate.yaml`` records
scripted demos of the configured LIBERO tasks, segments and validates them,
writes training shards of the demos that passed validation, trains policy A
(CLIP-RT+) on the atomic segments and evaluates it with the planner issuing
one atomic instruction per plan step. With ``compare_whole_demo`` it also
trains policy B on the same demos as whole episodes with the task
instruction and evaluates it with the task instruction alone.

Every stage writes into its own folder of ``--output_dir`` with a
``stage.json`` record. A rerun skips the stages that finished with the same
inputs, restarts those whose settings changed, and resumes an interrupted
one. ``summary.json`` contains stage timings, segment counts and pass rate,
sample counts, final training losses, success rates with 95% confidence
intervals, and the paths of each stage's plots.
"""

from __future__ import annotations

import logging
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from aas.commands.common import prepare_output_dir, save_config
from aas.pipeline import (
    SUMMARY_FILE,
    PipelineSettings,
    StageConsistencyError,
    format_summary,
    run_pipeline,
)

logger = logging.getLogger(__name__)


@dataclass
class Config(PipelineSettings):
    """Stage settings (see ``PipelineSettings``) plus the run directory."""

    # Run directory, with one folder per stage named after the stage.
    output_dir: str = "outputs/pipeline"
    # Skip finished stages and resume an interrupted one in output_dir.
    resume: bool = True
    # Delete everything in output_dir first.
    overwrite: bool = False


def run(cfg: Config) -> int:
    out = Path(cfg.output_dir)
    if cfg.overwrite and out.exists():
        shutil.rmtree(out)
    out = prepare_output_dir(out, overwrite=cfg.overwrite, resume=cfg.resume)
    save_config(cfg, out)
    try:
        summary = run_pipeline(cfg, out)
    except StageConsistencyError as exc:
        print(f"aas pipeline: error: {exc}", file=sys.stderr)
        return 1
    print()
    print(format_summary(summary))
    print(f"summary in {out / SUMMARY_FILE}")
    return 0
