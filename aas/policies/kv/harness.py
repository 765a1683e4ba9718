"""One harness to run a causal LM over a long context with any cache policy.

Contexts are fed in chunks, one forward pass per chunk, so that policies that
decide after every step (``FreezeCache``) see the context grow the way a
planner's event log does. The same functions drive the full ``DynamicCache``,
the sink plus window baseline and transformers' offloaded cache.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from torch import nn
from transformers import DynamicCache
from transformers.cache_utils import Cache

from aas.policies.kv.freeze import FreezeCache, FreezeConfig
from aas.policies.kv.sink_window import SinkWindowCache

CACHE_KINDS = ("dynamic", "freeze", "sink_window", "offloaded")


def make_cache(
    kind: str,
    model: nn.Module,
    freeze_config: FreezeConfig | None = None,
    budget: int | None = None,
    sink_tokens: int = 4,
) -> Cache:
    """Build a cache of ``kind`` (one of ``CACHE_KINDS``) for ``model``.

    ``budget`` is the active token budget of ``sink_window``. ``offloaded``
    is ``DynamicCache(offloading=True)``, which in transformers 5.5.4 needs
    a CUDA device and raises on a CPU-only machine.
    """
    if kind == "dynamic":
        return DynamicCache()
    if kind == "freeze":
        return FreezeCache(model, freeze_config or FreezeConfig())
    if kind == "sink_window":
        if budget is None:
            raise ValueError("cache kind 'sink_window' needs an active token budget")
        return SinkWindowCache(
            budget=max(budget, sink_tokens + 1), sink_tokens=sink_tokens
        )
    if kind == "offloaded":
        return DynamicCache(config=model.config, offloading=True)
    raise ValueError(f"unknown cache kind {kind!r}; expected one of {CACHE_KINDS}")


def active_tokens(cache: Cache) -> int:
    """Return the number of tokens whose keys and values the next step attends to."""
    if isinstance(cache, (FreezeCache, SinkWindowCache)):
        return cache.num_active
    return cache.get_seq_length()


def close_cache(cache: Cache) -> None:
    """Remove the hooks of a ``FreezeCache``; other caches need nothing."""
    if isinstance(cache, FreezeCache):
        cache.close()


@dataclass
class ContextRun:
    """Result of feeding one context.

    ``seen`` and ``active`` are token counts after each chunk. ``nll`` is the
    summed negative log-likelihood in nats of tokens 1..n-1 and ``scored``
    their number. ``last_logits`` is ``[batch, vocab]`` after the last token.
    """

    seen: list[int]
    active: list[int]
    nll: float
    scored: int
    last_logits: torch.Tensor
    seconds: float


@torch.no_grad()
def feed_context(
    model: nn.Module, cache: Cache, input_ids: torch.Tensor, chunk_tokens: int
) -> ContextRun:
    """Feed ``input_ids`` (``[1, n]``) in chunks of ``chunk_tokens``, scoring each next token."""
    seen, active = [], []
    nll, scored = 0.0, 0
    previous = None
    start = time.perf_counter()
    for begin in range(0, input_ids.shape[1], chunk_tokens):
        chunk = input_ids[:, begin : begin + chunk_tokens]
        logits = model(chunk, past_key_values=cache, use_cache=True).logits.float()
        if previous is not None:
            predicted = torch.cat([previous, logits[:, :-1]], dim=1)
            targets = chunk
        else:
            predicted, targets = logits[:, :-1], chunk[:, 1:]
        log_probs = torch.log_softmax(predicted, dim=-1)
        nll -= float(log_probs.gather(-1, targets.unsqueeze(-1)).sum())
        scored += targets.numel()
        previous = logits[:, -1:]
        seen.append(cache.get_seq_length())
        active.append(active_tokens(cache))
    return ContextRun(
        seen=seen,
        active=active,
        nll=nll,
        scored=scored,
        last_logits=previous[:, -1],
        seconds=time.perf_counter() - start,
    )


@torch.no_grad()
def greedy_decode(
    model: nn.Module, cache: Cache, last_logits: torch.Tensor, max_new_tokens: int
) -> tuple[list[int], list[float]]:
    """Decode greedily one token per step; return the tokens and seconds per step."""
    tokens, seconds = [], []
    logits = last_logits
    for _ in range(max_new_tokens):
        token = logits.argmax(-1, keepdim=True)
        start = time.perf_counter()
        logits = model(token, past_key_values=cache, use_cache=True).logits[:, -1]
        seconds.append(time.perf_counter() - start)
        tokens.append(int(token))
    return tokens, seconds


def fit_exponent(seen: list[int], active: list[int], min_seen: int = 256) -> float:
    """Return b of the least-squares fit ``active ~ a * seen**b`` over ``seen >= min_seen``."""
    pairs = [(s, a) for s, a in zip(seen, active) if s >= min_seen and a > 0]
    if len(pairs) < 2:
        raise ValueError(
            f"need at least two points with seen >= {min_seen} to fit an exponent"
        )
    x = torch.tensor([float(s) for s, _ in pairs]).log()
    y = torch.tensor([float(a) for _, a in pairs]).log()
    x_centered = x - x.mean()
    return float((x_centered * (y - y.mean())).sum() / (x_centered**2).sum())
