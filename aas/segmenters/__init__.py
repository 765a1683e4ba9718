"""Segmenter backends; importing this package registers every backend config."""

from aas.segmenters.base import Segmenter, SegmenterConfig
from aas.segmenters.kinematic import KinematicConfig

__all__ = ["KinematicConfig", "Segmenter", "SegmenterConfig"]
