import pytest

from aas.metrics import compare, compare_runs, pair_segments, temporal_iou
from aas.schema import Provenance, Segment, Segmentation

BOWL = ("akita_black_bowl_1",)
BOWL_PLATE = ("akita_black_bowl_1", "plate_1")


def _seg(spans, key="f/demo_0", num_frames=100, fps=20.0, ok=True):
    labels = [("grasp", BOWL), ("place", BOWL_PLATE), ("open", ("drawer",))]
    segments = tuple(
        Segment(op, args, start, end, 1.0, "test")
        for (op, args), (start, end) in zip(labels, spans)
    )
    return Segmentation(
        demo_key=key,
        num_frames=num_frames,
        segments=segments,
        provenance=Provenance("test", "1"),
        fps=fps,
        status="ok" if ok else "failed",
    )


def test_temporal_iou_of_known_ranges():
    a = Segment("grasp", BOWL, 0, 9, 1.0, "t")
    b = Segment("grasp", BOWL, 5, 14, 1.0, "t")

    assert temporal_iou(a, b) == pytest.approx(5 / 15)
    assert temporal_iou(a, Segment("grasp", BOWL, 10, 12, 1.0, "t")) == 0.0


def test_compare_identical_segmentations_is_perfect():
    ref = _seg([(0, 40), (41, 99)])

    result = compare(ref, ref)

    assert result.boundary_mae_frames == 0.0
    assert result.mean_iou == 1.0
    assert result.plan_alignment == 1.0


def test_compare_shifted_boundary_gives_known_errors():
    ref = _seg([(0, 40), (41, 99)], fps=20.0)
    pred = _seg([(0, 50), (51, 99)], fps=20.0)

    result = compare(pred, ref)

    assert result.boundary_errors == (10,)
    assert result.boundary_mae_seconds == pytest.approx(0.5)
    assert result.iou[0] == pytest.approx(41 / 51)
    assert result.iou[1] == pytest.approx(49 / 59)


def test_compare_missing_segment_keeps_later_pairs():
    ref = _seg([(0, 30), (31, 60), (61, 99)])
    pred = Segmentation(
        demo_key="f/demo_0",
        num_frames=100,
        segments=(ref.segments[0], ref.segments[2]),
        provenance=Provenance("test", "1"),
    )

    result = compare(pred, ref)

    assert pair_segments(pred.segments, ref.segments) == [(0, 0), (1, 2)]
    assert result.plan_alignment == pytest.approx(2 / 3)
    assert result.unmatched_boundaries == 1
    assert result.iou[1] == 0.0


def test_compare_rejects_different_lengths():
    with pytest.raises(ValueError, match="prediction has 90 frames"):
        compare(_seg([(0, 40), (41, 89)], num_frames=90), _seg([(0, 40), (41, 99)]))


def test_compare_runs_counts_failed_prediction_as_missing():
    refs = [_seg([(0, 40), (41, 99)], key="f/demo_0"), _seg([(0, 40), (41, 99)], key="f/demo_1")]
    preds = [_seg([(0, 44), (45, 99)], key="f/demo_0"), _seg([(0, 40), (41, 99)], key="f/demo_1", ok=False)]

    run = compare_runs(preds, refs, passed={"f/demo_0": True, "f/demo_1": False})

    assert run.missing == ("f/demo_1",)
    assert run.boundary_mae_frames == 4.0
    assert run.plan_alignment == 0.5
    assert run.pass_rate == 0.5
