"""A dynamic cache layer whose stored tokens are a subset of the tokens seen.

Policies that keep only part of the context (soft freezing, sink plus window)
remove tokens from the active key/value tensors but keep counting them, so
the model's positions stay logical. ``get_seq_length`` returns every token
seen, and ``get_mask_sizes`` sizes the attention mask for the active tokens
only.
"""

from __future__ import annotations

import torch
from transformers.cache_utils import DynamicLayer


class PartialLayer(DynamicLayer):
    """A ``DynamicLayer`` that contains the active tokens of a longer context.

    ``keys`` and ``values`` are ``[batch, kv_heads, active, head_dim]``, keys
    already rotated at their original positions. ``num_removed`` counts the
    tokens seen by this layer that are not in the active tensors (frozen or
    dropped). Active tokens may be stored in any order because every cached
    token precedes every new query, so the causal mask only has to order the
    new tokens among themselves.
    """

    def __init__(self) -> None:
        super().__init__()
        self.num_removed = 0

    def num_active(self) -> int:
        """Return the number of tokens in the active tensors."""
        if not self.is_initialized or self.keys.numel() == 0:
            return 0
        return self.keys.shape[-2]

    def get_seq_length(self) -> int:
        """Return the logical length: active plus removed tokens."""
        return self.num_active() + self.num_removed

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        """Return ``(kv_length, kv_offset)`` for the mask over active tokens.

        The offset shifts the active tokens to logical indices
        ``[num_removed, seq_length)``, so all of them precede the queries at
        ``seq_length + i`` and the new tokens keep their causal order. With
        nothing removed the sizes equal ``DynamicLayer``'s.
        """
        return self.num_active() + query_length, self.num_removed

    def crop(self, max_length: int) -> None:
        if self.num_removed:
            raise ValueError(
                "cannot crop a cache with removed tokens: the removed tokens are "
                "interleaved with the kept ones, so cropping would lose positions"
            )
        super().crop(max_length)

    def keep(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Keep the active tokens at ``index`` (``[n]``) and return the others.

        Returns the removed ``(keys, values)``, each
        ``[batch, kv_heads, removed, head_dim]``.
        """
        mask = torch.ones(self.num_active(), dtype=torch.bool, device=self.keys.device)
        mask[index.to(self.keys.device)] = False
        removed_keys = self.keys[..., mask, :]
        removed_values = self.values[..., mask, :]
        kept = index.to(self.keys.device)
        self.keys = self.keys.index_select(-2, kept)
        self.values = self.values.index_select(-2, kept)
        self.num_removed += removed_keys.shape[-2]
        return removed_keys, removed_values

    def restore(self, keys: torch.Tensor, values: torch.Tensor) -> None:
        """Append previously removed tokens to the active tensors."""
        self.keys = torch.cat([self.keys, keys.to(self.device)], dim=-2)
        self.values = torch.cat([self.values, values.to(self.device)], dim=-2)
        self.num_removed -= keys.shape[-2]
