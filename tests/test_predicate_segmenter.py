"""The predicate segmenter: boundaries where effects start to hold, on timelines and real demos."""

from __future__ import annotations

import draccus
import numpy as np
import pytest
from predicate_fixtures import (
    BOWL,
    BOWL_ON_PLATE,
    generated_demo_file,
    predicate_reference,
)

from aas.datasets.libero_hdf5 import open_demo_file, write_demo_file
from aas.demo import STATES, Demo
from aas.metrics import compare
from aas.schema import Plan, Step, read_segmentations
from aas.segmenters import KinematicConfig, PredicateConfig
from aas.segmenters.predicate import PredicateSegmenter, segments_from_timeline
from aas.timeline import PredicateTimeline, timeline_from_segmentation

HELD = ("holding", BOWL)
ON_PLATE = ("on", BOWL, "plate_1")


def _timeline(num_frames: int, **runs: list[tuple[int, int]]) -> PredicateTimeline:
    """Build a timeline of HELD and ON_PLATE from inclusive true runs."""
    values = np.zeros((num_frames, 2), dtype=bool)
    for column, name in enumerate(("held", "on")):
        for first, last in runs.get(name, []):
            values[first : last + 1, column] = True
    return PredicateTimeline((HELD, ON_PLATE), values)


def test_grasp_ends_when_object_held():
    timeline = _timeline(200, held=[(40, 124)], on=[(120, 199)])
    segments, _ = segments_from_timeline(timeline, BOWL_ON_PLATE)
    assert [(s.op, s.start, s.end) for s in segments] == [
        ("grasp", 0, 40),
        ("place", 41, 199),
    ]


def test_retried_grasp_uses_final_hold():
    timeline = _timeline(200, held=[(20, 30), (60, 124)], on=[(125, 199)])
    segments, _ = segments_from_timeline(timeline, BOWL_ON_PLATE)
    assert segments[0].end == 60


def test_flicker_lowers_confidence():
    steady = _timeline(200, held=[(40, 124)], on=[(125, 199)])
    flicker = _timeline(200, held=[(40, 80), (82, 124)], on=[(125, 199)])
    steady_segments, _ = segments_from_timeline(steady, BOWL_ON_PLATE)
    flicker_segments, evidence = segments_from_timeline(flicker, BOWL_ON_PLATE)
    assert flicker_segments[0].end == steady_segments[0].end
    assert evidence[0].flickers == 1
    assert steady_segments[0].confidence == pytest.approx(1.0)
    assert flicker_segments[0].confidence < steady_segments[0].confidence


def test_effect_that_never_holds_gets_zero_confidence():
    timeline = _timeline(200, held=[(40, 124)])
    segments, evidence = segments_from_timeline(timeline, BOWL_ON_PLATE)
    assert evidence[1].onset is None
    assert segments[1].end == 199
    assert segments[1].confidence == 0.0


def test_hold_on_last_frame_leaves_room_for_place():
    timeline = _timeline(200, held=[(199, 199)])
    segments, evidence = segments_from_timeline(timeline, BOWL_ON_PLATE)
    assert evidence[0].onset is None
    assert [(s.start, s.end) for s in segments] == [(0, 99), (100, 199)]


def test_effect_undone_at_end_counts_against_confidence():
    timeline = _timeline(200, held=[(40, 124)], on=[(125, 180)])
    segments, evidence = segments_from_timeline(timeline, BOWL_ON_PLATE)
    assert evidence[1].onset == 125
    assert segments[1].confidence == pytest.approx(56 / 75)


def test_missing_onset_shares_frames_evenly():
    plan = Plan((Step("grasp", (BOWL,)), Step("place", (BOWL, "plate_1"))) * 2)
    timeline = _timeline(300, held=[(200, 249)], on=[(250, 299)])
    segments, _ = segments_from_timeline(timeline, plan)
    assert [s.end for s in segments] == [66, 133, 200, 299]
    assert segments[0].confidence == 0.0


def test_timeline_round_trips_through_dict():
    timeline = _timeline(50, held=[(3, 9), (12, 20)], on=[(0, 0), (49, 49)])
    decoded = PredicateTimeline.from_dict(timeline.to_dict())
    assert decoded.atoms == timeline.atoms
    assert np.array_equal(decoded.values, timeline.values)


def test_timeline_round_trips_through_npz(tmp_path):
    timeline = _timeline(50, held=[(3, 9)], on=[(10, 49)])
    decoded = PredicateTimeline.load_npz(timeline.save_npz(tmp_path / "t.npz"))
    assert decoded.atoms == timeline.atoms
    assert np.array_equal(decoded.values, timeline.values)


def test_predicate_type_is_registered():
    from aas.commands import segment

    cfg = draccus.parse(
        config_class=segment.Config,
        args=["--segmenter.type=predicate", "--segmenter.max_gap_frames=4"],
    )
    assert isinstance(cfg.segmenter, PredicateConfig)
    assert cfg.segmenter.type == "predicate"
    assert cfg.segmenter.max_gap_frames == 4
    assert isinstance(cfg.segmenter.build(), PredicateSegmenter)


def test_config_rejects_negative_gap():
    with pytest.raises(ValueError, match="max_gap_frames"):
        PredicateConfig(max_gap_frames=-1)


# Real demos: a scripted libero_goal demo replayed in the simulator.


def test_generated_demo_boundaries_where_effects_hold(tmp_path_factory):
    reference, _ = predicate_reference(tmp_path_factory)
    assert reference.ok, reference.error
    timeline = timeline_from_segmentation(reference)
    held = timeline.series(HELD)
    on_plate = timeline.series(ON_PLATE)
    grasp, place = reference.segments
    assert held[grasp.end]
    assert not held[grasp.end - 1]
    assert on_plate[-1]
    assert not on_plate[: grasp.end + 1].any()
    assert place.end == reference.num_frames - 1
    assert grasp.confidence > 0.5
    assert place.confidence > 0.5


def test_generated_demo_kinematic_agrees(tmp_path_factory):
    reference, _ = predicate_reference(tmp_path_factory)
    demo = open_demo_file(generated_demo_file(tmp_path_factory)).demos[0]
    kinematic = KinematicConfig().build().segment(demo, BOWL_ON_PLATE)
    metrics = compare(kinematic, reference)
    assert metrics.plan_alignment == 1.0
    assert metrics.boundary_mae_frames < 5


def _without_states(tmp_path, tmp_path_factory):
    demo_file = open_demo_file(generated_demo_file(tmp_path_factory))
    demo = demo_file.demos[0]
    arrays = {name: demo.array(name) for name in demo.available if name != STATES}
    stripped = Demo.from_arrays(demo.demo_id, arrays, instruction=demo.instruction)
    return write_demo_file(tmp_path / "no_states.hdf5", [stripped], demo_file.meta())


def test_demo_without_states_fails_naming_file(tmp_path, tmp_path_factory):
    path = _without_states(tmp_path, tmp_path_factory)
    demo = open_demo_file(path).demos[0]
    result = PredicateConfig().build().segment(demo, BOWL_ON_PLATE)
    assert result.status == "failed"
    assert str(path) in result.error
    assert demo.demo_id in result.error
    assert "states" in result.error


def test_segment_command_selects_predicate(tmp_path, tmp_path_factory):
    from aas.commands import segment

    path = _without_states(tmp_path, tmp_path_factory)
    cfg = draccus.parse(
        config_class=segment.Config,
        args=[
            f"--input={path}",
            f"--output_dir={tmp_path / 'run'}",
            "--segmenter.type=predicate",
            "--plots=false",
        ],
    )
    # The only demo fails (no states), so the run exits with 1 but keeps its record.
    assert segment.run(cfg) == 1
    (record,) = read_segmentations(tmp_path / "run" / "segments.jsonl")
    assert record.provenance.segmenter == "predicate"
    assert record.status == "failed"
