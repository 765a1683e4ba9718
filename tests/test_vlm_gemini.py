"""The gemini segmenter: the real google-genai SDK against a local Gemini-protocol server."""

import base64
import io
import time

import numpy as np
import pytest
from PIL import Image
from servers import reference as ref
from servers.demos import make_demos
from servers.fixtures import gemini_server

from aas.metrics import compare_runs
from aas.segmenters import SegmenterConfig
from aas.segmenters import response as r
from aas.segmenters.gemini import GeminiConfig, GeminiSegmenter, read_api_key
from aas.segmenters.keyframes import KeyframeConfig
from aas.segmenters.prompt import PROMPT_HASH
from aas.segmenters.remote import REQUEST_FAILED, REQUEST_REJECTED

KEY = "AIzaTEST-not-a-real-key-7f3c"
FIXTURES = make_demos(3)


def items(fixtures=FIXTURES):
    return [(f.demo, f.plan) for f in fixtures]


def segmenter(server, **overrides):
    options = {
        "base_url": server.url,
        "backoff_initial_s": 0.01,
        "timeout_s": 5.0,
        "keyframes": KeyframeConfig(budget=24, image_size=32),
    }
    options.update(overrides)
    return GeminiSegmenter(GeminiConfig(**options), api_key=KEY)


def run_with_faults(faults, **overrides):
    with gemini_server(FIXTURES, KEY, faults=faults) as server:
        return segmenter(server, **overrides).segment_many(items()), server


def test_gemini_matches_reference_without_noise():
    with gemini_server(FIXTURES, KEY) as server:
        results = segmenter(
            server, keyframes=KeyframeConfig(budget=400, image_size=32)
        ).segment_many(items())
    metrics = compare_runs(results, [f.reference for f in FIXTURES])
    assert all(s.ok for s in results)
    assert metrics.boundary_mae_frames == 0.0
    assert metrics.plan_alignment == 1.0


def test_gemini_records_provenance_and_cost():
    with gemini_server(FIXTURES[:1], KEY) as server:
        result = segmenter(server).segment(FIXTURES[0].demo, FIXTURES[0].plan)
    provenance = result.provenance
    assert provenance.segmenter == "gemini"
    assert provenance.model == "gemini-2.5-pro"
    assert provenance.prompt_hash == PROMPT_HASH
    assert len(provenance.keyframes) == 24
    assert provenance.cost.requests == 1
    assert provenance.cost.input_tokens > 24 * ref.IMAGE_TOKENS
    assert provenance.cost.output_tokens > 0
    assert provenance.extra["image_tokens"] == 24 * ref.IMAGE_TOKENS


def test_gemini_request_uses_wire_format():
    with gemini_server(FIXTURES[:1], KEY) as server:
        segmenter(server, api_version="v1").segment(FIXTURES[0].demo, FIXTURES[0].plan)
    call = server.calls[0]
    assert call["path"] == "/v1/models/gemini-2.5-pro:generateContent"
    assert call["headers"]["x-goog-api-key"] == KEY
    config = call["body"]["generationConfig"]
    assert config["temperature"] == 0.0
    assert config["responseMimeType"] == "application/json"
    assert config["responseSchema"]["properties"]["segments"]["min_items"] == 2


def test_gemini_sends_labelled_upright_pngs():
    with gemini_server(FIXTURES[:1], KEY) as server:
        segmenter(server).segment(
            FIXTURES[0].demo, FIXTURES[0].plan, keyframes=[0, 7, 20]
        )
    parts = server.calls[0]["body"]["contents"][0]["parts"]
    assert [p["text"] for p in parts[1::2]] == ["Frame 0", "Frame 7", "Frame 20"]
    data = parts[2]["inlineData"]["data"]
    png = base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))
    image = np.array(Image.open(io.BytesIO(png)))
    assert image.shape == (32, 32, 3)
    assert tuple(image[0, 0]) == (255, 0, 0)


def test_gemini_retry_honours_retry_after():
    started = time.perf_counter()
    results, _server = run_with_faults({"memory/demo_0": [ref.RATE_LIMIT]})
    assert results[0].ok
    assert results[0].provenance.cost.requests == 2
    assert time.perf_counter() - started >= 1.0


def test_gemini_retries_server_errors():
    results, _ = run_with_faults(
        {"memory/demo_1": [ref.SERVER_ERROR, ref.SERVER_ERROR]}
    )
    assert results[1].ok
    assert results[1].provenance.cost.requests == 3


def test_gemini_retries_timeouts():
    with gemini_server(
        FIXTURES, KEY, faults={"memory/demo_2": [ref.TIMEOUT]}, hang_s=2.0
    ) as server:
        results = segmenter(server, timeout_s=0.5).segment_many(items())
    assert results[2].ok
    assert results[2].provenance.cost.requests == 2


def test_gemini_gives_up_after_max_retries():
    results, _ = run_with_faults(
        {"memory/demo_0": [ref.SERVER_ERROR] * 3}, max_retries=2
    )
    assert results[0].status == "failed"
    assert results[0].provenance.extra["failure_reason"] == REQUEST_FAILED
    assert results[0].provenance.extra["retryable"] is True
    assert results[1].ok and results[2].ok


@pytest.mark.parametrize(
    "fault, reason",
    [
        (ref.MALFORMED, r.MALFORMED_JSON),
        (ref.TRUNCATED, r.TRUNCATED),
        (ref.WRONG_COUNT, r.SEGMENT_COUNT_MISMATCH),
        (ref.OUT_OF_RANGE, r.FRAME_OUT_OF_RANGE),
        (ref.EMPTY_CANDIDATES, r.EMPTY_CANDIDATES),
        (ref.BLOCKED, r.SAFETY_BLOCK),
        (ref.REFUSAL, r.SAFETY_BLOCK),
    ],
)
def test_gemini_bad_reply_fails_one_demo(fault, reason):
    results, _ = run_with_faults({"memory/demo_1": [fault]})
    assert results[1].status == "failed"
    assert results[1].provenance.extra["failure_reason"] == reason
    assert results[1].error
    assert results[0].ok and results[2].ok


def test_gemini_repairs_gaps_and_lists_them():
    results, _ = run_with_faults({"memory/demo_0": [ref.GAPS]})
    assert results[0].ok
    assert any("contiguous" in note for note in results[0].provenance.extra["repairs"])


def test_gemini_wrong_key_is_rejected_without_retry():
    with gemini_server(FIXTURES[:1], "another-key") as server:
        result = segmenter(server).segment(FIXTURES[0].demo, FIXTURES[0].plan)
    assert result.provenance.extra["failure_reason"] == REQUEST_REJECTED
    assert "403" in result.error
    assert len(server.calls) == 1


def test_gemini_key_read_from_environment(monkeypatch):
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    monkeypatch.setenv("GOOGLE_API_KEY", "google-key")
    assert read_api_key() == "google-key"
    monkeypatch.setenv("GEMINI_API_KEY", "gemini-key")
    assert read_api_key() == "gemini-key"


def test_gemini_without_key_names_variables(monkeypatch):
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    with pytest.raises(ValueError, match="GEMINI_API_KEY or GOOGLE_API_KEY"):
        GeminiConfig().build()


def test_gemini_config_registered_for_cli():
    config = SegmenterConfig.get_choice_class("gemini")()
    assert isinstance(config, GeminiConfig)
    assert config.temperature == 0.0
