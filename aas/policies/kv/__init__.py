"""KV cache policies: soft freezing, sink plus recent window, and their benchmark harness."""

from aas.policies.kv.freeze import FreezeCache, FreezeConfig, StepStats
from aas.policies.kv.layer import PartialLayer
from aas.policies.kv.sink_window import SinkWindowCache

__all__ = [
    "FreezeCache",
    "FreezeConfig",
    "PartialLayer",
    "SinkWindowCache",
    "StepStats",
]
