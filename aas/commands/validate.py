"""``aas validate``: check segmentations against the validation rules.

Reads ``segments.jsonl`` and the demo files the segmentations came from: the
``--input`` file or folder, or else each segmentation's ``source_file``. Every
segmentation is checked by ``aas.validation.validate`` against its stored
plan. The command writes ``validation.json`` (per-demo reports plus failure
counts per rule) into ``--output_dir`` and prints one table row per demo.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aas.commands.common import prepare_output_dir, save_config, write_json
from aas.datasets.libero_hdf5 import DemoFileError, iter_demo_files, open_demo_file
from aas.demo import Demo
from aas.schema import Segmentation, read_segmentations
from aas.validation import ValidationConfig, ValidationReport, validate

logger = logging.getLogger(__name__)

RESULT_FILE = "validation.json"


@dataclass
class Config:
    # segments.jsonl written by `aas segment`.
    segments: str = ""
    # Demo file (.hdf5) or folder of them; empty: each segmentation's source_file.
    input: str = ""
    # Directory for validation.json and config.yaml.
    output_dir: str = "outputs/validate"
    # Rule thresholds (minimum segment frames, confidence, gripper margins in metres).
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    # Exit with status 1 when any demo fails validation.
    fail_on_invalid: bool = False
    # Reuse a non-empty output_dir (validation is recomputed in full).
    resume: bool = True
    # Write over a non-empty output_dir.
    overwrite: bool = False


def _load_demos(
    segmentations: list[Segmentation], input_path: str | Path | None
) -> dict[str, Demo]:
    """Map demo keys to demos, from ``input_path`` or the segmentations' source files."""
    demos: dict[str, Demo] = {}
    if input_path:
        for demo_file in iter_demo_files(input_path):
            demos.update((d.key, d) for d in demo_file.demos)
        return demos
    for source in sorted({s.source_file for s in segmentations if s.source_file}):
        try:
            demo_file = open_demo_file(source)
        except DemoFileError as exc:
            logger.warning("no demos for physical checks from %s: %s", source, exc)
            continue
        demos.update((d.key, d) for d in demo_file.demos)
    return demos


def validate_segmentations(
    segments_path: str | Path,
    input_path: str | Path | None = None,
    config: ValidationConfig | None = None,
    skipped: list[str] | None = None,
) -> list[ValidationReport]:
    """Validate every segmentation in ``segments_path`` against its plan and demo.

    A segmentation whose demo is not found is still checked by the
    structural rules, and its physical rules are reported as skipped. With
    ``skipped``, unreadable lines are listed there and the rest validated.
    """
    segmentations = read_segmentations(segments_path, skipped=skipped)
    for message in skipped or []:
        logger.warning("skipped record: %s", message)
    demos = _load_demos(segmentations, input_path)
    reports = []
    for segmentation in segmentations:
        demo = demos.get(segmentation.demo_key)
        if demo is None:
            logger.warning(
                "%s: demo not found, physical checks skipped", segmentation.demo_key
            )
        reports.append(validate(segmentation, demo=demo, config=config))
    return reports


def summarize_reports(reports: list[ValidationReport]) -> dict[str, Any]:
    """Return pass counts, failures per rule and every report, as written to ``validation.json``."""
    failures = Counter(name for r in reports for name in {f.name for f in r.failures})
    passed = sum(r.passed for r in reports)
    return {
        "num_demos": len(reports),
        "num_passed": passed,
        "pass_rate": round(passed / len(reports), 4) if reports else None,
        "rule_failures": dict(sorted(failures.items())),
        "reports": [r.to_dict() for r in reports],
    }


def format_validation_table(reports: list[ValidationReport]) -> str:
    """Format one line per demo: key, segment count, verdict and failed rules."""
    rows = [("demo", "segments", "result", "failed rules")]
    for report in reports:
        failed = ", ".join(sorted({f.name for f in report.failures})) or "-"
        rows.append(
            (
                report.demo_key,
                str(report.num_segments),
                "pass" if report.passed else "FAIL",
                failed,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = [
        f"{row[0]:<{widths[0]}}  {row[1]:>{widths[1]}}  {row[2]:<{widths[2]}}  {row[3]}"
        for row in rows
    ]
    passed = sum(r.passed for r in reports)
    lines.append(f"{passed}/{len(reports)} demos passed")
    return "\n".join(lines)


def run(cfg: Config) -> int:
    if not cfg.segments:
        raise ValueError(
            "--segments is required: the segments.jsonl written by `aas segment`"
        )
    out = prepare_output_dir(cfg.output_dir, overwrite=cfg.overwrite, resume=cfg.resume)
    save_config(cfg, out)
    skipped: list[str] = []
    reports = validate_segmentations(
        cfg.segments, cfg.input or None, cfg.validation, skipped=skipped
    )
    write_json(out / RESULT_FILE, {**summarize_reports(reports), "skipped_records": skipped})
    print(format_validation_table(reports))
    if cfg.fail_on_invalid and not all(r.passed for r in reports):
        return 1
    return 0
