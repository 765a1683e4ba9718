"""The policy interface that simulators and evaluation use.

A policy maps one observation plus the current instruction to an action
chunk. Simulation code depends only on this interface, never on a policy's
internals.
"""

from __future__ import annotations

import abc
from typing import Any, Mapping

import numpy as np


class Policy(abc.ABC):
    """An action-chunk policy.

    Observations are dictionaries with LIBERO's observation keys
    (``agentview_image`` and ``robot0_eye_in_hand_image`` as
    ``[H, W, 3]`` uint8 in the simulator's own orientation,
    ``robot0_eef_pos``, ``robot0_gripper_qpos``, ``robot0_joint_pos`` ...).
    Each policy flips or resizes images the way it was trained.
    """

    name: str = "policy"

    def reset(self) -> None:
        """Clear per-episode state before a new episode."""

    @abc.abstractmethod
    def predict(self, obs: Mapping[str, Any], instruction: str) -> np.ndarray:
        """Return an action chunk ``[chunk, 7]``: delta xyz, axis-angle, gripper.

        Gripper: -1 opens, +1 closes (LIBERO's convention).
        """

    def predict_batch(
        self, observations: list[Mapping[str, Any]], instructions: list[str]
    ) -> np.ndarray:
        """Return chunks ``[batch, chunk, 7]``; override for batched inference."""
        return np.stack([self.predict(o, i) for o, i in zip(observations, instructions)])
