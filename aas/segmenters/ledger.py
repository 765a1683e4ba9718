"""The cost ledger of a remote segmentation run and its request and token budget.

Every request is counted before it goes out, so the request budget is
never exceeded. Tokens are only known once a reply arrives, so the token
budget is checked before each request. Requests already in flight when it
is reached still finish, so the total may pass the budget by the tokens of
at most ``concurrency - 1`` requests.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from aas.schema import Cost


class BudgetExhausted(RuntimeError):
    """The run's request or token budget is spent; no further request is sent."""


@dataclass
class CostLedger:
    """Spending of one run: requests, tokens, seconds, cache hits and outcomes.

    ``max_requests`` and ``max_tokens`` of 0 mean no limit. ``requests``
    counts every HTTP request sent, retries included. ``tokens`` are input
    plus output tokens as reported by the server.
    """

    max_requests: int = 0
    max_tokens: int = 0
    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    image_tokens: int = 0
    seconds: float = 0.0
    cache_hits: int = 0
    retries: int = 0
    demos_ok: int = 0
    demos_failed: int = 0
    failures: Counter = field(default_factory=Counter)

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def exhausted_reason(self) -> str:
        """Return why the budget is spent, or ``""`` while requests may still be sent."""
        if self.max_requests and self.requests >= self.max_requests:
            return f"request budget of {self.max_requests} requests reached"
        if self.max_tokens and self.tokens >= self.max_tokens:
            return (
                f"token budget of {self.max_tokens} tokens reached ({self.tokens} used)"
            )
        return ""

    def reserve_request(self) -> None:
        """Count one request about to be sent.

        Raises:
            BudgetExhausted: the request or token budget is already spent.
        """
        reason = self.exhausted_reason()
        if reason:
            raise BudgetExhausted(reason)
        self.requests += 1

    def add_usage(
        self, input_tokens: int, output_tokens: int, image_tokens: int
    ) -> None:
        self.input_tokens += input_tokens
        self.output_tokens += output_tokens
        self.image_tokens += image_tokens

    def add_outcome(self, ok: bool, reason: str = "") -> None:
        if ok:
            self.demos_ok += 1
        else:
            self.demos_failed += 1
            self.failures[reason or "unknown"] += 1

    def cost(self) -> Cost:
        return Cost(self.requests, self.input_tokens, self.output_tokens, self.seconds)

    def to_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "image_tokens": self.image_tokens,
            "seconds": round(self.seconds, 3),
            "cache_hits": self.cache_hits,
            "retries": self.retries,
            "demos_ok": self.demos_ok,
            "demos_failed": self.demos_failed,
            "failures": dict(sorted(self.failures.items())),
            "max_requests": self.max_requests,
            "max_tokens": self.max_tokens,
        }
