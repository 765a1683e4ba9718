"""The openai segmenter: the real openai SDK against a local chat-completions server."""

import base64
import json
import logging
import time

import pytest
from servers import reference as ref
from servers.demos import make_demos
from servers.fixtures import openai_server

from aas.metrics import compare_runs
from aas.segmenters import SegmenterConfig
from aas.segmenters import response as r
from aas.segmenters.keyframes import KeyframeConfig
from aas.segmenters.openai_compat import OpenAIConfig, OpenAISegmenter
from aas.segmenters.remote import REQUEST_REJECTED

KEY = "sk-local-TEST-5d2e"
FIXTURES = make_demos(3)
ITEMS = [(f.demo, f.plan) for f in FIXTURES]


def segmenter(server, api_key=KEY, **overrides):
    options = {
        "base_url": f"{server.url}/v1",
        "model": "local-vlm",
        "backoff_initial_s": 0.01,
        "timeout_s": 5.0,
        "keyframes": KeyframeConfig(budget=24, image_size=32),
    }
    options.update(overrides)
    return OpenAISegmenter(OpenAIConfig(**options), api_key=api_key)


def test_openai_matches_reference_without_noise():
    with openai_server(FIXTURES, KEY) as server:
        config = KeyframeConfig(budget=400, image_size=16)
        results = segmenter(server, keyframes=config).segment_many(ITEMS)
    metrics = compare_runs(results, [f.reference for f in FIXTURES])
    assert all(s.ok for s in results)
    assert metrics.boundary_mae_frames == 0.0


def test_openai_sends_data_urls_and_json_schema():
    with openai_server(FIXTURES, KEY) as server:
        segmenter(server).segment(*ITEMS[0], keyframes=[0, 9])
    body = server.calls[0]["body"]
    content = body["messages"][0]["content"]
    assert [c["text"] for c in content if c["type"] == "text"][1:] == [
        "Frame 0",
        "Frame 9",
    ]
    url = content[2]["image_url"]["url"]
    assert url.startswith("data:image/png;base64,")
    assert base64.b64decode(url.split(",", 1)[1]).startswith(b"\x89PNG")
    assert body["temperature"] == 0.0
    assert body["response_format"]["type"] == "json_schema"
    assert body["response_format"]["json_schema"]["strict"] is True
    assert server.calls[0]["headers"]["Authorization"] == f"Bearer {KEY}"


def test_openai_auto_falls_back_without_json_schema():
    with openai_server(FIXTURES, KEY, json_schema=False) as server:
        run = segmenter(server)
        results = run.segment_many(ITEMS)
    assert all(s.ok for s in results)
    assert run.response_format == "json_object"
    assert server.calls[-1]["body"]["response_format"] == {"type": "json_object"}


def test_openai_forced_json_schema_is_rejected():
    with openai_server(FIXTURES, KEY, json_schema=False) as server:
        result = segmenter(server, response_format="json_schema").segment(*ITEMS[0])
    assert result.provenance.extra["failure_reason"] == REQUEST_REJECTED
    assert "400" in result.error


def test_openai_without_key_sends_placeholder(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with openai_server(FIXTURES) as server:
        result = OpenAISegmenter(
            OpenAIConfig(
                base_url=f"{server.url}/v1", keyframes=KeyframeConfig(budget=8)
            )
        ).segment(*ITEMS[0])
    assert result.ok
    assert server.calls[0]["headers"]["Authorization"] == "Bearer not-needed"


def test_openai_key_read_from_named_variable(monkeypatch):
    monkeypatch.setenv("LOCAL_VLM_KEY", KEY)
    with openai_server(FIXTURES, KEY) as server:
        config = OpenAIConfig(
            base_url=f"{server.url}/v1",
            api_key_env="LOCAL_VLM_KEY",
            keyframes=KeyframeConfig(budget=8),
        )
        assert config.build().segment(*ITEMS[0]).ok


def test_openai_retry_honours_retry_after():
    started = time.perf_counter()
    with openai_server(
        FIXTURES, KEY, faults={"memory/demo_0": [ref.RATE_LIMIT]}
    ) as server:
        result = segmenter(server).segment(*ITEMS[0])
    assert result.ok
    assert result.provenance.cost.requests == 2
    assert time.perf_counter() - started >= 1.0


def test_openai_retries_timeout():
    with openai_server(
        FIXTURES, KEY, faults={"memory/demo_0": [ref.TIMEOUT]}, hang_s=2.0
    ) as server:
        result = segmenter(server, timeout_s=0.5).segment(*ITEMS[0])
    assert result.ok
    assert result.provenance.cost.requests == 2


def test_openai_server_error_message_is_redacted():
    faults = {"memory/demo_0": [ref.SERVER_ERROR] * 2}
    with openai_server(FIXTURES, KEY, faults=faults) as server:
        result = segmenter(server, max_retries=1).segment(*ITEMS[0])
    assert result.status == "failed"
    assert KEY not in result.error
    assert "[redacted]" in result.error


@pytest.mark.parametrize(
    "fault, reason",
    [
        (ref.REFUSAL, r.REFUSAL),
        (ref.BLOCKED, r.SAFETY_BLOCK),
        (ref.EMPTY_CANDIDATES, r.EMPTY_CANDIDATES),
        (ref.TRUNCATED, r.TRUNCATED),
        (ref.MALFORMED, r.MALFORMED_JSON),
        (ref.WRONG_COUNT, r.SEGMENT_COUNT_MISMATCH),
        (ref.OUT_OF_RANGE, r.FRAME_OUT_OF_RANGE),
    ],
)
def test_openai_bad_reply_fails_one_demo(fault, reason):
    with openai_server(FIXTURES, KEY, faults={"memory/demo_2": [fault]}) as server:
        results = segmenter(server).segment_many(ITEMS)
    assert results[2].provenance.extra["failure_reason"] == reason
    assert results[0].ok and results[1].ok


def test_openai_config_rejects_unknown_response_format():
    with pytest.raises(ValueError, match="response_format"):
        OpenAIConfig(response_format="yaml")


def test_openai_config_registered_for_cli():
    assert isinstance(SegmenterConfig.get_choice_class("openai")(), OpenAIConfig)


def test_openai_key_never_logged(caplog, tmp_path):
    caplog.set_level(logging.DEBUG)
    faults = {"memory/demo_0": [ref.SERVER_ERROR] * 2}
    with openai_server(FIXTURES, KEY, faults=faults) as server:
        run = segmenter(server, max_retries=1, cache_dir=str(tmp_path))
        results = run.segment_many(ITEMS)
    assert any(r.name.startswith("openai.") for r in caplog.records)  # SDK debug lines
    assert KEY not in caplog.text
    assert KEY not in json.dumps([r.to_dict() for r in results])
    for path in tmp_path.rglob("*.json"):
        assert KEY not in path.read_text(encoding="utf-8")
