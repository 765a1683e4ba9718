import dataclasses

import pytest
from fixtures_hdf5 import synthetic_demo

from aas.demo import GRIPPER_STATES, Demo
from aas.schema import Plan, Provenance, Segment, Segmentation, Step
from aas.segmenters.kinematic import KinematicSegmenter
from aas.validation import RULES, ValidationConfig, validate

BOWL = "akita_black_bowl_1"
PLATE = "plate_1"
PLAN = Plan(
    (
        Step("grasp", (BOWL,), "pick up the black bowl"),
        Step("place", (BOWL, PLATE), "place the black bowl on the plate"),
    )
)


def _segmentation(ranges, ops=None, confidence=0.9, num_frames=100) -> Segmentation:
    steps = ops or PLAN.steps
    segments = tuple(
        Segment(step.op, step.args, start, end, confidence, "test")
        for step, (start, end) in zip(steps, ranges)
    )
    return Segmentation(
        demo_key="file/demo_0",
        num_frames=num_frames,
        segments=segments,
        provenance=Provenance("test", "0"),
        plan=PLAN,
    )


def _failed(report, name):
    return [r for r in report.rule(name) if not r.passed]


def test_validation_accepts_good_segmentation():
    report = validate(_segmentation([(0, 40), (41, 99)]))

    assert report.passed, report.failures
    assert {r.name for r in report.results} == set(RULES)


def test_validation_rejects_wrong_count():
    report = validate(_segmentation([(0, 99)]))

    assert not report.passed
    assert _failed(report, "segment_count")


def test_validation_rejects_op_mismatch():
    swapped = (PLAN.steps[0], Step("put_in", (BOWL, PLATE)))

    report = validate(_segmentation([(0, 40), (41, 99)], ops=swapped))

    failures = _failed(report, "plan_match")
    assert len(failures) == 1
    assert failures[0].segment_index == 1
    assert "put_in" in failures[0].message


def test_validation_rejects_args_mismatch():
    wrong_args = (Step("grasp", (PLATE,)), PLAN.steps[1])

    report = validate(_segmentation([(0, 40), (41, 99)], ops=wrong_args))

    assert _failed(report, "plan_match")[0].segment_index == 0


def test_validation_rejects_gap():
    report = validate(_segmentation([(0, 40), (45, 99)]))

    failures = _failed(report, "contiguity")
    assert failures[0].segment_index == 1
    assert "gap" in failures[0].message


def test_validation_rejects_overlap():
    report = validate(_segmentation([(0, 40), (30, 99)]))

    assert "overlap" in _failed(report, "contiguity")[0].message


def test_validation_rejects_incomplete_coverage():
    report = validate(_segmentation([(3, 40), (41, 90)]))

    indices = sorted(r.segment_index for r in _failed(report, "coverage"))
    assert indices == [0, 1]


def test_validation_rejects_short_segment():
    report = validate(
        _segmentation([(0, 2), (3, 99)]), config=ValidationConfig(min_frames=5)
    )

    failures = _failed(report, "min_duration")
    assert [r.segment_index for r in failures] == [0]


def test_validation_rejects_low_confidence():
    report = validate(
        _segmentation([(0, 40), (41, 99)], confidence=0.1),
        config=ValidationConfig(min_confidence=0.5),
    )

    assert len(_failed(report, "confidence")) == 2


def test_validation_reports_failed_segmentation():
    failed = dataclasses.replace(
        _segmentation([]), status="failed", error="no gripper events"
    )

    report = validate(failed)

    assert "no gripper events" in _failed(report, "status")[0].message
    assert _failed(report, "segment_count")


def test_validation_skips_physics_without_demo():
    report = validate(_segmentation([(0, 40), (41, 99)]))

    for name in ("grasp_closed", "release_open", "demo_match"):
        assert all(r.skipped for r in report.rule(name)), name


def _kinematic_result(synthetic):
    demo = Demo.from_arrays("demo_0", synthetic.arrays)
    return demo, KinematicSegmenter().segment(demo, PLAN)


def test_validation_passes_kinematic_segmentation():
    demo, result = _kinematic_result(synthetic_demo(["grasp", "place"]))

    report = validate(result, demo=demo)

    assert report.passed, report.failures
    assert not any(r.skipped for r in report.rule("grasp_closed"))
    assert not any(r.skipped for r in report.rule("release_open"))


def test_validation_rejects_grasp_ending_open():
    demo, result = _kinematic_result(synthetic_demo(["grasp", "place"]))
    close = result.provenance.extra["gripper_events"][0]["frame"]
    early = _segmentation(
        [(0, close - 5), (close - 4, demo.num_frames - 1)], num_frames=demo.num_frames
    )

    report = validate(early, demo=demo)

    failures = _failed(report, "grasp_closed")
    assert [r.segment_index for r in failures] == [0]


def test_validation_rejects_empty_grasp():
    synthetic = synthetic_demo(["grasp", "place"], object_width=0.0)
    demo, result = _kinematic_result(synthetic)

    report = validate(result, demo=demo)

    assert [r.segment_index for r in _failed(report, "grasp_holds_object")] == [0]


def test_validation_rejects_release_still_closed():
    synthetic = synthetic_demo(["grasp", "place"])
    demo, result = _kinematic_result(synthetic)
    opened = result.provenance.extra["gripper_events"][1]["frame"]
    early = _segmentation(
        [
            (0, result.segments[0].end),
            (result.segments[0].end + 1, demo.num_frames - 1),
        ],
        num_frames=demo.num_frames,
    )
    fingers = synthetic.arrays[GRIPPER_STATES].copy()
    fingers[opened:] = fingers[opened - 1]
    closed_demo = Demo.from_arrays(
        "demo_0", {**synthetic.arrays, GRIPPER_STATES: fingers}
    )

    report = validate(early, demo=closed_demo)

    assert [r.segment_index for r in _failed(report, "release_open")] == [1]


def test_validation_rejects_other_demo():
    _, result = _kinematic_result(synthetic_demo(["grasp", "place"], seed=0))
    other, _ = _kinematic_result(synthetic_demo(["grasp", "place"], seed=4))

    report = validate(result, demo=other)

    assert _failed(report, "demo_match")


def test_validation_report_to_dict():
    report = validate(_segmentation([(0, 40), (45, 99)]))

    data = report.to_dict()

    assert data["passed"] is False
    assert data["failed_rules"] == ["contiguity"]
    assert data["results"][0]["name"] == "status"
    assert {"name", "passed", "message", "segment_index", "skipped"} <= set(
        data["results"][0]
    )


@pytest.mark.parametrize(
    ("ranges", "index"), [([(0, 1), (2, 99)], 0), ([(0, 97), (98, 99)], 1)]
)
def test_validation_names_short_segment(ranges, index):
    report = validate(_segmentation(ranges))

    assert [r.segment_index for r in _failed(report, "min_duration")] == [index]
