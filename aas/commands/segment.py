"""``aas segment``: split the demos of a file or folder into plan-aligned segments.

Each demo file's plan comes from its task's BDDL (the ``bddl_file_content``
attribute, or the BDDL file of the same name shipped with LIBERO for
re-rendered files) through ``aas.planning.plan_for_scene``. Output directory:
``segments.jsonl`` (one segmentation per demo), ``config.yaml``,
``plots/<file stem>/<demo id>.png`` and ``summary.json``. A rerun with
``--resume=true`` skips demos already in ``segments.jsonl``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from aas.bddl import BDDLError, libero_bddl_files, parse_bddl, parse_bddl_text
from aas.commands.common import prepare_output_dir, save_config, write_json
from aas.datasets.libero_hdf5 import (
    DemoFile,
    DemoFileError,
    demo_file_paths,
    open_demo_file,
)
from aas.demo import Demo, MissingDatasetError
from aas.planning import PlanningError, plan_for_scene
from aas.plots import plot_segment_timeline
from aas.schema import Plan, Segmentation, read_segmentations, write_segmentations
from aas.segmenters import KinematicConfig, Segmenter, SegmenterConfig
from aas.segmenters.kinematic_events import detect_events

logger = logging.getLogger(__name__)

SEGMENTS_FILE = "segments.jsonl"
SUMMARY_FILE = "summary.json"
PLOTS_DIR = "plots"


@dataclass
class Config:
    # Demo file (.hdf5) or folder searched recursively for *.hdf5 files.
    input: str = ""
    # Directory for segments.jsonl, config.yaml, plots/ and summary.json.
    output_dir: str = "outputs/segment"
    # Segmenter backend, selected with --segmenter.type=<name>.
    segmenter: SegmenterConfig = field(default_factory=KinematicConfig)
    # Write one PNG timeline plot per demo.
    plots: bool = True
    # Segment at most this many demos per file (0: all).
    max_demos_per_file: int = 0
    # Skip demos already in segments.jsonl.
    resume: bool = True
    # Discard earlier results in output_dir and start again.
    overwrite: bool = False


class PlanLookupError(ValueError):
    """A demo file's task has no BDDL or no plan; the message names the file."""


def plan_for_demo_file(demo_file: DemoFile) -> Plan:
    """Plan the task of ``demo_file`` from its BDDL.

    Raises:
        PlanLookupError: the file carries no BDDL and LIBERO ships none of that
            name, or the BDDL cannot be parsed or planned.
    """
    try:
        if demo_file.bddl_content.strip():
            source = f"{demo_file.path}:data.attrs[bddl_file_content]"
            scene = parse_bddl_text(demo_file.bddl_content, source=source)
        else:
            scene = parse_bddl(_find_libero_bddl(demo_file))
        return plan_for_scene(scene)
    except (BDDLError, PlanningError, FileNotFoundError) as exc:
        raise PlanLookupError(
            f"{demo_file.path}: no plan for the task ({exc})"
        ) from exc


def _find_libero_bddl(demo_file: DemoFile) -> Path:
    name = Path(demo_file.bddl_file_name).name
    matches = [p for p in libero_bddl_files() if p.name == name]
    if not matches:
        raise FileNotFoundError(
            f"the file has no bddl_file_content and LIBERO ships no BDDL named {name!r}; "
            "rename the file after its LIBERO task or regenerate it with `aas generate`"
        )
    return matches[0]


def segment_demo(
    demo: Demo, plan: Plan, segmenter: Segmenter, plot_path: Path | None = None
) -> Segmentation:
    """Segment one demo and, when ``plot_path`` is given, draw its timeline PNG."""
    segmentation = segmenter.segment(demo, plan)
    if plot_path is not None:
        _plot(demo, segmentation, plot_path)
    return segmentation


def _plot(demo: Demo, segmentation: Segmentation, plot_path: Path) -> None:
    try:
        plot_segment_timeline(detect_events(demo), segmentation, plot_path)
    except (MissingDatasetError, OSError, ValueError) as exc:
        logger.warning("%s: no plot (%s)", demo.key, exc)


def segment_demo_files(
    input_path: str | Path,
    output_dir: str | Path,
    segmenter: Segmenter,
    plots: bool = True,
    resume: bool = True,
    max_demos_per_file: int = 0,
) -> dict[str, Any]:
    """Segment every demo below ``input_path`` into ``output_dir``.

    ``segments.jsonl`` is rewritten atomically after each file, so an
    interrupted run loses at most the file in progress, and with ``resume``
    demos already in it are skipped. A bad file, a demo that cannot be read
    or a task without a plan is recorded in the summary and the rest
    continue.

    Returns:
        The summary that is also written to ``summary.json``: counts, the
        problems met, seconds spent and demos segmented per second.
    """
    out = Path(output_dir)
    segments_path = out / SEGMENTS_FILE
    done = (
        read_segmentations(segments_path) if resume and segments_path.exists() else []
    )
    done_keys = {s.demo_key for s in done}
    results = list(done)
    summary: dict[str, Any] = {
        "input": str(input_path),
        "segmenter": segmenter.name,
        "files": 0,
        "segmented": 0,
        "failed": 0,
        "skipped_existing": 0,
        "file_errors": [],
        "demo_errors": [],
        "plan_errors": [],
    }
    started = time.perf_counter()
    segment_seconds = 0.0

    for path in demo_file_paths(input_path):
        try:
            demo_file = open_demo_file(path)
        except DemoFileError as exc:
            logger.warning("skipped demo file: %s", exc)
            summary["file_errors"].append(str(exc))
            continue
        summary["files"] += 1
        summary["demo_errors"].extend(e.to_dict() for e in demo_file.errors)
        demos = demo_file.demos[: max_demos_per_file or None]
        pending = [d for d in demos if d.key not in done_keys]
        summary["skipped_existing"] += len(demos) - len(pending)
        if not pending:
            continue
        try:
            plan = plan_for_demo_file(demo_file)
        except PlanLookupError as exc:
            logger.warning("skipped demo file: %s", exc)
            summary["plan_errors"].append(str(exc))
            continue

        if hasattr(segmenter, "segment_many"):
            # Remote backends send the requests of one file concurrently.
            tick = time.perf_counter()
            batch = segmenter.segment_many([(demo, plan) for demo in pending])
            segment_seconds += time.perf_counter() - tick
            for demo, segmentation in zip(pending, batch):
                if plots:
                    _plot(demo, segmentation, out / PLOTS_DIR / path.stem / f"{demo.demo_id}.png")
                results.append(segmentation)
                summary["segmented" if segmentation.ok else "failed"] += 1
            pending = []
        for demo in tqdm(pending, desc=path.stem, unit="demo", leave=False):
            plot_path = (
                out / PLOTS_DIR / path.stem / f"{demo.demo_id}.png" if plots else None
            )
            tick = time.perf_counter()
            segmentation = segment_demo(demo, plan, segmenter, plot_path)
            segment_seconds += segmentation.provenance.cost.seconds or (
                time.perf_counter() - tick
            )
            results.append(segmentation)
            summary["segmented" if segmentation.ok else "failed"] += 1
        write_segmentations(segments_path, results)
        logger.info("segmented %s: %d demos", path, len(pending))

    if not segments_path.exists():
        write_segmentations(segments_path, results)
    count = summary["segmented"] + summary["failed"]
    summary["seconds"] = round(time.perf_counter() - started, 3)
    summary["segmenter_seconds"] = round(segment_seconds, 3)
    summary["demos_per_second"] = (
        round(count / segment_seconds, 2) if segment_seconds else None
    )
    ledger = getattr(segmenter, "ledger", None)
    if ledger is not None:
        summary["cost"] = ledger.to_dict()
    write_json(out / SUMMARY_FILE, summary)
    return summary


def run(cfg: Config) -> int:
    if not cfg.input:
        raise ValueError("--input is required: a LIBERO demo file or a folder of them")
    out = prepare_output_dir(cfg.output_dir, overwrite=cfg.overwrite, resume=cfg.resume)
    if cfg.overwrite:
        for stale in (out / SEGMENTS_FILE, out / SUMMARY_FILE):
            stale.unlink(missing_ok=True)
    save_config(cfg, out)
    summary = segment_demo_files(
        cfg.input,
        out,
        cfg.segmenter.build(),
        plots=cfg.plots,
        resume=cfg.resume and not cfg.overwrite,
        max_demos_per_file=cfg.max_demos_per_file,
    )
    print(
        f"segmented {summary['segmented']} demos, {summary['failed']} failed, "
        f"{summary['skipped_existing']} already done; "
        f"{len(summary['file_errors'])} bad files, {len(summary['demo_errors'])} bad demos, "
        f"{len(summary['plan_errors'])} files without a plan -> {out / SEGMENTS_FILE}"
    )
    # A run that produced nothing usable is an error for scripts calling it.
    produced = summary["segmented"] + summary["skipped_existing"]
    return 0 if produced else 1
