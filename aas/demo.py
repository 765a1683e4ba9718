"""The in-memory view of one demonstration, independent of its file format.

Arrays are addressed by their LIBERO dataset path (``actions``, ``states``,
``robot_states``, ``obs/agentview_rgb``, ``obs/gripper_states``, ...). A
``Demo`` built by a file reader loads each array on first use, so code that
only needs actions and gripper states never decodes images.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from aas.schema import content_hash

ACTIONS = "actions"
STATES = "states"
ROBOT_STATES = "robot_states"
AGENTVIEW = "obs/agentview_rgb"
EYE_IN_HAND = "obs/eye_in_hand_rgb"
GRIPPER_STATES = "obs/gripper_states"
JOINT_STATES = "obs/joint_states"
EE_POS = "obs/ee_pos"
EE_ORI = "obs/ee_ori"
EE_STATES = "obs/ee_states"

# Datasets every LIBERO demo has in both the original and the re-rendered layout.
REQUIRED_DATASETS = (ACTIONS, GRIPPER_STATES, JOINT_STATES)

ArrayLoader = Callable[[str, Any], np.ndarray]


class MissingDatasetError(KeyError):
    """A demo lacks a dataset that an operation needs."""

    def __init__(self, demo: str, dataset: str, source: str = "") -> None:
        where = f"{source}:" if source else ""
        super().__init__(f"{where}{demo}: dataset {dataset!r} is missing")
        self.demo = demo
        self.dataset = dataset
        self.source = source

    def __str__(self) -> str:
        return self.args[0]


@dataclass
class Demo:
    """One demonstration: metadata plus lazily loaded arrays.

    Attributes:
        demo_id: the group name inside the file, such as ``demo_3``.
        instruction: the task's language instruction.
        source: path of the file the demo came from, or ``""`` in memory.
        bddl_file_name: the task's BDDL file name (may be empty).
        bddl_content: the task's BDDL text (may be empty).
        env_name / problem_name: LIBERO's ``env_name`` and problem name.
        fps: control frequency in Hz (20 for LIBERO).
        attrs: remaining file attributes (``model_file``, ``init_state``...).
    """

    demo_id: str
    num_frames: int
    instruction: str = ""
    source: str = ""
    bddl_file_name: str = ""
    bddl_content: str = ""
    env_name: str = ""
    problem_name: str = ""
    fps: float = 20.0
    attrs: dict[str, Any] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    available: tuple[str, ...] = ()
    loader: ArrayLoader | None = field(default=None, repr=False)

    @classmethod
    def from_arrays(
        cls, demo_id: str, arrays: Mapping[str, np.ndarray], **meta: Any
    ) -> Demo:
        """Build an in-memory demo; ``num_frames`` comes from ``actions``."""
        arrays = {k: np.asarray(v) for k, v in arrays.items()}
        if ACTIONS not in arrays:
            raise MissingDatasetError(demo_id, ACTIONS)
        return cls(
            demo_id=demo_id,
            num_frames=int(arrays[ACTIONS].shape[0]),
            arrays=arrays,
            available=tuple(arrays),
            **meta,
        )

    @property
    def key(self) -> str:
        """Identifier across files: ``<file stem>/<demo id>``."""
        stem = (
            self.source.rsplit("/", 1)[-1].removesuffix(".hdf5")
            if self.source
            else "memory"
        )
        return f"{stem}/{self.demo_id}"

    def has(self, name: str) -> bool:
        return name in self.arrays or name in self.available

    def array(self, name: str) -> np.ndarray:
        """Return the whole dataset ``name``, loading and caching it on first use."""
        if name in self.arrays:
            return self.arrays[name]
        if self.loader is None or name not in self.available:
            raise MissingDatasetError(self.demo_id, name, self.source)
        value = self.loader(name, slice(None))
        self.arrays[name] = value
        return value

    def frames(self, name: str, indices: Sequence[int]) -> np.ndarray:
        """Return rows ``indices`` of dataset ``name`` without loading the rest.

        Shape ``[len(indices), ...]``. Indices may be in any order and repeat.
        """
        idx = np.asarray(indices, dtype=np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= self.num_frames):
            raise IndexError(
                f"{self.key}: frame indices must be in [0, {self.num_frames - 1}], "
                f"got {idx.min()}..{idx.max()}"
            )
        if name in self.arrays:
            return self.arrays[name][idx]
        if self.loader is None or name not in self.available:
            raise MissingDatasetError(self.demo_id, name, self.source)
        order = np.unique(idx)
        rows = self.loader(name, order)
        position = {int(f): i for i, f in enumerate(order)}
        return rows[[position[int(f)] for f in idx]]

    @property
    def actions(self) -> np.ndarray:
        """Actions ``[T, 7]``: delta end-effector xyz, axis-angle, gripper (-1 open, +1 close)."""
        return self.array(ACTIONS)

    @property
    def gripper_states(self) -> np.ndarray:
        """Finger joint positions ``[T, 2]`` in metres."""
        return self.array(GRIPPER_STATES)

    @property
    def ee_pos(self) -> np.ndarray:
        """End-effector position ``[T, 3]`` in metres, world frame.

        Falls back to the first three columns of ``obs/ee_states`` or of
        ``robot_states`` (whose layout is gripper[2], eef_pos[3], eef_quat[4]).
        """
        if self.has(EE_POS):
            return self.array(EE_POS)
        if self.has(EE_STATES):
            return self.array(EE_STATES)[:, :3]
        if self.has(ROBOT_STATES):
            return self.array(ROBOT_STATES)[:, 2:5]
        raise MissingDatasetError(self.demo_id, EE_POS, self.source)

    def action_hash(self) -> str:
        """Digest of the actions, used to match a segmentation to its demo."""
        actions = np.ascontiguousarray(self.actions, dtype=np.float32)
        return content_hash(actions.tobytes(), str(actions.shape))
