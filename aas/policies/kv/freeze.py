"""Adaptive soft-freeze KV cache with entropy-guided recovery.

After every forward pass, each active token is scored by the attention mass
it received from the most recent queries. Tokens whose score falls below a
fraction of the mean score are soft-frozen. Their keys and values leave the
active tensors for host memory and keep the RoPE rotation of their original
positions, so the model attends to fewer tokens but nothing is lost. A token
frozen for the c-th time stays frozen for ``ceil(k * sqrt(c))`` steps, then
thaws and is scored again, so rarely used tokens spend a growing share of
their life frozen and the active set grows sublinearly with the context. A
spike in next-token entropy thaws frozen tokens early. The method follows
the ASR-KF-EGR idea (adaptive soft rolling KV freeze with entropy-guided
recovery); the constants here are this implementation's own defaults.

A step is one forward pass: one generated token in decoding, one chunk when
a long context is fed in chunks.
"""

from __future__ import annotations

import collections
import logging
from dataclasses import asdict, dataclass, field
from typing import Self

import torch
from torch import nn
from transformers.cache_utils import Cache

from aas.policies.kv.attention_scores import recent_attention
from aas.policies.kv.layer import PartialLayer

logger = logging.getLogger(__name__)

REDUCTIONS = ("mean", "max")
RECOVERY_MODES = ("recent", "all")


@dataclass
class FreezeConfig:
    """Settings of ``FreezeCache``; token counts are in tokens, steps in forward passes."""

    enabled: bool = True  # false: behave exactly like DynamicCache
    sink_tokens: int = 4  # first tokens of the context, never frozen
    recent_tokens: int = 256  # most recent tokens, never frozen
    score_queries: int = 64  # importance = attention mass from the last N queries
    threshold: float = 0.1  # freeze below this fraction of the mean active importance
    freeze_steps: float = 8.0  # k: the c-th freeze lasts ceil(k * sqrt(c)) steps
    head_reduction: str = "mean"  # how to combine heads: mean or max
    layer_reduction: str = "mean"  # how to combine layers: mean or max
    entropy_threshold: float | None = (
        None  # nats; thaw when next-token entropy exceeds it
    )
    entropy_percentile: float | None = (
        None  # 0-100; or when it exceeds this running percentile
    )
    entropy_history: int = 256  # steps kept for the running percentile
    entropy_min_history: int = 16  # steps needed before the percentile trigger can fire
    recovery: str = (
        "recent"  # on a spike thaw the most recently frozen ("recent") or "all"
    )
    recovery_tokens: int = 64  # tokens thawed per spike in "recent" mode
    host_device: str = "cpu"  # where frozen keys and values are kept

    def __post_init__(self) -> None:
        for name in ("sink_tokens", "recent_tokens", "recovery_tokens"):
            if getattr(self, name) < 0:
                raise ValueError(
                    f"FreezeConfig.{name} must be >= 0, got {getattr(self, name)}"
                )
        if self.score_queries < 1:
            raise ValueError(
                f"FreezeConfig.score_queries must be >= 1, got {self.score_queries}"
            )
        if self.freeze_steps <= 0:
            raise ValueError(
                f"FreezeConfig.freeze_steps must be > 0, got {self.freeze_steps}"
            )
        if self.threshold < 0:
            raise ValueError(
                f"FreezeConfig.threshold must be >= 0, got {self.threshold}"
            )
        for name in ("head_reduction", "layer_reduction"):
            if getattr(self, name) not in REDUCTIONS:
                raise ValueError(
                    f"FreezeConfig.{name} must be one of {REDUCTIONS}, got {getattr(self, name)!r}"
                )
        if self.recovery not in RECOVERY_MODES:
            raise ValueError(
                f"FreezeConfig.recovery must be one of {RECOVERY_MODES}, got {self.recovery!r}"
            )
        if (
            self.entropy_percentile is not None
            and not 0 <= self.entropy_percentile <= 100
        ):
            raise ValueError(
                f"FreezeConfig.entropy_percentile must be in [0, 100], got {self.entropy_percentile}"
            )

    def freeze_duration(self, count: torch.Tensor) -> torch.Tensor:
        """Return ``ceil(k * sqrt(count))`` steps for freeze counts ``count``."""
        return torch.ceil(self.freeze_steps * count.double().sqrt()).long()


@dataclass
class StepStats:
    """Counters of one step, taken after its freeze and thaw decisions."""

    step: int
    seen_tokens: int
    active_tokens: int
    frozen_tokens: int
    newly_frozen: int
    thawed: int
    recovered: int
    entropy: float | None
    bytes_to_host: int
    bytes_to_device: int

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class _TokenBook:
    """Per-token state indexed by logical position, shared by all layers."""

    active: torch.Tensor = field(
        default_factory=lambda: torch.zeros(0, dtype=torch.long)
    )
    frozen: torch.Tensor = field(
        default_factory=lambda: torch.zeros(0, dtype=torch.long)
    )
    freeze_count: torch.Tensor = field(
        default_factory=lambda: torch.zeros(0, dtype=torch.long)
    )
    thaw_step: torch.Tensor = field(
        default_factory=lambda: torch.zeros(0, dtype=torch.long)
    )
    frozen_step: torch.Tensor = field(
        default_factory=lambda: torch.zeros(0, dtype=torch.long)
    )
    eligible_from: torch.Tensor = field(
        default_factory=lambda: torch.zeros(0, dtype=torch.long)
    )

    @property
    def seen(self) -> int:
        return len(self.active) + len(self.frozen)

    def append(self, count: int, probation: int) -> None:
        start = self.seen
        new = torch.arange(start, start + count, dtype=torch.long)
        zeros = torch.zeros(count, dtype=torch.long)
        self.active = torch.cat([self.active, new])
        self.freeze_count = torch.cat([self.freeze_count, zeros])
        self.thaw_step = torch.cat([self.thaw_step, zeros])
        self.frozen_step = torch.cat([self.frozen_step, zeros])
        # A new token becomes eligible once it has seen a full window of queries.
        self.eligible_from = torch.cat([self.eligible_from, new + probation])


def _reduce(tensor: torch.Tensor, how: str, dim: int) -> torch.Tensor:
    return tensor.mean(dim) if how == "mean" else tensor.amax(dim)


def next_token_entropy(logits: torch.Tensor) -> float:
    """Return the entropy in nats of ``softmax(logits)``, ``[batch, vocab]``, averaged over the batch."""
    log_probs = torch.log_softmax(logits.float(), dim=-1)
    return float(-(log_probs.exp() * log_probs).sum(-1).mean())


class FreezeCache(Cache):
    """A ``transformers`` cache that soft-freezes unimportant tokens.

    Construct it with the model it will serve: it registers forward hooks on
    the attention modules (to read or recompute attention weights) and on
    the model (to read next-token logits and take the freeze decisions once
    all layers have attended). Pass it as ``past_key_values`` to
    ``model(...)`` or ``model.generate(...)``; call ``close()`` (or use it as
    a context manager) to remove the hooks.

    Every layer keeps the same active positions. Positions given to the
    model stay logical because ``get_seq_length`` counts frozen tokens, and
    the mask covers the active tokens only. With ``enabled=False`` the cache
    stores and returns exactly what ``DynamicCache`` does.

    NOTE: decisions are shared across the batch. Once tokens are frozen, a
    left-padded batch would read its padding mask at the wrong columns, so
    use batch size 1 (or unpadded batches) with freezing enabled.
    """

    def __init__(
        self, model: nn.Module | None = None, config: FreezeConfig | None = None
    ):
        super().__init__(layer_class_to_replicate=PartialLayer)
        self.config = config or FreezeConfig()
        if self.config.enabled and model is None:
            raise ValueError(
                "FreezeCache with freezing enabled needs the model to attach its hooks"
            )
        self.book = _TokenBook()
        self.frozen_keys: list[torch.Tensor | None] = []
        self.frozen_values: list[torch.Tensor | None] = []
        self.step = 0
        self.history: list[StepStats] = []
        self.bytes_to_host = 0
        self.bytes_to_device = 0
        self._window: collections.deque[tuple[int, torch.Tensor]] = collections.deque()
        self._layer_mass: list[torch.Tensor] = []
        self._rows = 0
        self._entropies: collections.deque[float] = collections.deque(
            maxlen=self.config.entropy_history
        )
        self._hooks = []
        if model is not None:
            self._attach(model)

    # Lifecycle.

    def _attach(self, model: nn.Module) -> None:
        attention_modules = [
            m
            for m in model.modules()
            if hasattr(m, "q_proj") and hasattr(m, "layer_idx")
        ]
        if self.config.enabled and not attention_modules:
            raise ValueError(
                f"{type(model).__name__} has no attention modules with q_proj and layer_idx; "
                "FreezeCache supports Llama-style decoder models"
            )
        for module in attention_modules:
            self._hooks.append(
                module.register_forward_hook(self._on_attention, with_kwargs=True)
            )
        self._hooks.append(
            model.register_forward_hook(self._on_forward, with_kwargs=True)
        )

    def close(self) -> None:
        """Remove the hooks from the model."""
        for hook in self._hooks:
            hook.remove()
        self._hooks.clear()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # Cache interface.

    def update(self, key_states, value_states, layer_idx, *args, **kwargs):
        keys, values = super().update(
            key_states, value_states, layer_idx, *args, **kwargs
        )
        while len(self.frozen_keys) <= layer_idx:
            self.frozen_keys.append(None)
            self.frozen_values.append(None)
        new_tokens = self.layers[layer_idx].num_active() - len(self.book.active)
        if new_tokens > 0:
            self.book.append(new_tokens, self.config.score_queries)
        return keys, values

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        super().reorder_cache(beam_idx)
        self._apply_to_frozen(lambda t: t.index_select(0, beam_idx.to(t.device)))

    def batch_repeat_interleave(self, repeats: int) -> None:
        super().batch_repeat_interleave(repeats)
        self._apply_to_frozen(lambda t: t.repeat_interleave(repeats, dim=0))

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        super().batch_select_indices(indices)
        self._apply_to_frozen(lambda t: t[indices.to(t.device), ...])

    def _apply_to_frozen(self, fn) -> None:
        for i, keys in enumerate(self.frozen_keys):
            if keys is not None:
                self.frozen_keys[i] = fn(keys)
                self.frozen_values[i] = fn(self.frozen_values[i])

    # Counters.

    @property
    def num_seen(self) -> int:
        """Tokens seen so far (the logical length)."""
        return self.book.seen

    @property
    def num_active(self) -> int:
        """Tokens in the active key/value tensors."""
        return len(self.book.active)

    @property
    def num_frozen(self) -> int:
        """Tokens held in host memory."""
        return len(self.book.frozen)

    def active_positions(self) -> torch.Tensor:
        """Return the logical positions of the active tokens, ``[active]``, sorted."""
        return self.book.active.sort().values

    def frozen_positions(self) -> torch.Tensor:
        """Return the logical positions of the frozen tokens, ``[frozen]``, sorted."""
        return self.book.frozen.sort().values

    # Hooks.

    def _on_attention(self, module, args, kwargs, output) -> None:
        if kwargs.get("past_key_values") is not self or not self.config.enabled:
            return
        keys = self.layers[module.layer_idx].keys
        weights = recent_attention(
            module, kwargs, output, keys, self.config.score_queries
        )
        received = _reduce(weights.sum(dim=2), self.config.head_reduction, dim=1)
        self._layer_mass.append(received.mean(0).cpu())
        self._rows = weights.shape[2]

    def _on_forward(self, module, args, kwargs, output) -> None:
        if getattr(output, "past_key_values", None) is not self:
            return
        self.step += 1
        logits = getattr(output, "logits", None)
        entropy = next_token_entropy(logits[:, -1]) if logits is not None else None
        before = (self.bytes_to_host, self.bytes_to_device)
        frozen = thawed = recovered = 0

        if self.config.enabled and self._layer_mass:
            self._push_window()
            if self._entropy_spike(entropy):
                recovered = self.recover()
            thawed = self._thaw_expired()
            if not recovered:
                frozen = self._freeze_unimportant()
        if entropy is not None:
            self._entropies.append(entropy)

        self.history.append(
            StepStats(
                step=self.step,
                seen_tokens=self.num_seen,
                active_tokens=self.num_active,
                frozen_tokens=self.num_frozen,
                newly_frozen=frozen,
                thawed=thawed,
                recovered=recovered,
                entropy=entropy,
                bytes_to_host=self.bytes_to_host - before[0],
                bytes_to_device=self.bytes_to_device - before[1],
            )
        )

    # Decisions.

    def _push_window(self) -> None:
        stacked = torch.stack(self._layer_mass)
        mass = _reduce(stacked, self.config.layer_reduction, dim=0)
        self._layer_mass.clear()
        dense = torch.zeros(self.num_seen)
        dense[self.book.active] = mass
        self._window.append((self._rows, dense))
        total = sum(rows for rows, _ in self._window)
        while total - self._window[0][0] >= self.config.score_queries:
            total -= self._window.popleft()[0]

    def importance(self) -> torch.Tensor:
        """Return the mean attention per recent query each token received, ``[seen]``."""
        scores = torch.zeros(self.num_seen)
        total = 0
        for rows, dense in self._window:
            scores[: len(dense)] += dense
            total += rows
        return scores / max(total, 1)

    def _entropy_spike(self, entropy: float | None) -> bool:
        if entropy is None or not self.num_frozen:
            return False
        if (
            self.config.entropy_threshold is not None
            and entropy > self.config.entropy_threshold
        ):
            return True
        if (
            self.config.entropy_percentile is not None
            and len(self._entropies) >= self.config.entropy_min_history
        ):
            history = torch.tensor(list(self._entropies))
            limit = float(torch.quantile(history, self.config.entropy_percentile / 100))
            return entropy > limit
        return False

    def _freeze_unimportant(self) -> int:
        positions = self.book.active
        if not len(positions):
            return 0
        seen = self.num_seen
        scores = self.importance()[positions]
        candidate = (
            (positions >= self.config.sink_tokens)
            & (positions < seen - self.config.recent_tokens)
            & (self.book.eligible_from[positions] <= seen)
        )
        chosen = candidate & (scores < self.config.threshold * scores.mean())
        if not chosen.any():
            return 0
        self.freeze(positions[chosen])
        return int(chosen.sum())

    def freeze(self, positions: torch.Tensor) -> None:
        """Move the active tokens at logical ``positions`` to host memory."""
        is_chosen = torch.isin(self.book.active, positions)
        keep = (~is_chosen).nonzero().squeeze(1)
        for i, layer in enumerate(self.layers):
            keys, values = layer.keep(keep)
            keys = keys.to(self.config.host_device)
            values = values.to(self.config.host_device)
            self.bytes_to_host += keys.numel() * keys.element_size() * 2
            if self.frozen_keys[i] is None:
                self.frozen_keys[i], self.frozen_values[i] = keys, values
            else:
                self.frozen_keys[i] = torch.cat([self.frozen_keys[i], keys], dim=-2)
                self.frozen_values[i] = torch.cat(
                    [self.frozen_values[i], values], dim=-2
                )

        moved = self.book.active[is_chosen]
        self.book.active = self.book.active[~is_chosen]
        self.book.frozen = torch.cat([self.book.frozen, moved])
        self.book.freeze_count[moved] += 1
        duration = self.config.freeze_duration(self.book.freeze_count[moved])
        self.book.thaw_step[moved] = self.step + duration
        self.book.frozen_step[moved] = self.step

    def thaw(self, positions: torch.Tensor) -> None:
        """Move the frozen tokens at logical ``positions`` back into the active set."""
        is_chosen = torch.isin(self.book.frozen, positions)
        if not is_chosen.any():
            return
        for i, layer in enumerate(self.layers):
            mask = is_chosen.to(self.frozen_keys[i].device)
            keys = self.frozen_keys[i][..., mask, :]
            values = self.frozen_values[i][..., mask, :]
            self.bytes_to_device += keys.numel() * keys.element_size() * 2
            layer.restore(keys, values)
            self.frozen_keys[i] = self.frozen_keys[i][..., ~mask, :]
            self.frozen_values[i] = self.frozen_values[i][..., ~mask, :]

        moved = self.book.frozen[is_chosen]
        self.book.frozen = self.book.frozen[~is_chosen]
        self.book.active = torch.cat([self.book.active, moved])
        # A thawed token is scored afresh over a full window before it can freeze again.
        self.book.eligible_from[moved] = self.num_seen + self.config.score_queries

    def _thaw_expired(self) -> int:
        frozen = self.book.frozen
        expired = frozen[self.book.thaw_step[frozen] <= self.step]
        if len(expired):
            self.thaw(expired)
        return len(expired)

    def recover(self) -> int:
        """Thaw frozen tokens after an entropy spike; return how many were thawed."""
        frozen = self.book.frozen
        if self.config.recovery == "all":
            chosen = frozen
        else:
            order = torch.argsort(
                self.book.frozen_step[frozen], descending=True, stable=True
            )
            chosen = frozen[order[: self.config.recovery_tokens]]
        self.thaw(chosen)
        logger.debug(
            "entropy spike at step %d: thawed %d tokens", self.step, len(chosen)
        )
        return len(chosen)
