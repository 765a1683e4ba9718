"""Segmenter backends; importing this package registers every backend config."""

from aas.segmenters.base import Segmenter, SegmenterConfig

__all__ = ["Segmenter", "SegmenterConfig"]
