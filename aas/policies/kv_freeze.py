"""The soft-freeze KV cache under its public name; see ``aas.policies.kv.freeze``."""

from aas.policies.kv.freeze import (
    FreezeCache,
    FreezeConfig,
    StepStats,
    next_token_entropy,
)

__all__ = ["FreezeCache", "FreezeConfig", "StepStats", "next_token_entropy"]
