"""Backoff, Retry-After parsing, redaction and the reply cache."""

import email.utils
import random
import time

from aas.segmenters.cache import ReplyCache
from aas.segmenters.response import Reply
from aas.segmenters.retry import RetryPolicy, parse_retry_after, redact


def test_retry_after_reads_seconds():
    assert parse_retry_after({"Retry-After": "3"}) == 3.0
    assert parse_retry_after({"retry-after": "0.5"}) == 0.5


def test_retry_after_reads_http_date():
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25.0 <= parse_retry_after({"Retry-After": when}) <= 31.0


def test_retry_after_absent_or_invalid_is_none():
    assert parse_retry_after({}) is None
    assert parse_retry_after(None) is None
    assert parse_retry_after({"Retry-After": "soon"}) is None


def test_backoff_doubles_with_jitter_and_cap():
    policy = RetryPolicy(initial=1.0, maximum=4.0)
    rng = random.Random(0)
    for attempt, full in ((1, 1.0), (2, 2.0), (3, 4.0), (6, 4.0)):
        delay = policy.delay(attempt, None, rng)
        assert full / 2 <= delay <= full


def test_backoff_honours_longer_retry_after():
    policy = RetryPolicy(initial=0.1, maximum=1.0, max_retry_after=20.0)
    assert policy.delay(1, 7.0, random.Random(0)) == 7.0
    assert policy.delay(1, 60.0, random.Random(0)) == 20.0


def test_redact_replaces_every_secret():
    assert redact("key abc and abc", ("abc", "")) == "key [redacted] and [redacted]"


def test_cache_round_trips_reply(tmp_path):
    cache = ReplyCache(tmp_path)
    reply = Reply(text='{"segments": []}', input_tokens=5, output_tokens=2)
    cache.put("0123456789abcdef", reply)
    assert cache.get("0123456789abcdef") == reply
    assert cache.get("fedcba9876543210") is None


def test_cache_ignores_unreadable_entry(tmp_path):
    cache = ReplyCache(tmp_path)
    cache.put("0123456789abcdef", Reply(text="{}"))
    next(tmp_path.rglob("*.json")).write_text("{not json")
    assert cache.get("0123456789abcdef") is None


def test_cache_disabled_without_root():
    cache = ReplyCache(None)
    cache.put("0123456789abcdef", Reply(text="{}"))
    assert cache.get("0123456789abcdef") is None
