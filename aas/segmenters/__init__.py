"""Segmenter backends; importing this package registers every backend config."""

from aas.segmenters.base import Segmenter, SegmenterConfig
from aas.segmenters.consensus import ConsensusConfig
from aas.segmenters.gemini import GeminiConfig
from aas.segmenters.kinematic import KinematicConfig
from aas.segmenters.openai_compat import OpenAIConfig
from aas.segmenters.predicate import PredicateConfig

__all__ = [
    "ConsensusConfig",
    "GeminiConfig",
    "KinematicConfig",
    "OpenAIConfig",
    "PredicateConfig",
    "Segmenter",
    "SegmenterConfig",
]
