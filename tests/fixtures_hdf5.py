"""Synthetic LIBERO demos and demo files written by the tests themselves.

``synthetic_demo`` drives a point end effector through waypoints with
minimum-jerk motion at 20 Hz and a first-order gripper (0.16 m/s finger
opening speed), so kinematic segmentation has realistic signals to work on.
The file writers use h5py directly, independent of ``aas.datasets``, and
follow the two LIBERO layouts: the original one with ``data`` attributes and
the re-rendered one without attributes and with gaps in demo numbering.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
import pytest

FPS = 20.0
OPEN_WIDTH = 0.08  # metres between the fingers when fully open
FINGER_STEP = 0.008  # metres of opening change per frame (0.16 m/s)
IMAGE_SIZE = 8  # pixels; images only need the right layout here

BDDL_TEXT = "(define (problem LIBERO_Tabletop_Manipulation)\n  (:domain robosuite)\n)\n"


@dataclass
class SyntheticDemo:
    """Arrays keyed by LIBERO dataset path, plus where each step really ends.

    ``step_ends`` holds, per step, the frame at which the fingers finished
    closing (grasp) or opening (release), or ``None`` for steps without a
    gripper event.
    """

    arrays: dict[str, np.ndarray]
    step_ends: list[int | None] = field(default_factory=list)

    @property
    def num_frames(self) -> int:
        return int(self.arrays["actions"].shape[0])


def _min_jerk(start: np.ndarray, stop: np.ndarray, frames: int) -> np.ndarray:
    s = np.linspace(0.0, 1.0, frames + 1)[1:]
    blend = 10 * s**3 - 15 * s**4 + 6 * s**5
    return start + (stop - start) * blend[:, None]


def _phases(ops: Sequence[str], rng: np.random.Generator, failed_grasp: bool):
    """Yield ``(target position, gripper closed, frames, holding, tag)`` phases."""
    above = np.array([0.0, 0.0, 1.1])
    for op in ops:
        target = np.array([rng.uniform(-0.2, 0.2), rng.uniform(-0.2, 0.2), 0.9])
        high = target + [0, 0, 0.15]
        if op == "grasp":
            yield high, False, 20, False, None
            yield target, False, 15, False, None
            if failed_grasp:
                yield target, True, 12, False, None
                yield target, False, 10, False, None
                failed_grasp = False
            yield target, True, 12, True, "closed"
            yield high, True, 15, True, None
        elif op in ("place", "put_in"):
            yield high, True, 25, True, None
            yield target, True, 15, True, None
            yield target, False, 10, False, "opened"
            yield high, False, 15, False, None
        else:  # articulated: open, close, turn_on, turn_off
            yield target, False, 20, False, None
            yield target, True, 10, True, None
            yield target + [0.12, 0.0, 0.0], True, 20, True, None
            yield target + [0.12, 0.0, 0.0], False, 10, False, "opened"
            yield above, False, 15, False, None
        above = high
    yield above, False, 10, False, None


def synthetic_demo(
    ops: Sequence[str],
    seed: int = 0,
    object_width: float = 0.03,
    failed_grasp: bool = False,
) -> SyntheticDemo:
    """Build a demo that performs ``ops`` in order.

    Args:
        ops: operator names; ``grasp``, ``place``/``put_in`` and the
            articulated ones (``open``, ``close``, ``turn_on``, ``turn_off``)
            each have a motion template.
        seed: varies object positions.
        object_width: opening (metres) at which the fingers stop on an object.
        failed_grasp: insert one empty close/open cycle before the first grasp.
    """
    rng = np.random.default_rng(seed)
    position = np.array([0.0, 0.0, 1.1])
    positions, closed, holding = [position], [False], [False]
    tag_frames: list[tuple[str, int]] = []
    for target, is_closed, frames, holds, tag in _phases(ops, rng, failed_grasp):
        path = _min_jerk(positions[-1], np.asarray(target, dtype=float), frames)
        if tag is not None:
            tag_frames.append((tag, len(positions)))
        positions.extend(path)
        closed.extend([is_closed] * frames)
        holding.extend([holds] * frames)
    pos = np.asarray(positions)
    num_frames = len(pos)

    opening = np.empty(num_frames)
    width = OPEN_WIDTH
    for t in range(num_frames):
        goal = (object_width if holding[t] else 0.0) if closed[t] else OPEN_WIDTH
        width += float(np.clip(goal - width, -FINGER_STEP, FINGER_STEP))
        opening[t] = width

    step_ends = []
    for tag, start in tag_frames:
        goal = object_width if tag == "closed" else OPEN_WIDTH
        reached = np.flatnonzero(np.abs(opening[start:] - goal) < 1e-9)
        step_ends.append(int(start + reached[0]) if reached.size else None)

    return SyntheticDemo(_arrays(pos, np.asarray(closed), opening, rng), step_ends)


def _arrays(
    pos: np.ndarray, closed: np.ndarray, opening: np.ndarray, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    num_frames = len(pos)
    delta = np.diff(pos, axis=0, append=pos[-1:])
    actions = np.zeros((num_frames, 7))
    actions[:, :3] = np.clip(delta / 0.05, -1, 1)
    actions[:, 6] = np.where(closed, 1.0, -1.0)
    fingers = np.stack([opening / 2, -opening / 2], axis=1)
    quat = np.tile([1.0, 0.0, 0.0, 0.0], (num_frames, 1))
    ori = np.tile([np.pi, 0.0, 0.0], (num_frames, 1))
    image = np.zeros((num_frames, IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)
    return {
        "actions": actions,
        "states": rng.normal(size=(num_frames, 12)),
        "robot_states": np.concatenate([fingers, pos, quat], axis=1),
        "rewards": np.zeros(num_frames),
        "dones": np.eye(1, num_frames, num_frames - 1, dtype=np.uint8)[0],
        "obs/agentview_rgb": image,
        "obs/eye_in_hand_rgb": image,
        "obs/gripper_states": fingers,
        "obs/joint_states": rng.normal(size=(num_frames, 7)),
        "obs/ee_pos": pos,
        "obs/ee_ori": ori,
        "obs/ee_states": np.concatenate([pos, ori], axis=1),
    }


def _write_demo_group(
    group: h5py.Group, arrays: dict[str, np.ndarray], attrs: bool
) -> None:
    if attrs:
        group.attrs["num_samples"] = arrays["actions"].shape[0]
        group.attrs["model_file"] = "<mujoco model='base'/>"
        group.attrs["init_state"] = arrays["states"][0]
    for name, value in arrays.items():
        group.create_dataset(name, data=value)


def write_original_file(
    path: Path,
    demos: Sequence[dict[str, np.ndarray]],
    language: str = "put the bowl on the plate",
    bddl_text: str = BDDL_TEXT,
    bddl_file_name: str = "put_the_bowl_on_the_plate.bddl",
) -> Path:
    """Write demos ``demo_0``... in LIBERO's original layout, attributes included."""
    with h5py.File(path, "w") as f:
        data = f.create_group("data")
        data.attrs["env_name"] = "Libero_Tabletop_Manipulation"
        problem_info = {
            "problem_name": "libero_tabletop_manipulation",
            "domain_name": "robosuite",
            "language_instruction": language,
        }
        data.attrs["problem_info"] = json.dumps(problem_info)
        data.attrs["bddl_file_name"] = bddl_file_name
        data.attrs["bddl_file_content"] = bddl_text
        data.attrs["env_args"] = json.dumps(
            {"type": 1, "env_name": "Libero_Tabletop_Manipulation"}
        )
        data.attrs["macros_image_convention"] = "opengl"
        data.attrs["num_demos"] = len(demos)
        data.attrs["total"] = sum(d["actions"].shape[0] for d in demos)
        for i, arrays in enumerate(demos):
            _write_demo_group(data.create_group(f"demo_{i}"), arrays, attrs=True)
    return path


def write_no_noops_file(path: Path, demos: dict[int, dict[str, np.ndarray]]) -> Path:
    """Write demos under their given numbers, with no ``data`` attributes."""
    with h5py.File(path, "w") as f:
        data = f.create_group("data")
        for number, arrays in demos.items():
            _write_demo_group(data.create_group(f"demo_{number}"), arrays, attrs=False)
    return path


def truncate_file(path: Path, keep_fraction: float = 0.5) -> Path:
    """Cut ``path`` to a fraction of its size, as an interrupted download would."""
    size = path.stat().st_size
    with path.open("r+b") as f:
        f.truncate(int(size * keep_fraction))
    return path


@pytest.fixture
def pick_place_demos() -> list[SyntheticDemo]:
    """Three grasp-then-place demos with different object positions."""
    return [synthetic_demo(["grasp", "place"], seed=s) for s in range(3)]


@pytest.fixture
def original_file(tmp_path: Path, pick_place_demos) -> Path:
    return write_original_file(
        tmp_path / "put_the_bowl_on_the_plate_demo.hdf5",
        [d.arrays for d in pick_place_demos],
    )


@pytest.fixture
def no_noops_file(tmp_path: Path, pick_place_demos) -> Path:
    demos = {number: d.arrays for number, d in zip((10, 2, 5), pick_place_demos)}
    return write_no_noops_file(
        tmp_path / "KITCHEN_SCENE3_turn_on_the_stove_demo.hdf5", demos
    )
