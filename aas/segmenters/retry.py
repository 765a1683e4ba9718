"""Retry policy of remote requests: exponential backoff with jitter, Retry-After.

Backends translate their SDK's exceptions into ``TransientError`` (429, 5xx,
timeouts, dropped connections: worth retrying) or ``RequestRejected`` (other
4xx: retrying cannot help). Messages are redacted before they are stored.
"""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass

RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})
REDACTED = "[redacted]"


class RemoteError(RuntimeError):
    """A request failed without a model reply; ``status`` is the HTTP status or 0."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


class TransientError(RemoteError):
    """A failure worth retrying; ``retry_after`` is the server's wait in seconds, if sent."""

    def __init__(self, message: str, status: int = 0, retry_after: float | None = None):
        super().__init__(message, status)
        self.retry_after = retry_after


class RequestRejected(RemoteError):
    """A failure that a retry with the same request cannot fix (400, 401, 403, 404...)."""


def redact(text: str, secrets: tuple[str, ...]) -> str:
    """Replace every occurrence of each non-empty secret in ``text``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return text


def parse_retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Read ``Retry-After`` (seconds or an HTTP date) as seconds from now, if present."""
    if not headers:
        return None
    value = headers.get("retry-after") or headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


@dataclass(frozen=True)
class RetryPolicy:
    """Backoff before retry ``attempt`` (1 for the first retry), in seconds.

    The wait is ``initial * 2**(attempt-1)``, capped at ``maximum`` and
    multiplied by a uniform factor in [0.5, 1] so that parallel requests do
    not retry in lockstep. A server's Retry-After replaces it when longer,
    up to ``max_retry_after``.
    """

    max_retries: int = 5
    initial: float = 1.0
    maximum: float = 30.0
    max_retry_after: float = 120.0

    def delay(
        self, attempt: int, retry_after: float | None, rng: random.Random
    ) -> float:
        backoff = min(self.maximum, self.initial * 2 ** (attempt - 1))
        backoff *= rng.uniform(0.5, 1.0)
        if retry_after is not None:
            return max(backoff, min(retry_after, self.max_retry_after))
        return backoff
