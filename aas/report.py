"""Self-contained HTML report of a segmentation run directory.

The page embeds every image as a base64 data URL and uses no script, so it
opens from disk in any browser with no server. For each demo it shows a
strip of keyframes with the segment boundaries and labels under them, the
signal timeline plot, the validation result with each failing rule named,
and the metrics against a reference segmentation when the run has one.

Run directory files read (all optional but ``segments.jsonl``):
``segments.jsonl``, ``validation.json``, ``plots/<file stem>/<demo id>.png``,
``reference.jsonl`` (or a path given by the caller) and the demo files named
in each segmentation's ``source_file``.
"""

from __future__ import annotations

import base64
import html
import io
import json
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from aas.demo import AGENTVIEW, Demo
from aas.metrics import DemoMetrics, compare
from aas.schema import Segmentation, read_segmentations, write_atomic

logger = logging.getLogger(__name__)

REPORT_FILE = "report.html"
STRIP_FRAMES = 8
THUMB_PX = 96
COLORS = (
    "#4e79a7",
    "#f28e2b",
    "#59a14f",
    "#e15759",
    "#76b7b2",
    "#edc948",
    "#b07aa1",
    "#ff9da7",
    "#9c755f",
    "#bab0ac",
)

CSS = """
body { font-family: sans-serif; margin: 24px; color: #222; }
h1 { font-size: 22px; } h2 { font-size: 17px; margin-top: 32px; }
table { border-collapse: collapse; margin: 8px 0; font-size: 13px; }
td, th { border: 1px solid #ccc; padding: 3px 8px; text-align: left; }
.fail { color: #b00020; font-weight: bold; } .pass { color: #1b7a1b; }
.strip { position: relative; height: 118px; }
.strip img { position: absolute; top: 0; width: 96px; height: 96px; }
.strip .frame { position: absolute; top: 98px; font-size: 11px; }
.timeline { position: relative; height: 34px; margin: 4px 0 12px 0; }
.segment { position: absolute; top: 0; height: 32px; color: white;
  font-size: 11px; overflow: hidden; white-space: nowrap; border-right: 2px solid #222;
  box-sizing: border-box; padding: 2px; }
.plot { max-width: 900px; }
"""


def _png_data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _encode_png(image: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def _upright(image: np.ndarray) -> np.ndarray:
    # LIBERO renders camera images upside down; flipping both axes makes them upright.
    return np.ascontiguousarray(image[::-1, ::-1])


def strip_frames(seg: Segmentation, count: int = STRIP_FRAMES) -> list[int]:
    """Choose keyframes for the strip: the segmenter's own, else evenly spaced.

    At most ``count`` frames, always including the first and last frame.
    """
    frames = sorted(set(seg.provenance.keyframes))
    if not frames:
        frames = list(range(seg.num_frames))
    if len(frames) > count:
        picks = np.linspace(0, len(frames) - 1, count).round().astype(int)
        frames = [frames[i] for i in picks]
    return frames


def _timeline_html(seg: Segmentation) -> str:
    blocks = []
    for i, segment in enumerate(seg.segments):
        left = 100.0 * segment.start / seg.num_frames
        width = 100.0 * segment.num_frames / seg.num_frames
        label = f"{segment.op}({', '.join(segment.args)}) {segment.start}-{segment.end}"
        blocks.append(
            f'<div class="segment" title="{html.escape(label)}" '
            f'style="left:{left:.3f}%;width:{width:.3f}%;'
            f'background:{COLORS[i % len(COLORS)]}">{html.escape(label)}</div>'
        )
    return f'<div class="timeline">{"".join(blocks)}</div>'


def _strip_html(seg: Segmentation, demo: Demo | None) -> str:
    if demo is None or not demo.has(AGENTVIEW):
        return "<p>No camera frames available for this demo.</p>"
    frames = strip_frames(seg)
    images = demo.frames(AGENTVIEW, frames)
    width = max(seg.num_frames - 1, 1)
    parts = []
    for frame, image in zip(frames, images):
        left = f"calc({100.0 * frame / width:.3f}% - {THUMB_PX * frame / width:.1f}px)"
        url = _png_data_url(_encode_png(_upright(image)))
        parts.append(
            f'<img class="keyframe" alt="frame {frame}" src="{url}" style="left:{left}">'
            f'<span class="frame" style="left:{left}">frame {frame}</span>'
        )
    return f'<div class="strip">{"".join(parts)}</div>'


def _validation_html(report: dict[str, Any] | None) -> str:
    if report is None:
        return "<p>No validation result for this demo.</p>"
    verdict = "passed" if report.get("passed") else "failed"
    rows = []
    for rule in report.get("results", report.get("rules", [])):
        ok = rule.get("passed", False)
        cls = "pass" if ok else "fail"
        index = rule.get("segment_index")
        rows.append(
            f"<tr><td class='{cls}'>{html.escape(rule['name'])}</td>"
            f"<td class='{cls}'>{'pass' if ok else 'FAIL'}</td>"
            f"<td>{'' if index is None else index}</td>"
            f"<td>{html.escape(str(rule.get('message', '')))}</td></tr>"
        )
    failing = report.get("failed_rules") or sorted(
        {r["name"] for r in report.get("results", []) if not r.get("passed", False)}
    )
    summary = (
        f"<p class='{'pass' if verdict == 'passed' else 'fail'}'>Validation {verdict}"
    )
    summary += f": failing rules {', '.join(failing)}</p>" if failing else "</p>"
    header = "<tr><th>rule</th><th>result</th><th>segment</th><th>message</th></tr>"
    return summary + f"<table class='validation'>{header}{''.join(rows)}</table>"


def _metrics_html(metrics: DemoMetrics | None) -> str:
    if metrics is None:
        return ""
    return (
        "<table class='metrics'><tr><th>metric against reference</th><th>value</th></tr>"
        f"<tr><td>boundary MAE (frames)</td><td>{metrics.boundary_mae_frames:.2f}</td></tr>"
        f"<tr><td>boundary MAE (seconds)</td><td>{metrics.boundary_mae_seconds:.3f}</td></tr>"
        f"<tr><td>max boundary error (frames)</td><td>{metrics.boundary_max_frames}</td></tr>"
        f"<tr><td>mean temporal IoU</td><td>{metrics.mean_iou:.3f}</td></tr>"
        f"<tr><td>plan alignment</td><td>{metrics.plan_alignment:.3f}</td></tr></table>"
    )


def _segments_table(seg: Segmentation) -> str:
    rows = "".join(
        f"<tr><td>{i}</td><td>{html.escape(s.op)}</td><td>{html.escape(', '.join(s.args))}</td>"
        f"<td>{s.start}</td><td>{s.end}</td><td>{s.confidence:.2f}</td>"
        f"<td>{html.escape(s.instruction)}</td></tr>"
        for i, s in enumerate(seg.segments)
    )
    header = (
        "<tr><th>#</th><th>op</th><th>args</th><th>start</th><th>end</th>"
        "<th>confidence</th><th>instruction</th></tr>"
    )
    return f"<table class='segments'>{header}{rows}</table>"


def _plot_html(plot: Path | None) -> str:
    if plot is None or not plot.exists():
        return "<p>No signal timeline plot for this demo.</p>"
    return f'<img class="plot" alt="signal timeline" src="{_png_data_url(plot.read_bytes())}">'


def _demo_section(
    seg: Segmentation,
    demo: Demo | None,
    validation: dict[str, Any] | None,
    plot: Path | None,
    reference: Segmentation | None,
) -> str:
    metrics = (
        compare(seg, reference)
        if reference is not None and reference.ok and seg.ok
        else None
    )
    status = (
        ""
        if seg.ok
        else f"<p class='fail'>Segmentation failed: {html.escape(seg.error)}</p>"
    )
    anchor = html.escape(seg.demo_key)
    return (
        f"<section class='demo' id='{anchor}'><h2>{anchor}</h2>"
        f"<p>{html.escape(seg.instruction)} ({seg.num_frames} frames, "
        f"{seg.provenance.segmenter} {html.escape(seg.provenance.version)})</p>{status}"
        f"{_strip_html(seg, demo)}{_timeline_html(seg)}{_segments_table(seg)}"
        f"{_plot_html(plot)}{_validation_html(validation)}{_metrics_html(metrics)}</section>"
    )


def _load_validation(run_dir: Path) -> dict[str, dict[str, Any]]:
    # validation.json is written by `aas validate`: {"reports": [report, ...], ...}.
    path = run_dir / "validation.json"
    if not path.exists():
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    return {report["demo_key"]: report for report in data.get("reports", [])}


def _load_demos(segs: Iterable[Segmentation]) -> dict[str, Demo]:
    from aas.datasets.libero_hdf5 import open_demo_file

    demos: dict[str, Demo] = {}
    for source in sorted({s.source_file for s in segs if s.source_file}):
        try:
            demo_file = open_demo_file(source)
        except (OSError, ValueError) as exc:
            logger.warning(
                "report: cannot read demo file %s (%s); frames are left out",
                source,
                exc,
            )
            continue
        demos.update({demo.key: demo for demo in demo_file.demos})
    return demos


def build_report(
    run_dir: str | Path,
    reference: str | Path | None = None,
    output: str | Path | None = None,
) -> Path:
    """Write ``report.html`` for the run in ``run_dir`` and return its path.

    Raises:
        FileNotFoundError: ``run_dir`` has no ``segments.jsonl``.
    """
    run_dir = Path(run_dir)
    segments_path = run_dir / "segments.jsonl"
    if not segments_path.exists():
        raise FileNotFoundError(
            f"{segments_path} not found; run `aas segment --output_dir={run_dir}` first"
        )
    segs = read_segmentations(segments_path)
    reference_path = Path(reference) if reference else run_dir / "reference.jsonl"
    references = (
        {r.demo_key: r for r in read_segmentations(reference_path)}
        if reference_path.exists()
        else {}
    )
    validations = _load_validation(run_dir)
    demos = _load_demos(segs)

    sections = []
    for seg in segs:
        plot = run_dir / "plots" / f"{seg.demo_key}.png"
        sections.append(
            _demo_section(
                seg,
                demos.get(seg.demo_key),
                validations.get(seg.demo_key),
                plot,
                references.get(seg.demo_key),
            )
        )
    passed = sum(1 for v in validations.values() if v.get("passed"))
    summary = (
        f"<p>{len(segs)} demos, {sum(s.ok for s in segs)} segmented, "
        f"{passed} of {len(validations)} validated passed.</p>"
    )
    page = (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>aas report: {html.escape(run_dir.name)}</title><style>{CSS}</style></head>"
        f"<body><h1>Segmentation report: {html.escape(str(run_dir))}</h1>{summary}"
        f"{''.join(sections)}</body></html>"
    )
    target = Path(output) if output else run_dir / REPORT_FILE
    write_atomic(target, page)
    logger.info("report: wrote %s (%d demos)", target, len(segs))
    return target
