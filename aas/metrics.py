"""Agreement metrics between two segmentations of the same demos.

Segments of the predicted and the reference segmentation are paired by the
longest common subsequence of their ``(op, args)`` labels, so one missing or
extra segment does not shift every later pairing. On the paired segments:

- boundary error: ``|pred.end - ref.end|`` in frames (and seconds at the
  demo's frame rate) for every reference segment except the last, whose end
  is the demo's last frame by construction;
- temporal IoU: overlap over union of the two inclusive frame ranges, 0 for
  a reference segment without a partner;
- plan alignment: paired count over the longer sequence, so 1.0 means the
  same ops and arguments in the same order.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field

import numpy as np

from aas.schema import Segment, Segmentation


@dataclass(frozen=True)
class DemoMetrics:
    """Agreement of one predicted segmentation with its reference."""

    demo_key: str
    boundary_errors: tuple[int, ...]
    boundary_mae_frames: float
    boundary_mae_seconds: float
    boundary_max_frames: int
    iou: tuple[float, ...]
    mean_iou: float
    plan_alignment: float
    unmatched_boundaries: int

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class RunMetrics:
    """Metrics over every demo present in both runs.

    Boundary errors are pooled over all boundaries of all demos, so a demo
    with more steps weighs more; ``missing`` lists reference demos without a
    usable prediction (absent or failed), which count as alignment 0 and
    IoU 0.
    """

    demos: tuple[DemoMetrics, ...]
    boundary_mae_frames: float
    boundary_mae_seconds: float
    boundary_max_frames: int
    mean_iou: float
    plan_alignment: float
    pass_rate: float | None
    missing: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["demos"] = [d.to_dict() for d in self.demos]
        return data


def _label(segment: Segment) -> tuple[str, tuple[str, ...]]:
    return segment.op, tuple(segment.args)


def pair_segments(
    pred: Iterable[Segment], ref: Iterable[Segment]
) -> list[tuple[int, int]]:
    """Return index pairs ``(i_pred, i_ref)`` of the longest common label subsequence."""
    a = [_label(s) for s in pred]
    b = [_label(s) for s in ref]
    table = np.zeros((len(a) + 1, len(b) + 1), dtype=np.int32)
    for i in range(len(a) - 1, -1, -1):
        for j in range(len(b) - 1, -1, -1):
            if a[i] == b[j]:
                table[i, j] = table[i + 1, j + 1] + 1
            else:
                table[i, j] = max(table[i + 1, j], table[i, j + 1])

    pairs = []
    i = j = 0
    while i < len(a) and j < len(b):
        if a[i] == b[j]:
            pairs.append((i, j))
            i += 1
            j += 1
        elif table[i + 1, j] >= table[i, j + 1]:
            i += 1
        else:
            j += 1
    return pairs


def temporal_iou(a: Segment, b: Segment) -> float:
    """Intersection over union of two inclusive frame ranges."""
    overlap = min(a.end, b.end) - max(a.start, b.start) + 1
    if overlap <= 0:
        return 0.0
    union = max(a.end, b.end) - min(a.start, b.start) + 1
    return overlap / union


def compare(pred: Segmentation, ref: Segmentation) -> DemoMetrics:
    """Compute the agreement of ``pred`` with ``ref`` for one demo.

    Raises:
        ValueError: the two segmentations describe different demos or demo
            lengths.
    """
    if pred.demo_key != ref.demo_key:
        raise ValueError(f"cannot compare {pred.demo_key!r} with {ref.demo_key!r}")
    if pred.num_frames != ref.num_frames:
        raise ValueError(
            f"{ref.demo_key}: prediction has {pred.num_frames} frames, "
            f"reference has {ref.num_frames}"
        )

    pairs = pair_segments(pred.segments, ref.segments)
    partner = {j: i for i, j in pairs}
    errors = []
    unmatched = 0
    for j, segment in enumerate(ref.segments[:-1]):
        if j in partner:
            errors.append(abs(pred.segments[partner[j]].end - segment.end))
        else:
            unmatched += 1

    iou = tuple(
        temporal_iou(pred.segments[partner[j]], segment) if j in partner else 0.0
        for j, segment in enumerate(ref.segments)
    )
    longest = max(len(pred.segments), len(ref.segments))
    mae = float(np.mean(errors)) if errors else 0.0
    return DemoMetrics(
        demo_key=ref.demo_key,
        boundary_errors=tuple(int(e) for e in errors),
        boundary_mae_frames=mae,
        boundary_mae_seconds=mae / ref.fps,
        boundary_max_frames=int(max(errors, default=0)),
        iou=iou,
        mean_iou=float(np.mean(iou)) if iou else 0.0,
        plan_alignment=len(pairs) / longest if longest else 1.0,
        unmatched_boundaries=unmatched,
    )


def compare_runs(
    preds: Iterable[Segmentation],
    refs: Iterable[Segmentation],
    passed: Mapping[str, bool] | None = None,
) -> RunMetrics:
    """Compare every reference demo with its prediction, matched by ``demo_key``.

    Args:
        preds: predicted segmentations; failed ones count as missing.
        refs: reference segmentations; failed references are skipped.
        passed: validation result per demo key of the predictions, if known.
    """
    by_key = {p.demo_key: p for p in preds if p.ok}
    demos = []
    missing = []
    fps = []
    for ref in refs:
        if not ref.ok:
            continue
        if ref.demo_key not in by_key:
            missing.append(ref.demo_key)
            continue
        demos.append(compare(by_key[ref.demo_key], ref))
        fps.append(ref.fps)

    errors = [e for d in demos for e in d.boundary_errors]
    mae = float(np.mean(errors)) if errors else 0.0
    total = len(demos) + len(missing)
    pass_rate = None
    if passed is not None:
        pass_rate = (
            sum(bool(v) for v in passed.values()) / len(passed) if passed else 0.0
        )
    return RunMetrics(
        demos=tuple(demos),
        boundary_mae_frames=mae,
        boundary_mae_seconds=mae / float(np.mean(fps)) if fps else 0.0,
        boundary_max_frames=int(max(errors, default=0)),
        mean_iou=sum(d.mean_iou for d in demos) / total if total else 0.0,
        plan_alignment=sum(d.plan_alignment for d in demos) / total if total else 0.0,
        pass_rate=pass_rate,
        missing=tuple(missing),
    )
