"""Benchmark demos: LIBERO-layout files with 128 px scene-like images.

Each image is a textured colour gradient with four boxes that slide over
it, drawn with numpy. Smooth regions, edges and fine texture compress more
like rendered scenes than random noise does.

NOTE: how close their PNG sizes and decode costs are to real LIBERO renders
was not measured, because no rendered demos were available.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from aas.datasets.libero_hdf5 import iter_demo_files, write_demo_file
from aas.demo import Demo
from aas.schema import Provenance, Segment, Segmentation, write_segmentations

STEPS = (
    ("grasp", ("akita_black_bowl_1",), "pick up the black bowl"),
    ("place", ("akita_black_bowl_1", "plate_1"), "place the black bowl on the plate"),
    ("grasp", ("cream_cheese_1",), "pick up the cream cheese"),
    ("put_in", ("cream_cheese_1", "basket_1"), "put the cream cheese in the basket"),
)


def scene_images(num_frames: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """Draw ``[num_frames, size, size, 3]`` uint8 frames of a table scene."""
    y, x = np.mgrid[0:size, 0:size] / size
    background = np.stack([150 + 60 * y, 120 + 40 * x, 90 + 30 * y * x], axis=-1)
    background += rng.normal(0, 6, (size, size, 3))
    frames = np.repeat(background[None], num_frames, axis=0)
    colours = rng.uniform(30, 230, (4, 3))
    start = rng.uniform(0.1, 0.7, (4, 2))
    velocity = rng.uniform(-0.002, 0.002, (4, 2))
    box = size // 8
    for t in range(num_frames):
        for k in range(4):
            cy, cx = ((start[k] + velocity[k] * t) % 0.85 * size).astype(int)
            frames[t, cy : cy + box, cx : cx + box] = colours[k]
    return np.clip(frames, 0, 255).astype(np.uint8)


def make_demo(index: int, num_frames: int, size: int, seed: int) -> Demo:
    rng = np.random.default_rng(seed)
    ee_pos = np.cumsum(rng.normal(0, 0.005, (num_frames, 3)), axis=0)
    arrays = {
        "actions": rng.uniform(-1, 1, (num_frames, 7)),
        "states": rng.normal(size=(num_frames, 79)),
        "robot_states": np.concatenate(
            [
                rng.uniform(0, 0.04, (num_frames, 2)),
                ee_pos,
                rng.normal(size=(num_frames, 4)),
            ],
            axis=1,
        ),
        "rewards": np.zeros(num_frames),
        "dones": np.zeros(num_frames, dtype=np.uint8),
        "obs/agentview_rgb": scene_images(num_frames, size, rng),
        "obs/eye_in_hand_rgb": scene_images(num_frames, size, rng),
        "obs/gripper_states": rng.uniform(0, 0.04, (num_frames, 2)),
        "obs/joint_states": rng.normal(size=(num_frames, 7)),
        "obs/ee_pos": ee_pos,
        "obs/ee_ori": rng.normal(size=(num_frames, 3)),
    }
    return Demo.from_arrays(f"demo_{index}", arrays, instruction="put both items away")


def write_benchmark_data(
    root: Path,
    num_demos: int,
    num_frames: int = 100,
    size: int = 128,
    per_file: int = 10,
) -> Path:
    """Write ``num_demos`` demos under ``root/demos/libero_goal`` and their segmentations.

    Returns the segmentation file. Files that already exist are kept.
    """
    segments_path = root / f"segments_{num_demos}.jsonl"
    demo_dir = root / f"demos_{num_demos}" / "libero_goal"
    for f in range(-(-num_demos // per_file)):
        path = demo_dir / f"BENCH_TASK{f}_put_both_items_away_demo.hdf5"
        if path.exists():
            continue
        count = min(per_file, num_demos - f * per_file)
        demos = [make_demo(i, num_frames, size, seed=100 * f + i) for i in range(count)]
        meta = {"env_name": "Libero_Tabletop_Manipulation", "problem_info": {}}
        write_demo_file(path, demos, meta)
    segmentations = []
    for demo_file in iter_demo_files(demo_dir):
        for demo in demo_file.demos:
            bounds = np.linspace(0, demo.num_frames, len(STEPS) + 1).astype(int)
            segments = tuple(
                Segment(
                    op,
                    args,
                    int(bounds[k]),
                    int(bounds[k + 1]) - 1,
                    0.9,
                    "kinematic",
                    text,
                )
                for k, (op, args, text) in enumerate(STEPS)
            )
            segmentations.append(
                Segmentation(
                    demo_key=demo.key,
                    num_frames=demo.num_frames,
                    segments=segments,
                    provenance=Provenance(segmenter="kinematic", version="bench"),
                    instruction=demo.instruction,
                    demo_hash=demo.action_hash(),
                )
            )
    write_segmentations(segments_path, segmentations)
    return segments_path
