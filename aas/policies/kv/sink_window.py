"""Sink plus recent-window KV cache, the StreamingLLM-style baseline.

Keeps the first ``sink_tokens`` tokens and the most recent tokens, up to a
fixed active budget, and drops the rest. Unlike StreamingLLM, kept tokens
keep their original positions (no re-rotation), which is valid while the
context stays within the model's trained length. Source: Xiao et al.,
"Efficient Streaming Language Models with Attention Sinks" (2023).
"""

from __future__ import annotations

import torch
from transformers.cache_utils import Cache

from aas.policies.kv.layer import PartialLayer


class SinkWindowLayer(PartialLayer):
    """A layer that drops tokens between the sinks and the recent window after each update."""

    def __init__(self, budget: int, sink_tokens: int) -> None:
        super().__init__()
        self.budget = budget
        self.sink_tokens = sink_tokens

    def update(self, key_states, value_states, *args, **kwargs):
        keys, values = super().update(key_states, value_states, *args, **kwargs)
        # The current forward attends to everything; the eviction applies from the next one.
        active = self.num_active()
        if active > self.budget:
            recent = self.budget - self.sink_tokens
            keep = torch.cat(
                [
                    torch.arange(self.sink_tokens),
                    torch.arange(active - recent, active),
                ]
            )
            self.keep(keep)
        return keys, values


class SinkWindowCache(Cache):
    """Keep ``sink_tokens`` first tokens plus the most recent ones, ``budget`` in all.

    Args:
        budget: active tokens kept between forward passes.
        sink_tokens: first tokens always kept (``< budget``).
    """

    def __init__(self, budget: int, sink_tokens: int = 4) -> None:
        if not 0 <= sink_tokens < budget:
            raise ValueError(
                f"SinkWindowCache needs 0 <= sink_tokens < budget, got sink_tokens={sink_tokens}, "
                f"budget={budget}"
            )
        super().__init__(
            layer_class_to_replicate=lambda: SinkWindowLayer(budget, sink_tokens)
        )
        self.budget = budget
        self.sink_tokens = sink_tokens

    @property
    def num_active(self) -> int:
        """Tokens in the active key/value tensors of the first layer."""
        return self.layers[0].num_active() if self.layers else 0
