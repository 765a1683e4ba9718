"""Keyframe sampling strategies and upright PNG encoding."""

import io

import numpy as np
import pytest
from PIL import Image
from servers.demos import make_demo

from aas.demo import AGENTVIEW
from aas.segmenters.keyframes import (
    KeyframeConfig,
    encode_frame,
    encode_keyframes,
    event_keyframes,
    kinematic_event_frames,
    select_keyframes,
    uniform_keyframes,
)


def test_uniform_budget_spans_demo():
    frames = uniform_keyframes(100, budget=10)
    assert len(frames) == 10
    assert frames[0] == 0
    assert frames[-1] == 99


def test_uniform_stride_keeps_last_frame():
    frames = uniform_keyframes(23, stride=5)
    assert frames == [0, 5, 10, 15, 20, 22]


def test_uniform_budget_above_length_takes_all():
    assert uniform_keyframes(5, budget=32) == [0, 1, 2, 3, 4]


def test_event_keyframes_meet_budget_exactly():
    for budget in (4, 9, 16, 40):
        frames = event_keyframes(200, [50, 120], budget)
        assert len(frames) == budget
        assert frames == sorted(set(frames))
        assert frames[0] == 0 and frames[-1] == 199


def test_event_keyframes_dense_near_events():
    frames = np.array(event_keyframes(300, [100, 200], 16, window=8, step=2))
    near = np.sum((np.abs(frames - 100) <= 8) | (np.abs(frames - 200) <= 8))
    assert 100 in frames and 200 in frames
    assert near >= 10


def test_event_keyframes_without_events_are_uniform():
    assert event_keyframes(50, [], 6) == uniform_keyframes(50, budget=6)


def test_event_keyframes_serve_primary_events_first():
    frames = event_keyframes(300, [100], 8, window=4, step=2, secondary=[200])
    assert {96, 98, 100, 102, 104} <= set(frames)
    assert 200 in frames


def test_event_keyframes_fill_gaps_when_windows_full():
    frames = event_keyframes(400, [200], 30, window=4, step=2, context_fraction=0.1)
    assert len(frames) == 30


def test_encode_frame_flips_both_axes():
    image = np.zeros((16, 16, 3), dtype=np.uint8)
    image[-1, -1] = (255, 0, 0)  # bottom-right as stored is top-left upright
    decoded = np.array(Image.open(io.BytesIO(encode_frame(image, 16))))
    assert tuple(decoded[0, 0]) == (255, 0, 0)
    assert tuple(decoded[-1, -1]) == (0, 0, 0)


def test_encode_frame_resizes_to_square_png():
    png = encode_frame(np.zeros((32, 32, 3), dtype=np.uint8), 64)
    picture = Image.open(io.BytesIO(png))
    assert picture.format == "PNG"
    assert picture.size == (64, 64)


def test_encode_keyframes_reads_fixture_upright():
    fixture = make_demo(0)
    keyframes = encode_keyframes(fixture.demo, [0, 10], AGENTVIEW, 32)
    assert [k.frame for k in keyframes] == [0, 10]
    decoded = np.array(Image.open(io.BytesIO(keyframes[0].png)))
    assert tuple(decoded[0, 0]) == (255, 0, 0)


def test_kinematic_event_frames_find_gripper_changes():
    fixture = make_demo(1)
    frames, _ = kinematic_event_frames(fixture.demo)
    command = fixture.demo.actions[:, 6] > 0
    changes = np.flatnonzero(np.diff(command.astype(int))) + 1
    for change in changes:
        assert int(change) in frames


def test_select_keyframes_events_near_reference_boundaries():
    fixture = make_demo(1)
    config = KeyframeConfig(strategy="events", budget=24)
    frames = np.array(select_keyframes(fixture.demo, config))
    assert len(frames) == 24
    for boundary in fixture.reference.boundaries():
        assert np.min(np.abs(frames - boundary)) <= 2


def test_keyframe_config_rejects_unknown_strategy():
    with pytest.raises(ValueError, match="strategy"):
        KeyframeConfig(strategy="random")
