import itertools
from dataclasses import dataclass, field

import draccus
import numpy as np
import pytest
from fixtures_hdf5 import synthetic_demo

from aas.demo import Demo
from aas.schema import Plan, Step
from aas.segmenters import SegmenterConfig
from aas.segmenters.kinematic import (
    KinematicConfig,
    KinematicSegmenter,
    detect_events,
)

BOWL = "akita_black_bowl_1"
PLATE = "plate_1"
DRAWER = "wooden_cabinet_1_top_region"
STOVE = "flat_stove_1"

GRASP = Step("grasp", (BOWL,), "pick up the black bowl")
PLACE = Step("place", (BOWL, PLATE), "place the black bowl on the plate")
OPEN = Step("open", (DRAWER,), "open the top drawer of the cabinet")
TURN_ON = Step("turn_on", (STOVE,), "turn on the stove")


def _demo(synthetic, demo_id="demo_0") -> Demo:
    return Demo.from_arrays(demo_id, synthetic.arrays, instruction="task")


def _check_contiguous(segmentation):
    segments = segmentation.segments
    assert segments[0].start == 0
    assert segments[-1].end == segmentation.num_frames - 1
    for previous, current in itertools.pairwise(segments):
        assert current.start == previous.end + 1


def test_detect_events_finds_gripper_cycle():
    synthetic = synthetic_demo(["grasp", "place"])

    events = detect_events(_demo(synthetic))

    assert [e.kind for e in events.gripper_events] == ["close", "open"]
    assert events.initial_state == "open"
    closes = np.flatnonzero(np.diff(synthetic.arrays["actions"][:, 6]) > 0) + 1
    assert events.close_frames == [int(closes[0])]
    assert abs(events.gripper_events[0].settled - synthetic.step_ends[0]) <= 2


def test_detect_events_signals_have_units_and_shape():
    synthetic = synthetic_demo(["grasp", "place"])

    events = detect_events(_demo(synthetic))

    assert events.speed.shape == (synthetic.num_frames,)
    assert events.speed.max() < 2.0
    np.testing.assert_allclose(events.height, synthetic.arrays["obs/ee_pos"][:, 2])
    assert events.opening.max() == pytest.approx(0.08)


def test_detect_events_finds_speed_minima_at_grasp():
    synthetic = synthetic_demo(["grasp", "place"])

    events = detect_events(_demo(synthetic))

    close = events.close_frames[0]
    assert np.any(np.abs(events.speed_minima - close) <= 8)


def test_pick_place_segments_end_at_gripper_events():
    synthetic = synthetic_demo(["grasp", "place"], seed=1)
    plan = Plan((GRASP, PLACE))

    result = KinematicSegmenter().segment(_demo(synthetic), plan)

    assert result.status == "ok", result.error
    grasp, place = result.segments
    assert (grasp.op, grasp.args) == ("grasp", (BOWL,))
    assert (place.op, place.args) == ("place", (BOWL, PLATE))
    assert abs(grasp.end - synthetic.step_ends[0]) <= 2
    _check_contiguous(result)


def test_segments_carry_step_instruction_and_confidence():
    result = KinematicSegmenter().segment(
        _demo(synthetic_demo(["grasp", "place"])), Plan((GRASP, PLACE))
    )

    assert [s.instruction for s in result.segments] == [
        GRASP.instruction,
        PLACE.instruction,
    ]
    assert all(0.5 < s.confidence <= 1.0 for s in result.segments)
    assert all(s.source == "kinematic" for s in result.segments)


def test_articulated_step_ends_after_release():
    synthetic = synthetic_demo(["open", "grasp", "put_in"], seed=2)
    plan = Plan(
        (OPEN, GRASP, Step("put_in", (BOWL, DRAWER), "put the bowl in the drawer"))
    )

    result = KinematicSegmenter().segment(_demo(synthetic), plan)

    assert result.status == "ok", result.error
    assert [s.op for s in result.segments] == ["open", "grasp", "put_in"]
    assert abs(result.segments[0].end - synthetic.step_ends[0]) <= 2
    assert abs(result.segments[1].end - synthetic.step_ends[1]) <= 2
    _check_contiguous(result)


def test_turn_on_after_place_is_aligned():
    synthetic = synthetic_demo(["grasp", "place", "turn_on"], seed=3)
    plan = Plan((GRASP, PLACE, TURN_ON))

    result = KinematicSegmenter().segment(_demo(synthetic), plan)

    assert result.status == "ok", result.error
    for segment, truth in zip(result.segments[:2], synthetic.step_ends[:2]):
        assert abs(segment.end - truth) <= 2
    _check_contiguous(result)


def test_retried_grasp_is_absorbed_into_grasp():
    synthetic = synthetic_demo(["grasp", "place"], failed_grasp=True)
    plan = Plan((GRASP, PLACE))

    result = KinematicSegmenter().segment(_demo(synthetic), plan)

    assert result.status == "ok", result.error
    events = result.provenance.extra["gripper_events"]
    assert [e["kind"] for e in events] == ["close", "open", "close", "open"]
    assert events[0]["empty"] is True
    assert abs(result.segments[0].end - synthetic.step_ends[0]) <= 2


def test_too_few_gripper_cycles_fails_with_reason():
    synthetic = synthetic_demo(["grasp", "place"])
    plan = Plan((GRASP, PLACE, GRASP, PLACE))

    result = KinematicSegmenter().segment(_demo(synthetic), plan)

    assert result.status == "failed"
    assert result.segments == ()
    assert "2 gripper close" in result.error
    assert "1 close" in result.error


def test_unknown_operator_fails_with_reason():
    plan = Plan((Step("juggle", (BOWL,)),))

    result = KinematicSegmenter().segment(_demo(synthetic_demo(["grasp"])), plan)

    assert result.status == "failed"
    assert "juggle" in result.error


def test_provenance_is_filled():
    demo = _demo(synthetic_demo(["grasp", "place"]))

    result = KinematicSegmenter().segment(demo, Plan((GRASP, PLACE)))

    assert result.provenance.segmenter == "kinematic"
    assert result.provenance.version
    assert result.provenance.cost.seconds > 0
    assert result.demo_hash == demo.action_hash()
    assert result.plan == Plan((GRASP, PLACE))


def test_keyframe_mode_uses_only_keyframe_values():
    synthetic = synthetic_demo(["grasp", "place"])
    plan = Plan((GRASP, PLACE))
    keyframes = list(range(0, synthetic.num_frames, 4))
    others = np.setdiff1d(np.arange(synthetic.num_frames), keyframes)
    rng = np.random.default_rng(0)
    corrupted = {}
    for name, value in synthetic.arrays.items():
        value = value.astype(np.float64)
        value[others] = rng.normal(size=value[others].shape)
        corrupted[name] = value

    clean = KinematicSegmenter().segment(_demo(synthetic), plan, keyframes=keyframes)
    noisy = KinematicSegmenter().segment(
        Demo.from_arrays("demo_0", corrupted), plan, keyframes=keyframes
    )

    assert clean.status == "ok", clean.error
    assert [s.to_dict() for s in noisy.segments] == [
        s.to_dict() for s in clean.segments
    ]
    assert clean.provenance.keyframes == tuple(keyframes)


def test_keyframe_mode_boundary_stays_near_dense_result():
    synthetic = synthetic_demo(["grasp", "place"])
    plan = Plan((GRASP, PLACE))
    keyframes = list(range(0, synthetic.num_frames, 5))

    dense = KinematicSegmenter().segment(_demo(synthetic), plan)
    sparse = KinematicSegmenter().segment(_demo(synthetic), plan, keyframes=keyframes)

    assert sparse.status == "ok", sparse.error
    assert abs(sparse.segments[0].end - dense.segments[0].end) <= 5
    assert sparse.segments[0].confidence < dense.segments[0].confidence


def test_kinematic_is_registered():
    assert SegmenterConfig.get_choice_class("kinematic") is KinematicConfig
    assert isinstance(KinematicConfig().build(), KinematicSegmenter)
    assert KinematicConfig().type == "kinematic"


def test_kinematic_selected_from_command_line():
    @dataclass
    class _Config:
        segmenter: SegmenterConfig = field(default_factory=KinematicConfig)

    cfg = draccus.parse(
        _Config, args=["--segmenter.type=kinematic", "--segmenter.skip_penalty=0.7"]
    )

    assert isinstance(cfg.segmenter, KinematicConfig)
    assert cfg.segmenter.skip_penalty == 0.7


def test_invalid_gripper_source_is_rejected():
    with pytest.raises(ValueError, match="gripper_source"):
        KinematicConfig(gripper_source="magic")


def test_short_command_flicker_is_ignored():
    synthetic = synthetic_demo(["grasp", "place"])
    actions = synthetic.arrays["actions"].copy()
    actions[10, 6] = 1.0
    arrays = {**synthetic.arrays, "actions": actions}

    events = detect_events(Demo.from_arrays("demo_0", arrays))

    assert [e.kind for e in events.gripper_events] == ["close", "open"]


def test_finger_source_matches_command_source():
    synthetic = synthetic_demo(["grasp", "place"])
    demo = _demo(synthetic)

    by_command = detect_events(demo)
    by_fingers = detect_events(demo, config=KinematicConfig(gripper_source="fingers"))

    assert [e.kind for e in by_fingers.gripper_events] == ["close", "open"]
    for a, b in zip(by_command.gripper_events, by_fingers.gripper_events):
        assert abs(a.settled - b.settled) <= 3


def test_demo_without_position_segments_by_gripper():
    synthetic = synthetic_demo(["grasp", "place"])
    arrays = {
        name: value
        for name, value in synthetic.arrays.items()
        if name not in ("obs/ee_pos", "obs/ee_states", "robot_states")
    }

    result = KinematicSegmenter().segment(
        Demo.from_arrays("demo_0", arrays), Plan((GRASP, PLACE))
    )

    assert result.status == "ok", result.error
    assert abs(result.segments[0].end - synthetic.step_ends[0]) <= 2


def test_step_without_cycle_ends_at_speed_minimum():
    synthetic = synthetic_demo(["grasp", "place"])
    demo = _demo(synthetic)
    events = detect_events(demo)

    result = KinematicSegmenter().segment(demo, Plan((OPEN, GRASP, PLACE)))

    assert result.status == "ok", result.error
    opened, grasp, _ = result.segments
    assert opened.end in set(events.speed_minima.tolist())
    assert opened.end < events.close_frames[0]
    assert opened.confidence <= 0.8
    assert abs(grasp.end - synthetic.step_ends[0]) <= 2
