"""Keyframe jitter: ``aas.jitter`` and ``aas jitter`` on a scripted LIBERO demo."""

from __future__ import annotations

import json

import draccus
import numpy as np
import pytest
from predicate_fixtures import BOWL_ON_PLATE, generated_demo_file, predicate_reference

from aas.datasets.libero_hdf5 import open_demo_file
from aas.jitter import perturb_keyframes, run_jitter
from aas.segmenters import KinematicConfig
from aas.segmenters.keyframes import KeyframeConfig, select_keyframes

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return open_demo_file(generated_demo_file(tmp_path_factory)).demos[0]


def test_zero_offset_keeps_keyframes():
    keyframes = [0, 7, 19, 40, 99]
    rng = np.random.default_rng(0)
    assert perturb_keyframes(keyframes, 0, 100, rng) == keyframes


def test_offsets_stay_inside_demo():
    rng = np.random.default_rng(3)
    shifted = perturb_keyframes([0, 1, 50, 98, 99], 10, 100, rng)
    assert min(shifted) >= 0
    assert max(shifted) <= 99
    assert shifted == sorted(set(shifted))


def test_zero_offset_reproduces_segmentation(demo):
    segmenter = KinematicConfig().build()
    keyframes = select_keyframes(demo, KeyframeConfig())
    base = segmenter.segment(demo, BOWL_ON_PLATE, keyframes=keyframes)
    rng = np.random.default_rng(5)
    again = segmenter.segment(
        demo,
        BOWL_ON_PLATE,
        keyframes=perturb_keyframes(keyframes, 0, demo.num_frames, rng),
    )
    assert again.segments == base.segments


def test_large_offsets_move_boundaries(demo):
    report = run_jitter(
        KinematicConfig().build(),
        [(demo, BOWL_ON_PLATE)],
        keyframes_for=lambda d: select_keyframes(d, KeyframeConfig(budget=24)),
        offsets=(0, 10),
        seeds=(0, 1, 2),
    )
    zero, large = report.rows
    assert zero.shift_max_frames == 0
    assert zero.op_agreement == 1.0
    assert large.shift_max_frames > 0


def test_jitter_command_writes_json_and_plot(tmp_path, tmp_path_factory):
    from aas.commands import jitter

    _, reference_path = predicate_reference(tmp_path_factory)
    out = tmp_path / "jitter"
    cfg = draccus.parse(
        config_class=jitter.Config,
        args=[
            f"--input={generated_demo_file(tmp_path_factory)}",
            f"--output_dir={out}",
            f"--reference={reference_path}",
            "--offsets=[0,5]",
            "--seeds=[0,1]",
        ],
    )
    assert jitter.run(cfg) == 0
    result = json.loads((out / "jitter.json").read_text())
    zero, five = result["rows"]
    assert result["segmenter"] == "kinematic"
    assert result["reference"] == str(reference_path)
    assert zero["max_offset"] == 0
    assert zero["runs"] == 2
    assert zero["shift_mean_frames"] == 0.0
    assert zero["reference_error_mean_frames"] is not None
    assert zero["pass_rate"] is not None
    assert five["max_offset"] == 5
    assert (out / "jitter.png").read_bytes()[:8] == PNG_MAGIC


def test_jitter_command_rejects_negative_offset(tmp_path):
    from aas.commands import jitter

    cfg = jitter.Config(input="x.hdf5", output_dir=str(tmp_path), offsets=[-1])
    with pytest.raises(ValueError, match="offsets"):
        jitter.run(cfg)
