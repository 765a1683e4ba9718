"""The policy interface that simulators and evaluation use.

A policy maps one observation plus the current instruction to an action
chunk. Simulation code depends only on this interface and on the
``PolicyConfig`` registry, never on a policy's internals.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import draccus
import numpy as np

ACTION_DIM = 7
GRIPPER_OPEN = -1.0


class Policy(abc.ABC):
    """An action-chunk policy.

    Observations are dictionaries with LIBERO's observation keys
    (``agentview_image`` and ``robot0_eye_in_hand_image`` as
    ``[H, W, 3]`` uint8 in the simulator's own, upside-down orientation,
    ``robot0_eef_pos``, ``robot0_eef_quat``, ``robot0_gripper_qpos``,
    ``robot0_joint_pos`` ...). Each policy flips or resizes images the way
    it was trained.
    """

    name: str = "policy"
    # Whether ``predict`` reads camera images; evaluation skips rendering otherwise.
    needs_images: bool = True

    def reset(self) -> None:
        """Clear per-episode state before a new episode."""

    def attach(self, env: Any) -> None:
        """Give a privileged reference policy access to the simulator.

        Learned policies ignore this; the scripted controller reads object
        poses through it.
        """

    @abc.abstractmethod
    def predict(self, obs: Mapping[str, Any], instruction: str) -> np.ndarray:
        """Return an action chunk ``[chunk, 7]``: delta xyz, axis-angle, gripper.

        Gripper: -1 opens, +1 closes (LIBERO's convention).
        """

    def predict_batch(
        self, observations: list[Mapping[str, Any]], instructions: list[str]
    ) -> np.ndarray:
        """Return chunks ``[batch, chunk, 7]``; override for batched inference."""
        return np.stack(
            [self.predict(o, i) for o, i in zip(observations, instructions)]
        )


@dataclass
class PolicyConfig(draccus.ChoiceRegistry):
    """Base config of a policy; subclasses register with ``register_subclass(name)``."""

    @property
    def type(self) -> str:
        return self.get_choice_name(self.__class__)

    def build(self) -> Policy:
        raise NotImplementedError(f"{type(self).__name__} does not build a policy")


class NoopPolicy(Policy):
    """Keeps the arm still with the gripper open: the 0% floor of every task."""

    name = "noop"
    needs_images = False

    def __init__(self, chunk: int = 8) -> None:
        self.chunk = chunk

    def predict(self, obs: Mapping[str, Any], instruction: str) -> np.ndarray:
        action = np.zeros((self.chunk, ACTION_DIM), dtype=np.float32)
        action[:, -1] = GRIPPER_OPEN
        return action


@PolicyConfig.register_subclass("noop")
@dataclass
class NoopConfig(PolicyConfig):
    # Actions per returned chunk.
    chunk: int = 8

    def build(self) -> Policy:
        return NoopPolicy(self.chunk)
