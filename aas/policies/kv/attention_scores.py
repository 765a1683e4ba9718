"""Attention weights of the newest queries over a layer's active keys.

Eager attention returns its weights. SDPA and other fused kernels return
none, so the weights are recomputed here from the layer's input: the query
projection, RoPE at the queries' positions, and softmax over the cached
keys, which are already rotated.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """Rotate the two halves of the last dimension: ``(a, b) -> (-b, a)``."""
    first, second = x.chunk(2, dim=-1)
    return torch.cat((-second, first), dim=-1)


def recompute_query(
    module: nn.Module, hidden_states: torch.Tensor, position_embeddings: tuple
) -> torch.Tensor:
    """Project and rotate the queries of a Llama-style attention module.

    Args:
        module: an attention module with ``q_proj``, ``head_dim`` (and
            ``q_norm`` when the model normalises queries before RoPE).
        hidden_states: ``[batch, q, hidden]``.
        position_embeddings: ``(cos, sin)``, each ``[batch, q, head_dim]``.

    Returns:
        Queries ``[batch, heads, q, head_dim]``, rotated like the model's own.
    """
    batch, length = hidden_states.shape[:2]
    query = module.q_proj(hidden_states).view(batch, length, -1, module.head_dim)
    if hasattr(module, "q_norm"):
        query = module.q_norm(query)
    query = query.transpose(1, 2)
    cos, sin = position_embeddings
    cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
    return query * cos + rotate_half(query) * sin


def recent_attention(
    module: nn.Module,
    kwargs: dict[str, Any],
    output: Any,
    keys: torch.Tensor,
    max_queries: int,
) -> torch.Tensor:
    """Return the attention weights of the last ``max_queries`` queries.

    Args:
        module: the attention module whose forward hook called this.
        kwargs: the keyword arguments of that forward (``hidden_states``,
            ``position_embeddings``).
        output: the module's output ``(attn_output, attn_weights or None)``.
        keys: the layer's active keys after the update,
            ``[batch, kv_heads, kv, head_dim]``; the last ``q`` of them are
            the new tokens.
        max_queries: how many of the newest queries to return.

    Returns:
        Weights ``[batch, heads, n, kv]`` with ``n = min(q, max_queries)``,
        each row summing to 1 over the active keys.
    """
    weights = output[1] if isinstance(output, tuple) and len(output) > 1 else None
    if weights is not None:
        return weights[:, :, -max_queries:, :].float()

    hidden_states = kwargs["hidden_states"]
    cos, sin = kwargs["position_embeddings"]
    num_new = hidden_states.shape[1]
    n = min(num_new, max_queries)
    query = recompute_query(
        module, hidden_states[:, -n:], (cos[:, -n:], sin[:, -n:])
    ).float()

    groups = query.shape[1] // keys.shape[1]
    expanded = keys.float().repeat_interleave(groups, dim=1)
    scaling = getattr(module, "scaling", 1.0 / math.sqrt(query.shape[-1]))
    scores = torch.matmul(query, expanded.transpose(2, 3)) * scaling

    # Query i of the last n attends to every cached key and to the new keys up to itself.
    kv = keys.shape[-2]
    query_index = torch.arange(num_new - n, num_new, device=keys.device) + (
        kv - num_new
    )
    key_index = torch.arange(kv, device=keys.device)
    future = key_index[None, :] > query_index[:, None]
    scores = scores.masked_fill(future, float("-inf"))
    return torch.softmax(scores, dim=-1)
