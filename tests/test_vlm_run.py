"""Running a remote segmenter at scale: concurrency, budget, cache, resume, key secrecy."""

import asyncio
import json
import logging

import pytest
from servers import reference as ref
from servers.demos import make_demos
from servers.fixtures import gemini_server

from aas.schema import read_segmentations
from aas.segmenters.checkpoint import Checkpoint
from aas.segmenters.gemini import GeminiConfig, GeminiSegmenter
from aas.segmenters.keyframes import KeyframeConfig
from aas.segmenters.remote import BUDGET_EXHAUSTED

KEY = "AIzaSECRET-run-tests-91ab"
FIXTURES = make_demos(6)
ITEMS = [(f.demo, f.plan) for f in FIXTURES]


def segmenter(server, **overrides):
    options = {
        "base_url": server.url,
        "backoff_initial_s": 0.01,
        "timeout_s": 5.0,
        "keyframes": KeyframeConfig(budget=16, image_size=16),
    }
    options.update(overrides)
    return GeminiSegmenter(GeminiConfig(**options), api_key=KEY)


def test_run_bounds_concurrency():
    with gemini_server(FIXTURES, KEY, latency_s=0.2) as server:
        results = segmenter(server, concurrency=2).segment_many(ITEMS)
    assert all(r.ok for r in results)
    assert server.max_in_flight == 2


def test_run_returns_results_in_input_order():
    with gemini_server(
        FIXTURES, KEY, faults={"memory/demo_0": [ref.RATE_LIMIT]}
    ) as server:
        results = segmenter(server, concurrency=6, max_retry_after_s=0.1).segment_many(
            ITEMS
        )
    assert [r.demo_key for r in results] == [f.demo.key for f in FIXTURES]


def test_rerun_reads_replies_from_cache(tmp_path):
    with gemini_server(FIXTURES, KEY) as server:
        first = segmenter(server, cache_dir=str(tmp_path)).segment_many(ITEMS)
        rerun_segmenter = segmenter(server, cache_dir=str(tmp_path))
        second = rerun_segmenter.segment_many(ITEMS)
    assert len(server.calls) == len(ITEMS)
    assert rerun_segmenter.ledger.requests == 0
    assert rerun_segmenter.ledger.cache_hits == len(ITEMS)
    assert [r.segments for r in second] == [r.segments for r in first]
    assert all(r.provenance.extra["cached"] for r in second)


def test_cache_key_changes_with_keyframes(tmp_path):
    demo, plan = ITEMS[0]
    with gemini_server(FIXTURES, KEY) as server:
        segmenter(server, cache_dir=str(tmp_path)).segment(
            demo, plan, keyframes=[0, 50, 100]
        )
        segmenter(server, cache_dir=str(tmp_path)).segment(
            demo, plan, keyframes=[0, 51, 100]
        )
    assert len(server.calls) == 2


def test_request_budget_stops_cleanly():
    with gemini_server(FIXTURES, KEY) as server:
        run = segmenter(server, concurrency=1, max_requests=3)
        results = run.segment_many(ITEMS)
    assert len(server.calls) == 3
    assert [r.ok for r in results] == [True] * 3 + [False] * 3
    assert all(
        r.provenance.extra["failure_reason"] == BUDGET_EXHAUSTED for r in results[3:]
    )
    assert run.ledger.to_dict()["failures"] == {BUDGET_EXHAUSTED: 3}


def test_token_budget_stops_before_next_request():
    with gemini_server(FIXTURES, KEY) as server:
        run = segmenter(server, concurrency=1, max_tokens=1)
        results = run.segment_many(ITEMS)
    assert len(server.calls) == 1
    assert results[0].ok
    assert not any(r.ok for r in results[1:])


def test_retries_count_against_request_budget():
    faults = {"memory/demo_0": [ref.SERVER_ERROR] * 5}
    with gemini_server(FIXTURES, KEY, faults=faults) as server:
        results = segmenter(server, concurrency=1, max_requests=2).segment_many(
            ITEMS[:2]
        )
    assert len(server.calls) == 2
    assert results[0].provenance.extra["failure_reason"] == BUDGET_EXHAUSTED


def test_ledger_sums_demo_costs():
    with gemini_server(FIXTURES, KEY) as server:
        run = segmenter(server)
        results = run.segment_many(ITEMS)
    ledger = run.ledger.to_dict()
    assert ledger["requests"] == sum(r.provenance.cost.requests for r in results)
    assert ledger["input_tokens"] == sum(
        r.provenance.cost.input_tokens for r in results
    )
    assert ledger["output_tokens"] == sum(
        r.provenance.cost.output_tokens for r in results
    )
    assert ledger["image_tokens"] == len(ITEMS) * 16 * ref.IMAGE_TOKENS
    assert ledger["demos_ok"] == len(ITEMS)
    assert ledger["seconds"] > 0


def test_resume_after_interrupt_redoes_nothing(tmp_path):
    checkpoint = tmp_path / "progress.jsonl"
    with gemini_server(FIXTURES, KEY, latency_s=0.15) as server:

        async def interrupted_run():
            task = asyncio.ensure_future(
                segmenter(server, concurrency=1).asegment_many(
                    ITEMS, checkpoint=checkpoint
                )
            )
            while (
                not checkpoint.exists() or len(checkpoint.read_text().splitlines()) < 2
            ):
                await asyncio.sleep(0.01)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

        asyncio.run(interrupted_run())
        finished = Checkpoint(checkpoint).load()
        calls_before = len(server.calls)
        results = segmenter(server, concurrency=1).segment_many(
            ITEMS, checkpoint=checkpoint
        )
    assert 2 <= len(finished) < len(ITEMS)
    assert all(r.ok for r in results)
    assert [r.demo_key for r in results] == [f.demo.key for f in FIXTURES]
    resent = [json.dumps(c["body"]) for c in server.calls[calls_before:]]
    for key in finished:
        assert not any(f"Demo: {key}\\n" in body for body in resent)
    assert len(read_segmentations(checkpoint)) == len(ITEMS)


def test_resume_retries_budget_failures(tmp_path):
    checkpoint = tmp_path / "progress.jsonl"
    with gemini_server(FIXTURES, KEY) as server:
        segmenter(server, concurrency=1, max_requests=2).segment_many(
            ITEMS, checkpoint=checkpoint
        )
        results = segmenter(server, concurrency=1).segment_many(
            ITEMS, checkpoint=checkpoint
        )
    assert all(r.ok for r in results)
    assert len(server.calls) == len(ITEMS)


def test_checkpoint_skips_line_cut_by_interrupt(tmp_path):
    checkpoint = tmp_path / "progress.jsonl"
    with gemini_server(FIXTURES, KEY) as server:
        results = segmenter(server).segment_many(ITEMS[:2])
    store = Checkpoint(checkpoint)
    store.append(results[0])
    with checkpoint.open("a") as f:
        f.write('{"demo_key": "memory/demo_1", "num_fr')
    store.append(results[1])
    assert set(store.load()) == {"memory/demo_0", "memory/demo_1"}


def test_api_key_never_written(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    faults = {
        "memory/demo_0": [ref.SERVER_ERROR] * 3,
        "memory/demo_1": [ref.SERVER_ERROR],
    }
    checkpoint = tmp_path / "progress.jsonl"
    with gemini_server(FIXTURES, KEY, faults=faults) as server:
        run = segmenter(server, max_retries=2, cache_dir=str(tmp_path / "cache"))
        results = run.segment_many(ITEMS[:3], checkpoint=checkpoint)
    assert results[0].status == "failed"
    assert "[redacted]" in results[0].error
    assert KEY not in caplog.text
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert KEY not in path.read_text(encoding="utf-8"), path
    assert KEY not in json.dumps([r.to_dict() for r in results])
    assert KEY not in json.dumps(run.ledger.to_dict())
    assert KEY not in repr(run.config)


def test_unexpected_error_fails_only_its_demo():
    broken = make_demos(1)[0]
    broken.demo.arrays["obs/agentview_rgb"] = None  # indexing it raises TypeError
    with gemini_server(FIXTURES, KEY) as server:
        results = segmenter(server).segment_many(
            [(broken.demo, broken.plan), *ITEMS[1:3]]
        )
    assert results[0].status == "failed"
    assert results[0].provenance.extra["failure_reason"] == "internal_error"
    assert "TypeError" in results[0].error
    assert results[1].ok and results[2].ok
