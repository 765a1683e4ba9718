"""Keyframe-jitter robustness test.

A segmenter that works from sampled keyframes should not move its
boundaries much when the keyframes move a little. For each maximum offset
``d`` and each seed, every keyframe index is shifted by a uniform random
integer in ``[-d, d]`` (clipped to the demo, duplicates dropped), the demo is
segmented again, and the result is compared with the unperturbed
segmentation and, when given, with a reference segmentation. ``d = 0``
reproduces the unperturbed keyframes exactly, so its row measures only the
segmenter's own nondeterminism.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from aas.demo import Demo
from aas.metrics import compare
from aas.schema import Plan, Segmentation
from aas.segmenters.base import Segmenter

logger = logging.getLogger(__name__)

Validator = Callable[[Segmentation, Plan, Demo], bool]


@dataclass(frozen=True)
class JitterRow:
    """Aggregates for one maximum offset ``d`` (frames) over demos and seeds."""

    max_offset: int
    runs: int
    failed_runs: int
    shift_mean_frames: float
    shift_max_frames: int
    reference_error_mean_frames: float | None
    reference_error_max_frames: int | None
    op_agreement: float
    pass_rate: float | None


@dataclass(frozen=True)
class JitterReport:
    segmenter: str
    offsets: tuple[int, ...]
    seeds: tuple[int, ...]
    rows: tuple[JitterRow, ...]
    demos: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict:
        return {
            "segmenter": self.segmenter,
            "offsets": list(self.offsets),
            "seeds": list(self.seeds),
            "demos": list(self.demos),
            "rows": [asdict(row) for row in self.rows],
        }


def perturb_keyframes(
    keyframes: Sequence[int], max_offset: int, num_frames: int, rng: np.random.Generator
) -> list[int]:
    """Shift each keyframe by a random integer in ``[-max_offset, max_offset]``.

    Returns sorted unique indices inside ``[0, num_frames - 1]``.
    """
    base = np.asarray(keyframes, dtype=np.int64)
    if max_offset == 0:
        return sorted({int(k) for k in base})
    shifted = base + rng.integers(-max_offset, max_offset + 1, size=base.shape)
    shifted = np.clip(shifted, 0, num_frames - 1)
    return sorted({int(k) for k in shifted})


def run_jitter(
    segmenter: Segmenter,
    items: Sequence[tuple[Demo, Plan]],
    keyframes_for: Callable[[Demo], Sequence[int]],
    offsets: Sequence[int] = (0, 2, 5, 10),
    seeds: Sequence[int] = (0, 1, 2),
    references: Mapping[str, Segmentation] | None = None,
    validator: Validator | None = None,
) -> JitterReport:
    """Run the jitter test over ``items`` and aggregate per offset.

    Args:
        segmenter: a segmenter whose ``segment`` honours ``keyframes``.
        items: demos with their plans.
        keyframes_for: the unperturbed keyframes of a demo.
        offsets: maximum offsets ``d`` in frames.
        seeds: random seeds; each (demo, d, seed) is one run.
        references: reference segmentation per demo key (for example the
            predicate segmenter's), if any.
        validator: returns whether a segmentation passes validation.
    """
    base_results = {}
    for demo, plan in items:
        base_results[demo.key] = segmenter.segment(
            demo, plan, keyframes=list(keyframes_for(demo))
        )

    rows = []
    for d in offsets:
        shifts, ref_errors, agreements, passes = [], [], [], []
        runs = failed = 0
        for seed in seeds:
            rng = np.random.default_rng([seed, d])
            for demo, plan in items:
                runs += 1
                base = base_results[demo.key]
                keyframes = perturb_keyframes(
                    keyframes_for(demo), d, demo.num_frames, rng
                )
                result = segmenter.segment(demo, plan, keyframes=keyframes)
                if not result.ok or not base.ok:
                    failed += 1
                    agreements.append(0.0)
                    if validator is not None:
                        passes.append(False)
                    continue
                against_base = compare(result, base)
                shifts.extend(against_base.boundary_errors)
                agreements.append(against_base.plan_alignment)
                reference = (references or {}).get(demo.key)
                if reference is not None and reference.ok:
                    ref_errors.extend(compare(result, reference).boundary_errors)
                if validator is not None:
                    passes.append(bool(validator(result, plan, demo)))
        rows.append(
            JitterRow(
                max_offset=int(d),
                runs=runs,
                failed_runs=failed,
                shift_mean_frames=float(np.mean(shifts)) if shifts else 0.0,
                shift_max_frames=int(max(shifts, default=0)),
                reference_error_mean_frames=float(np.mean(ref_errors))
                if ref_errors
                else None,
                reference_error_max_frames=int(max(ref_errors)) if ref_errors else None,
                op_agreement=float(np.mean(agreements)) if agreements else 0.0,
                pass_rate=float(np.mean(passes)) if passes else None,
            )
        )
        logger.info(
            "jitter d=%d: %d runs, mean shift %.2f frames",
            d,
            runs,
            rows[-1].shift_mean_frames,
        )
    return JitterReport(
        segmenter=segmenter.name,
        offsets=tuple(int(d) for d in offsets),
        seeds=tuple(int(s) for s in seeds),
        rows=tuple(rows),
        demos=tuple(demo.key for demo, _ in items),
    )


def plot_jitter(report: JitterReport, path: str | Path) -> Path:
    """Plot boundary shift, reference error, op agreement and pass rate against d."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    d = [row.max_offset for row in report.rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.plot(
        d,
        [r.shift_mean_frames for r in report.rows],
        "o-",
        label="mean shift vs unperturbed",
    )
    left.plot(
        d,
        [r.shift_max_frames for r in report.rows],
        "o--",
        label="max shift vs unperturbed",
    )
    if any(r.reference_error_mean_frames is not None for r in report.rows):
        left.plot(
            d,
            [
                np.nan
                if r.reference_error_mean_frames is None
                else r.reference_error_mean_frames
                for r in report.rows
            ],
            "s-",
            label="mean error vs reference",
        )
    left.set_xlabel("max keyframe offset d (frames)")
    left.set_ylabel("boundary shift (frames)")
    left.legend()
    right.plot(d, [r.op_agreement for r in report.rows], "o-", label="op agreement")
    if any(r.pass_rate is not None for r in report.rows):
        right.plot(
            d,
            [r.pass_rate if r.pass_rate is not None else np.nan for r in report.rows],
            "s-",
            label="validation pass rate",
        )
    right.set_ylim(-0.05, 1.05)
    right.set_xlabel("max keyframe offset d (frames)")
    right.legend()
    fig.suptitle(f"keyframe jitter: {report.segmenter}")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
