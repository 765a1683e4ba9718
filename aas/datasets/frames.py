"""Per-frame arrays of one segment, read from a demo without loading the rest.

Every export reads the same things for each frame of a segment: the 7-D
action, the proprioceptive state, the joint state, LIBERO's robot state and,
when asked, the two camera images turned upright. This module gathers them
in one place so the exports agree on the state layout.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from aas.datasets.images import needs_flip, upright
from aas.demo import (
    ACTIONS,
    AGENTVIEW,
    EE_ORI,
    EE_POS,
    EE_STATES,
    EYE_IN_HAND,
    GRIPPER_STATES,
    JOINT_STATES,
    ROBOT_STATES,
    Demo,
    MissingDatasetError,
)
from aas.schema import Segment

# Names of the 8 proprioceptive state dimensions, in order: end-effector
# position in metres (world frame), end-effector orientation as an axis-angle
# vector in radians, and the two finger joint positions in metres.
STATE_NAMES = (
    "eef_pos_x",
    "eef_pos_y",
    "eef_pos_z",
    "eef_axis_angle_x",
    "eef_axis_angle_y",
    "eef_axis_angle_z",
    "gripper_qpos_left",
    "gripper_qpos_right",
)
ACTION_NAMES = ("dx", "dy", "dz", "drx", "dry", "drz", "gripper")
JOINT_NAMES = tuple(f"joint_{i}" for i in range(7))


@dataclass
class SegmentFrames:
    """Arrays of frames ``start..end`` of one segment (n = end - start + 1).

    Attributes:
        frames: demo frame indices ``[n]``.
        actions: ``[n, 7]`` float32 (delta xyz, delta axis-angle, gripper).
        state: ``[n, 8]`` float32 laid out as ``STATE_NAMES``.
        joint_states: ``[n, 7]`` float32 joint positions in radians.
        robot_states: ``[n, 9]`` float32 LIBERO robot state (gripper 2,
            eef position 3, eef quaternion xyzw 4), or ``None`` if absent.
        agentview / wrist: ``[n, H, W, 3]`` uint8 upright images, or ``None``
            when images were not requested.
    """

    frames: np.ndarray
    actions: np.ndarray
    state: np.ndarray
    joint_states: np.ndarray
    robot_states: np.ndarray | None
    agentview: np.ndarray | None = None
    wrist: np.ndarray | None = None


def quat_to_axis_angle(quat: np.ndarray) -> np.ndarray:
    """Convert quaternions ``[n, 4]`` (x, y, z, w) to axis-angle vectors ``[n, 3]``.

    Follows robosuite's ``quat2axisangle``: the angle is in [0, 2 pi] and a
    rotation of zero maps to the zero vector.
    """
    quat = np.asarray(quat, dtype=np.float64)
    w = np.clip(quat[:, 3], -1.0, 1.0)
    sin_half = np.sqrt(1.0 - w * w)
    angle = 2.0 * np.arccos(w)
    nonzero = sin_half > 1e-8
    scale = np.where(nonzero, angle / np.where(nonzero, sin_half, 1.0), 0.0)
    return quat[:, :3] * scale[:, None]


def read_state(demo: Demo, frames: np.ndarray) -> np.ndarray:
    """Return the ``[n, 8]`` float32 state (``STATE_NAMES``) of the given frames.

    Uses ``obs/ee_pos`` and ``obs/ee_ori`` when present, else ``obs/ee_states``,
    else LIBERO's ``robot_states`` with the quaternion converted.
    """
    gripper = demo.frames(GRIPPER_STATES, frames)
    if demo.has(EE_POS) and demo.has(EE_ORI):
        pos, ori = demo.frames(EE_POS, frames), demo.frames(EE_ORI, frames)
    elif demo.has(EE_STATES):
        ee = demo.frames(EE_STATES, frames)
        pos, ori = ee[:, :3], ee[:, 3:6]
    elif demo.has(ROBOT_STATES):
        robot = demo.frames(ROBOT_STATES, frames)
        pos, ori = robot[:, 2:5], quat_to_axis_angle(robot[:, 5:9])
    else:
        raise MissingDatasetError(demo.demo_id, EE_POS, demo.source)
    return np.concatenate([pos, ori, gripper], axis=1).astype(np.float32)


def read_segment_frames(
    demo: Demo, segment: Segment, images: bool = True
) -> SegmentFrames:
    """Read the arrays of one segment's frames, images upright if requested.

    Raises:
        MissingDatasetError: the demo lacks a dataset the export needs.
    """
    frames = np.arange(segment.start, segment.end + 1)
    robot = (
        demo.frames(ROBOT_STATES, frames).astype(np.float32)
        if demo.has(ROBOT_STATES)
        else None
    )
    result = SegmentFrames(
        frames=frames,
        actions=demo.frames(ACTIONS, frames).astype(np.float32),
        state=read_state(demo, frames),
        joint_states=demo.frames(JOINT_STATES, frames).astype(np.float32),
        robot_states=robot,
    )
    if images:
        agentview = demo.frames(AGENTVIEW, frames)
        wrist = demo.frames(EYE_IN_HAND, frames)
        if needs_flip(demo.attrs):
            agentview, wrist = upright(agentview), upright(wrist)
        result.agentview, result.wrist = agentview, wrist
    return result
