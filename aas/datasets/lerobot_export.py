"""LeRobot dataset v3 export: one atomic segment per episode.

Written through LeRobot's own ``LeRobotDataset.create`` / ``add_frame`` /
``save_episode`` / ``finalize`` (lerobot 0.6.1), so the result loads with
``LeRobotDataset(repo_id, root=...)``. Each episode is one segment; its task
is the segment's atomic instruction. Per frame it stores:

- ``observation.images.agentview`` and ``observation.images.wrist``: upright
  RGB images, as PNG images in parquet or as AV1 videos (``use_videos``);
- ``observation.state`` float32 [8] (names: ``frames.STATE_NAMES``),
  ``observation.joint_state`` float32 [7], ``action`` float32 [7] (names:
  ``frames.ACTION_NAMES``);
- ``original_instruction``, ``op``, ``args`` (JSON list) and ``demo_key`` as
  strings, ``confidence`` float32 [1], and ``demo_frame``,
  ``segment_start``, ``segment_end`` (demo frame indices) int64 [1].
"""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from aas.datasets.frames import (
    ACTION_NAMES,
    JOINT_NAMES,
    STATE_NAMES,
    read_segment_frames,
)
from aas.datasets.gatevlap import ExportCounts
from aas.datasets.sources import SegmentedDemo
from aas.demo import AGENTVIEW, EYE_IN_HAND

logger = logging.getLogger(__name__)

AGENTVIEW_KEY = "observation.images.agentview"
WRIST_KEY = "observation.images.wrist"
ROBOT_TYPE = "franka_panda"


def _vector(names: tuple[str, ...], dtype: str = "float32") -> dict:
    return {"dtype": dtype, "shape": (len(names),), "names": list(names)}


def _scalar(dtype: str) -> dict:
    return {"dtype": dtype, "shape": (1,), "names": None}


def lerobot_features(
    image_shape: tuple[int, int, int], use_videos: bool
) -> dict[str, dict]:
    """Return the feature specification for images of shape ``[H, W, 3]``."""
    image = {
        "dtype": "video" if use_videos else "image",
        "shape": tuple(image_shape),
        "names": ["height", "width", "channels"],
    }
    return {
        AGENTVIEW_KEY: dict(image),
        WRIST_KEY: dict(image),
        "observation.state": _vector(STATE_NAMES),
        "observation.joint_state": _vector(JOINT_NAMES),
        "action": _vector(ACTION_NAMES),
        "original_instruction": _scalar("string"),
        "op": _scalar("string"),
        "args": _scalar("string"),
        "demo_key": _scalar("string"),
        "confidence": _scalar("float32"),
        "demo_frame": _scalar("int64"),
        "segment_start": _scalar("int64"),
        "segment_end": _scalar("int64"),
    }


def export_lerobot(
    items: Iterable[SegmentedDemo],
    root: str | Path,
    repo_id: str,
    use_videos: bool = False,
    fps: int = 20,
) -> ExportCounts:
    """Write a LeRobot v3 dataset at ``root`` (which must not exist yet).

    Returns the totals; the dataset is finalised even when an error stops
    the export, so the episodes saved so far stay readable.
    """
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    items = iter(items)
    first = next(items, None)
    counts = ExportCounts()
    if first is None:
        logger.warning("no segmentation to export; the LeRobot dataset was not created")
        return counts
    shape = tuple(int(n) for n in first.demo.frames(AGENTVIEW, [0]).shape[1:])
    wrist_shape = tuple(int(n) for n in first.demo.frames(EYE_IN_HAND, [0]).shape[1:])
    if wrist_shape != shape:
        raise ValueError(
            f"{first.demo.key}: agentview images are {shape} but wrist images are "
            f"{wrist_shape}; LeRobot needs one shape per feature, resize one camera"
        )
    dataset = LeRobotDataset.create(
        repo_id=repo_id,
        fps=fps,
        features=lerobot_features(shape, use_videos),
        root=root,
        robot_type=ROBOT_TYPE,
        use_videos=use_videos,
    )
    try:
        for item in itertools.chain([first], items):
            _add_demo(dataset, item, counts)
    finally:
        dataset.finalize()
    logger.info(
        "wrote %d episodes, %d frames to %s", counts.segments, counts.frames, root
    )
    return counts


def _add_demo(dataset, item: SegmentedDemo, counts: ExportCounts) -> None:
    original = item.segmentation.instruction or item.demo.instruction
    for segment in item.segmentation.segments:
        data = read_segment_frames(item.demo, segment)
        for t, frame in enumerate(data.frames):
            dataset.add_frame(
                {
                    AGENTVIEW_KEY: data.agentview[t],
                    WRIST_KEY: data.wrist[t],
                    "observation.state": data.state[t],
                    "observation.joint_state": data.joint_states[t],
                    "action": data.actions[t],
                    "original_instruction": original,
                    "op": segment.op,
                    "args": json.dumps(list(segment.args)),
                    "demo_key": item.demo.key,
                    "confidence": np.array([segment.confidence], dtype=np.float32),
                    "demo_frame": np.array([frame], dtype=np.int64),
                    "segment_start": np.array([segment.start], dtype=np.int64),
                    "segment_end": np.array([segment.end], dtype=np.int64),
                    "task": segment.instruction,
                }
            )
        dataset.save_episode()
        counts.segments += 1
        counts.frames += len(data.frames)
        counts.ops[segment.op] += 1
