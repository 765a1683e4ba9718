"""``aas jitter``: how far a keyframe segmenter's boundaries move when its keyframes move.

For every demo of ``--input`` the unperturbed keyframes come from
``--keyframes`` (``aas.segmenters.keyframes.select_keyframes``). For every ``d`` in
``--offsets`` and every seed in ``--seeds``, each keyframe is shifted by a
random offset of at most ``d`` frames and the demo is segmented again.
``aas.jitter.run_jitter`` compares each result with the unperturbed
segmentation and with a reference. The reference is the segmentations in
``--reference`` (a ``segments.jsonl``), or else the predicate segmenter's,
computed here and kept in ``reference.jsonl`` so a rerun reuses it. Output
directory: ``jitter.json``, ``jitter.png``, ``config.yaml`` and, when
computed, ``reference.jsonl``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aas.commands.common import prepare_output_dir, save_config, write_json
from aas.commands.segment import PlanLookupError, plan_for_demo_file
from aas.datasets.libero_hdf5 import DemoFileError, demo_file_paths, open_demo_file
from aas.demo import Demo
from aas.jitter import plot_jitter, run_jitter
from aas.schema import Plan, Segmentation, read_segmentations, write_segmentations
from aas.segmenters import KinematicConfig, PredicateConfig, SegmenterConfig
from aas.segmenters.keyframes import KeyframeConfig, select_keyframes
from aas.validation import ValidationConfig, validate

logger = logging.getLogger(__name__)

RESULT_FILE = "jitter.json"
PLOT_FILE = "jitter.png"
REFERENCE_FILE = "reference.jsonl"


@dataclass
class Config:
    # Demo file (.hdf5) or folder searched recursively for *.hdf5 files.
    input: str = ""
    # Directory for jitter.json, jitter.png, config.yaml and reference.jsonl.
    output_dir: str = "outputs/jitter"
    # Segmenter under test; it must honour keyframes (kinematic, gemini, openai).
    segmenter: SegmenterConfig = field(default_factory=KinematicConfig)
    # How the unperturbed keyframes are chosen (strategy, budget and spacing in frames).
    keyframes: KeyframeConfig = field(default_factory=KeyframeConfig)
    # Maximum keyframe offsets d, in frames.
    offsets: list[int] = field(default_factory=lambda: [0, 2, 5, 10])
    # Random seeds; each (demo, d, seed) is one segmentation run.
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    # Reference segments.jsonl; empty: compute the predicate segmenter's reference.
    reference: str = ""
    # Compute the predicate reference when --reference is empty (needs LIBERO).
    compute_reference: bool = True
    # Thresholds of the validation rules behind the pass rate.
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    # Use at most this many demos per file (0: all).
    max_demos_per_file: int = 0
    # Reuse reference.jsonl of an earlier run in output_dir.
    resume: bool = True
    # Discard earlier results in output_dir and start again.
    overwrite: bool = False


def load_items(
    input_path: str | Path, max_demos_per_file: int = 0
) -> tuple[list[tuple[Demo, Plan]], list[str]]:
    """Return (demo, plan) pairs of every readable demo below ``input_path`` and the problems met."""
    items: list[tuple[Demo, Plan]] = []
    problems: list[str] = []
    for path in demo_file_paths(input_path):
        try:
            demo_file = open_demo_file(path)
            plan = plan_for_demo_file(demo_file)
        except (DemoFileError, PlanLookupError) as exc:
            logger.warning("skipped demo file: %s", exc)
            problems.append(str(exc))
            continue
        problems.extend(str(e.to_dict()) for e in demo_file.errors)
        items.extend((d, plan) for d in demo_file.demos[: max_demos_per_file or None])
    return items, problems


def predicate_references(
    items: list[tuple[Demo, Plan]], path: Path, resume: bool = True
) -> dict[str, Segmentation]:
    """Segment ``items`` with the predicate segmenter, reusing ``path`` where it has them.

    ``path`` is rewritten after each new demo, so an interrupted run keeps
    the references already computed.
    """
    done = read_segmentations(path) if resume and path.is_file() else []
    by_key = {s.demo_key: s for s in done}
    pending = [(d, p) for d, p in items if d.key not in by_key]
    if not pending:
        return by_key
    segmenter = PredicateConfig().build()
    try:
        for demo, plan in pending:
            by_key[demo.key] = segmenter.segment(demo, plan)
            write_segmentations(path, by_key.values())
    finally:
        segmenter.close()
    return by_key


def jitter_summary(report_dict: dict[str, Any]) -> str:
    """Format one line per offset for the terminal."""
    lines = []
    for row in report_dict["rows"]:
        reference = row["reference_error_mean_frames"]
        reference_text = "-" if reference is None else f"{reference:.2f}"
        pass_rate = row["pass_rate"]
        pass_text = "-" if pass_rate is None else f"{pass_rate:.3f}"
        lines.append(
            f"d={row['max_offset']:>3}: shift mean {row['shift_mean_frames']:.2f} "
            f"max {row['shift_max_frames']} frames, reference error "
            f"{reference_text} frames, op agreement {row['op_agreement']:.3f}, "
            f"pass rate {pass_text}, {row['failed_runs']}/{row['runs']} runs failed"
        )
    return "\n".join(lines)


def run(cfg: Config) -> int:
    if not cfg.input:
        raise ValueError("--input is required: a LIBERO demo file or a folder of them")
    if any(d < 0 for d in cfg.offsets):
        raise ValueError(f"--offsets must be >= 0 frames, got {cfg.offsets}")
    if not cfg.seeds:
        raise ValueError("--seeds needs at least one seed")
    out = prepare_output_dir(cfg.output_dir, overwrite=cfg.overwrite, resume=cfg.resume)
    if cfg.overwrite:
        for stale in (out / RESULT_FILE, out / PLOT_FILE, out / REFERENCE_FILE):
            stale.unlink(missing_ok=True)
    save_config(cfg, out)

    items, problems = load_items(cfg.input, cfg.max_demos_per_file)
    if not items:
        raise ValueError(f"{cfg.input}: no readable demos with a plan ({problems})")

    references: dict[str, Segmentation] = {}
    reference_source = ""
    if cfg.reference:
        references = {s.demo_key: s for s in read_segmentations(cfg.reference)}
        reference_source = cfg.reference
    elif cfg.compute_reference:
        references = predicate_references(
            items, out / REFERENCE_FILE, resume=cfg.resume and not cfg.overwrite
        )
        reference_source = str(out / REFERENCE_FILE)

    def passes(segmentation: Segmentation, plan: Plan, demo: Demo) -> bool:
        return validate(segmentation, plan, demo, config=cfg.validation).passed

    segmenter = cfg.segmenter.build()
    report = run_jitter(
        segmenter,
        items,
        keyframes_for=lambda demo: select_keyframes(demo, cfg.keyframes),
        offsets=cfg.offsets,
        seeds=cfg.seeds,
        references=references,
        validator=passes,
    )
    result = report.to_dict()
    result["reference"] = reference_source
    result["references_failed"] = sorted(k for k, s in references.items() if not s.ok)
    result["problems"] = problems
    write_json(out / RESULT_FILE, result)
    plot_jitter(report, out / PLOT_FILE)
    print(jitter_summary(result))
    print(f"{len(items)} demos -> {out / RESULT_FILE}, {out / PLOT_FILE}")
    return 0
