"""Small LIBERO-layout demo files and matching segmentations for export tests."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import numpy as np

from aas.datasets.libero_hdf5 import iter_demo_files, write_demo_file
from aas.demo import Demo
from aas.schema import Provenance, Segment, Segmentation, write_segmentations

INSTRUCTION = "put the bowl on the plate"
STEPS = (
    ("grasp", ("akita_black_bowl_1",), "pick up the black bowl"),
    ("place", ("akita_black_bowl_1", "plate_1"), "place the black bowl on the plate"),
)


def make_demo(index: int, num_frames: int, size: int, seed: int) -> Demo:
    """Build a random demo whose ``obs/ee_pos`` encodes the demo index and frame.

    The stored images are upside down like LIBERO's: pixel [0, 0] (top left
    as stored) is the marker that ends up bottom right once upright.
    """
    rng = np.random.default_rng(seed)
    frames = np.arange(num_frames, dtype=np.float64)
    agentview = rng.integers(0, 255, (num_frames, size, size, 3), dtype=np.uint8)
    wrist = rng.integers(0, 255, (num_frames, size, size, 3), dtype=np.uint8)
    agentview[:, 0, 0] = (255, 0, 0)
    wrist[:, 0, 0] = (0, 0, 255)
    actions = rng.uniform(-1, 1, (num_frames, 7))
    actions[:, 6] = np.where(frames < num_frames // 2, -1.0, 1.0)
    quat = np.tile([0.0, 0.0, 0.0, 1.0], (num_frames, 1))
    ee_pos = np.stack([frames * 0.001 + index, frames * 0.002, frames * 0.003], axis=1)
    robot_states = np.concatenate(
        [np.full((num_frames, 2), 0.04), ee_pos, quat], axis=1
    )
    arrays = {
        "actions": actions,
        "states": rng.normal(size=(num_frames, 10)),
        "robot_states": robot_states,
        "rewards": np.zeros(num_frames),
        "dones": (frames == num_frames - 1).astype(np.uint8),
        "obs/agentview_rgb": agentview,
        "obs/eye_in_hand_rgb": wrist,
        "obs/gripper_states": np.full((num_frames, 2), 0.04) - frames[:, None] * 1e-4,
        "obs/joint_states": rng.normal(size=(num_frames, 7)),
        "obs/ee_pos": ee_pos,
        "obs/ee_ori": rng.normal(size=(num_frames, 3)),
        "obs/ee_states": np.concatenate(
            [ee_pos, rng.normal(size=(num_frames, 3))], axis=1
        ),
    }
    return Demo.from_arrays(f"demo_{index}", arrays, instruction=INSTRUCTION)


def write_demo_files(
    root: Path,
    suites: dict[str, int],
    demos_per_file: int = 2,
    num_frames: int = 12,
    size: int = 16,
) -> list[Path]:
    """Write ``suites[name]`` files of ``demos_per_file`` demos under ``root/<suite>/``."""
    paths = []
    for s, (suite, num_files) in enumerate(sorted(suites.items())):
        for f in range(num_files):
            demos = [
                make_demo(i, num_frames + i, size, seed=1000 * s + 10 * f + i)
                for i in range(demos_per_file)
            ]
            meta = {
                "env_name": "Libero_Tabletop_Manipulation",
                "problem_info": {
                    "language_instruction": INSTRUCTION,
                    "problem_name": "p",
                },
                "bddl_file_name": f"task_{f}.bddl",
                "macros_image_convention": "opengl",
            }
            path = (
                root
                / suite
                / f"{suite.upper()}_TASK{f}_put_the_bowl_on_the_plate_demo.hdf5"
            )
            paths.append(write_demo_file(path, demos, meta))
    return paths


def segment_demo(demo: Demo) -> Segmentation:
    """Split a demo into the two steps of ``STEPS`` at its middle frame."""
    middle = demo.num_frames // 2
    bounds = ((0, middle - 1), (middle, demo.num_frames - 1))
    segments = tuple(
        Segment(op, args, start, end, 0.9, "kinematic", instruction)
        for (op, args, instruction), (start, end) in zip(STEPS, bounds)
    )
    return Segmentation(
        demo_key=demo.key,
        num_frames=demo.num_frames,
        segments=segments,
        provenance=Provenance(segmenter="kinematic", version="0.1.0"),
        instruction=demo.instruction,
        source_file=demo.source,
        demo_hash=demo.action_hash(),
    )


def read_demos(root: Path) -> list[Demo]:
    return [demo for demo_file in iter_demo_files(root) for demo in demo_file.demos]


def write_segmentation_file(root: Path, path: Path) -> list[Segmentation]:
    segmentations = [segment_demo(demo) for demo in read_demos(root)]
    write_segmentations(path, segmentations)
    return segmentations


class DiskFullFile:
    """A real file that fails like a full disk once ``limit`` bytes are written.

    ``write`` raises ``OSError(ENOSPC)`` as the operating system does when a
    write does not fit, which is where a full disk meets the export code.
    """

    def __init__(self, path: Path, limit: int) -> None:
        # The wrapper owns the file for its lifetime, so close() closes it.
        self._file = open(path, "wb")  # noqa: SIM115
        self.path = path
        self.limit = limit
        self.written = 0

    def write(self, data: bytes) -> int:
        if self.written + len(data) > self.limit:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self.path))
        self.written += len(data)
        return self._file.write(data)

    def tell(self) -> int:
        return self._file.tell()

    def flush(self) -> None:
        self._file.flush()

    def fileno(self) -> int:
        return self._file.fileno()

    def close(self) -> None:
        self._file.close()


def disk_full_opener(limit: int):
    """Return an opener whose files fail with ENOSPC after ``limit`` bytes."""
    return lambda path: DiskFullFile(path, limit)


def interrupt_after(items, count: int):
    """Yield ``count`` items, then raise ``KeyboardInterrupt`` like Ctrl-C."""
    for i, item in enumerate(items):
        if i == count:
            raise KeyboardInterrupt
        yield item
