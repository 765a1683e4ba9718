"""The segmenter interface and the registry of segmenter configs.

A segmenter turns one demo plus its plan into a ``Segmentation``. Each
backend has a config dataclass registered by name, so the command line
selects one with ``--segmenter.type=<name>`` and YAML files, code and the
CLI share one definition.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass

import draccus

from aas.demo import Demo
from aas.schema import Plan, Segmentation


class Segmenter(abc.ABC):
    """Base class of every segmenter backend."""

    name: str = ""
    version: str = "0"

    @abc.abstractmethod
    def segment(
        self, demo: Demo, plan: Plan, keyframes: Sequence[int] | None = None
    ) -> Segmentation:
        """Split ``demo`` into one segment per plan step.

        Args:
            demo: the demonstration; only the arrays the backend needs are read.
            plan: the steps the segments must follow, in order.
            keyframes: frame indices the segmenter may look at, for backends
                that work from sampled frames; ``None`` lets the backend choose.

        Returns:
            A ``Segmentation`` whose ``status`` is ``"failed"`` (with a reason
            in ``error``) when the demo cannot be segmented; a failure is
            reported in the result, not raised, so a batch run continues.
        """


@dataclass
class SegmenterConfig(draccus.ChoiceRegistry):
    """Base config; subclasses are registered with ``register_subclass(name)``."""

    @property
    def type(self) -> str:
        return self.get_choice_name(self.__class__)

    def build(self) -> Segmenter:
        raise NotImplementedError(f"{type(self).__name__} does not build a segmenter")
