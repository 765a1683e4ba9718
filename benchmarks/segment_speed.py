"""Measure kinematic segmentation speed in demos per second (no simulation).

By default the demos are synthetic (grasp, place, turn_on; about 213 frames
each) written to a temporary LIBERO-layout file with the test fixtures, so
the timing includes the lazy HDF5 reads. ``--demos PATH`` times real demo
files instead, planned from their BDDL. The baseline is reading the datasets
the segmenter uses (actions, gripper states, end-effector position) from the
same file, so the ratio shows what segmentation adds over I/O.

    .venv/bin/python benchmarks/segment_speed.py [--num-demos 200] [--demos PATH]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from fixtures_hdf5 import synthetic_demo, write_original_file

from aas.commands.segment import plan_for_demo_file
from aas.datasets.libero_hdf5 import iter_demo_files, open_demo_file
from aas.demo import ACTIONS, EE_POS, GRIPPER_STATES
from aas.schema import Plan, Step
from aas.segmenters.kinematic import KinematicSegmenter

SYNTHETIC_PLAN = Plan(
    (
        Step("grasp", ("akita_black_bowl_1",), "pick up the black bowl"),
        Step("place", ("akita_black_bowl_1", "plate_1"), "place the bowl on the plate"),
        Step("turn_on", ("flat_stove_1",), "turn on the stove"),
    )
)


def _load(path: Path | None, num_demos: int, workdir: Path):
    """Return ``[(demo file, plan)]`` for the demos to time."""
    if path is None:
        arrays = [
            synthetic_demo(["grasp", "place", "turn_on"], seed=s).arrays
            for s in range(num_demos)
        ]
        path = write_original_file(workdir / "synthetic_demo.hdf5", arrays)
        return [(open_demo_file(path), SYNTHETIC_PLAN)]
    return [(f, plan_for_demo_file(f)) for f in iter_demo_files(path)]


def _jobs(files) -> list:
    """Return fresh ``(demo, plan)`` pairs, so no array is cached from a previous run."""
    return [(d, plan) for f, plan in files for d in open_demo_file(f.path).demos]


def _time_reads(files) -> tuple[int, float]:
    jobs = _jobs(files)
    started = time.perf_counter()
    for demo, _ in jobs:
        for name in (ACTIONS, GRIPPER_STATES, EE_POS):
            if demo.has(name):
                demo.array(name)
    return len(jobs), time.perf_counter() - started


def _time_segmentation(
    files, keyframe_stride: int = 0, in_memory: bool = False
) -> tuple[int, int, float]:
    segmenter = KinematicSegmenter()
    jobs = _jobs(files)
    if in_memory:
        for demo, _ in jobs:
            for name in demo.available:
                if not name.endswith("_rgb"):
                    demo.array(name)
    started = time.perf_counter()
    failed = 0
    for demo, plan in jobs:
        keyframes = (
            range(0, demo.num_frames, keyframe_stride) if keyframe_stride else None
        )
        failed += not segmenter.segment(demo, plan, keyframes=keyframes).ok
    return len(jobs), failed, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--demos", type=Path, default=None, help="demo file or folder")
    parser.add_argument("--num-demos", type=int, default=200, help="synthetic demos")
    parser.add_argument("--repeats", type=int, default=3, help="runs; the best is kept")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        files = _load(args.demos, args.num_demos, Path(tmp))
        frames = sum(d.num_frames for f, _ in files for d in f.demos)
        reads = min(
            (_time_reads(files) for _ in range(args.repeats)), key=lambda r: r[1]
        )
        memory = min(
            (_time_segmentation(files, in_memory=True) for _ in range(args.repeats)),
            key=lambda r: r[2],
        )
        dense = min(
            (_time_segmentation(files) for _ in range(args.repeats)), key=lambda r: r[2]
        )
        sparse = min(
            (_time_segmentation(files, keyframe_stride=5) for _ in range(args.repeats)),
            key=lambda r: r[2],
        )

    count = reads[0]
    print(f"demos: {count}, frames: {frames}, best of {args.repeats} runs")
    print(f"baseline, read actions+gripper+ee_pos: {count / reads[1]:8.1f} demos/s")
    for label, (n, failed, seconds) in (
        ("segment, arrays already in memory", memory),
        ("segment, every frame", dense),
        ("segment, keyframes 1/5", sparse),
    ):
        print(
            f"{label:<38} {n / seconds:8.1f} demos/s  "
            f"({seconds / reads[1]:.2f}x baseline time, {failed} failed)"
        )


if __name__ == "__main__":
    main()
