"""``aas demo``: generate, segment and validate demos of one LIBERO task end to end.

With no arguments it records three demos of libero_goal's two-step task
"put the bowl on the plate" (grasp, place) with the scripted controller in
the LIBERO simulator, segments them with the kinematic segmenter, validates
the segments, and writes into ``outputs/demo``: the demo file under
``demos/``, ``segments.jsonl``, ``validation.json``, one timeline plot per
demo under ``plots/``, ``report.html`` and ``summary.json``. A rerun resumes:
finished demos are neither generated nor segmented again.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from aas.commands.common import prepare_output_dir, save_config, write_json
from aas.commands.segment import SEGMENTS_FILE, segment_demo_files
from aas.commands.validate import RESULT_FILE as VALIDATION_FILE
from aas.commands.validate import (
    format_validation_table,
    summarize_reports,
    validate_segmentations,
)
from aas.report import build_report
from aas.schema import read_segmentations
from aas.segmenters import KinematicConfig, SegmenterConfig
from aas.sims.generate import generate_demos
from aas.sims.tasks import get_task
from aas.validation import ValidationConfig

logger = logging.getLogger(__name__)


@dataclass
class Config:
    # LIBERO suite of the task.
    suite: str = "libero_goal"
    # Task index or name (BDDL file stem) within the suite.
    task: str = "put_the_bowl_on_the_plate"
    # Demos to record, one per init state, starting at init state 0.
    num_demos: int = 3
    # Camera image height and width in pixels.
    camera_size: int = 128
    # Segmenter backend, selected with --segmenter.type=<name>.
    segmenter: SegmenterConfig = field(default_factory=KinematicConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    # Directory for demos/, segments.jsonl, validation.json, plots/ and report.html.
    output_dir: str = "outputs/demo"
    # Continue an interrupted run in output_dir.
    resume: bool = True
    # Discard earlier results in output_dir first.
    overwrite: bool = False

    def __post_init__(self) -> None:
        if self.num_demos < 1:
            raise ValueError(f"--num_demos must be at least 1, got {self.num_demos}")
        if self.camera_size < 1:
            raise ValueError(
                f"--camera_size must be a positive number of pixels, got {self.camera_size}"
            )


def _format_segments(segments_path: Path) -> str:
    rows = [("demo", "frames", "segments (op start-end confidence)")]
    for seg in read_segmentations(segments_path):
        if seg.ok:
            parts = ", ".join(
                f"{s.op} {s.start}-{s.end} {s.confidence:.2f}" for s in seg.segments
            )
        else:
            parts = f"failed: {seg.error}"
        rows.append((seg.demo_key, str(seg.num_frames), parts))
    widths = [max(len(r[i]) for r in rows) for i in range(2)]
    return "\n".join(f"{r[0]:<{widths[0]}}  {r[1]:>{widths[1]}}  {r[2]}" for r in rows)


def run(cfg: Config) -> int:
    out = prepare_output_dir(cfg.output_dir, overwrite=cfg.overwrite, resume=cfg.resume)
    if cfg.overwrite:
        for name in (SEGMENTS_FILE, VALIDATION_FILE, "summary.json"):
            (out / name).unlink(missing_ok=True)
    save_config(cfg, out)
    timings: dict[str, float] = {}

    started = time.perf_counter()
    task = int(cfg.task) if cfg.task.isdigit() else cfg.task
    spec = get_task(cfg.suite, task)
    logger.info(
        "demo: generating %d demos of %s task %d (%s)",
        cfg.num_demos,
        spec.suite,
        spec.index,
        spec.name,
    )
    with tqdm(total=cfg.num_demos, desc="generate", unit="demo") as bar:
        generation = generate_demos(
            spec,
            range(cfg.num_demos),
            out / "demos",
            render=True,
            camera_size=cfg.camera_size,
            resume=cfg.resume and not cfg.overwrite,
            progress=lambda outcome: bar.update(1),
        )
        bar.update(cfg.num_demos - bar.n)
    timings["generate_seconds"] = time.perf_counter() - started
    if generation.demo_file is None:
        raise RuntimeError(
            f"the scripted controller kept no demo of {spec.name} from init states "
            f"0-{cfg.num_demos - 1}; see {out / 'demos'} for the per-demo errors"
        )

    started = time.perf_counter()
    segment_summary = segment_demo_files(
        generation.demo_file, out, cfg.segmenter.build(), plots=True, resume=cfg.resume
    )
    timings["segment_seconds"] = time.perf_counter() - started

    started = time.perf_counter()
    reports = validate_segmentations(
        out / SEGMENTS_FILE, generation.demo_file, cfg.validation
    )
    validation = summarize_reports(reports)
    write_json(out / VALIDATION_FILE, validation)
    timings["validate_seconds"] = time.perf_counter() - started
    report_path = build_report(out)

    summary = {
        "task": {
            "suite": spec.suite,
            "index": spec.index,
            "name": spec.name,
            "language": spec.language,
        },
        "plan": [str(step) for step in generation.plan.steps],
        "generation": {
            "requested": len(generation.outcomes),
            "kept": generation.kept,
            "success_rate": generation.success_rate,
            "demo_file": str(generation.demo_file),
        },
        "segmentation": {
            k: segment_summary[k] for k in ("segmented", "failed", "demos_per_second")
        },
        "validation": {
            k: validation[k]
            for k in ("num_demos", "num_passed", "pass_rate", "rule_failures")
        },
        "report": str(report_path),
        **{k: round(v, 2) for k, v in timings.items()},
    }
    write_json(out / "summary.json", summary)

    print()
    print(
        f"task: {spec.suite} {spec.index} '{spec.language}', plan: {' -> '.join(summary['plan'])}"
    )
    print(
        f"kept {generation.kept}/{len(generation.outcomes)} demos "
        f"({timings['generate_seconds']:.0f} s of generation in this run)"
    )
    print(_format_segments(out / SEGMENTS_FILE))
    print(format_validation_table(reports))
    print(f"outputs in {out}; open {report_path} in a browser")
    return 0 if validation["num_passed"] == validation["num_demos"] else 1
