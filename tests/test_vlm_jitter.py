"""The keyframe-jitter test and segment metrics, run end to end on the VLM backends."""

import pytest
from servers.demos import make_demos
from servers.fixtures import gemini_server, openai_server

from aas.segmenters.gemini import GeminiConfig, GeminiSegmenter
from aas.segmenters.keyframes import KeyframeConfig, uniform_keyframes
from aas.segmenters.openai_compat import OpenAIConfig, OpenAISegmenter
from aas.validation import validate

jitter = pytest.importorskip("aas.jitter")

KEY = "jitter-test-key"
FIXTURES = make_demos(2)
ITEMS = [(f.demo, f.plan) for f in FIXTURES]
REFERENCES = {f.demo.key: f.reference for f in FIXTURES}
SMALL = KeyframeConfig(image_size=16)


def keyframes_for(demo):
    return uniform_keyframes(demo.num_frames, budget=24)


def passes(segmentation, plan, demo):
    return validate(segmentation, plan, demo).passed


def run(segmenter):
    return jitter.run_jitter(
        segmenter,
        ITEMS,
        keyframes_for,
        offsets=(0, 3),
        seeds=(0, 1),
        references=REFERENCES,
        validator=passes,
    )


def test_jitter_runs_on_gemini_backend():
    with gemini_server(FIXTURES, KEY, sigma_frames=1.0) as server:
        segmenter = GeminiSegmenter(
            GeminiConfig(base_url=server.url, keyframes=SMALL), api_key=KEY
        )
        report = run(segmenter)
    unperturbed, perturbed = report.rows
    assert report.segmenter == "gemini"
    assert unperturbed.failed_runs == 0
    assert unperturbed.shift_mean_frames == 0.0
    assert unperturbed.op_agreement == 1.0
    assert perturbed.failed_runs == 0
    assert perturbed.reference_error_mean_frames is not None
    assert perturbed.reference_error_mean_frames < 10.0
    assert len(server.calls) == len(ITEMS) * (1 + 2 * 2)


def test_jitter_runs_on_openai_backend():
    with openai_server(FIXTURES, sigma_frames=1.0) as server:
        config = OpenAIConfig(base_url=f"{server.url}/v1", keyframes=SMALL)
        report = run(OpenAISegmenter(config, api_key=""))
    assert [row.max_offset for row in report.rows] == [0, 3]
    assert all(row.failed_runs == 0 for row in report.rows)
    assert report.rows[0].pass_rate is not None
