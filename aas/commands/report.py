"""``aas report RUN_DIR``: write a self-contained HTML page for a run directory."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from aas.report import build_report

logger = logging.getLogger(__name__)

POSITIONAL = "run_dir"


@dataclass
class Config:
    # Run directory written by `aas segment` (or `aas demo`); must contain segments.jsonl.
    run_dir: str = "outputs/demo"
    # Reference segmentations (JSON Lines) to compute metrics against; default:
    # RUN_DIR/reference.jsonl when it exists.
    reference: str | None = None
    # Output HTML file; default: RUN_DIR/report.html.
    output: str | None = None


def run(cfg: Config) -> int:
    path = build_report(cfg.run_dir, reference=cfg.reference, output=cfg.output)
    print(f"report written to {path}")
    return 0
