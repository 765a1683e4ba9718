"""Small WebDataset training shards in the exporter's format, written with webdataset."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import webdataset as wds
from PIL import Image

INSTRUCTIONS = ("pick up the black bowl", "place the black bowl on the plate")
ORIGINAL = "put the black bowl on the plate"


def write_shards(
    root: Path,
    demos: int = 3,
    frames: int = 6,
    per_shard: int = 8,
    chunk: int = 8,
    action_dim: int = 7,
    size: int = 32,
    seed: int = 0,
) -> Path:
    """Write ``demos * frames`` samples into ``root/shard-%06d.tar`` plus manifest.json.

    Each demo is one segment of ``frames`` frames, so chunks near its end are
    masked. The first action dimension equals the image's mean red level, so
    a model can learn it from pixels.
    """
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    pattern = str(root / "shard-%06d.tar")
    count = 0
    with wds.ShardWriter(pattern, maxcount=per_shard, verbose=0) as sink:
        for d in range(demos):
            demo_key = f"libero_goal__task_0__demo_{d}"
            for t in range(frames):
                red = int(rng.integers(0, 256))
                image = rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)
                image[..., 0] = red
                actions = rng.normal(0, 0.3, size=(chunk, action_dim)).astype(
                    np.float32
                )
                actions[:, 0] = red / 255.0
                valid = min(chunk, frames - t)
                actions[valid:] = 0.0
                mask = np.arange(chunk) < valid
                sink.write(
                    {
                        "__key__": f"{demo_key}__f{t:04d}",
                        "agentview.png": _png(image),
                        "wrist.png": _png(image),
                        "instruction.txt": INSTRUCTIONS[t * 2 // frames],
                        "original_instruction.txt": ORIGINAL,
                        "actions.npy": _npy(actions),
                        "mask.npy": _npy(mask),
                        "state.npy": _npy(rng.normal(size=9).astype(np.float32)),
                        "meta.json": json.dumps({"demo_key": demo_key, "frame": t}),
                    }
                )
                count += 1
    shards = sorted(p.name for p in root.glob("shard-*.tar"))
    (root / "manifest.json").write_text(
        json.dumps({"shards": shards, "samples": count})
    )
    return root


def _png(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def write_lerobot_dataset(
    root: Path, episodes: int = 2, frames: int = 5, size: int = 32
) -> Path:
    """Record a tiny LeRobot v3 dataset (images in parquet, no video) offline."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    features = {
        "observation.images.agentview": {
            "dtype": "image",
            "shape": (size, size, 3),
            "names": ["height", "width", "channel"],
        },
        "observation.state": {"dtype": "float32", "shape": (9,), "names": None},
        "action": {"dtype": "float32", "shape": (7,), "names": None},
        "original_instruction": {"dtype": "string", "shape": (1,), "names": None},
    }
    dataset = LeRobotDataset.create(
        LEROBOT_REPO_ID, fps=20, features=features, root=root, use_videos=False
    )
    rng = np.random.default_rng(0)
    for episode in range(episodes):
        for _ in range(frames):
            dataset.add_frame(
                {
                    "observation.images.agentview": rng.integers(
                        0, 256, (size, size, 3), dtype=np.uint8
                    ),
                    "observation.state": rng.normal(size=9).astype(np.float32),
                    "action": rng.normal(size=7).astype(np.float32),
                    "original_instruction": ORIGINAL,
                    "task": INSTRUCTIONS[episode % len(INSTRUCTIONS)],
                }
            )
        dataset.save_episode()
    dataset.finalize()
    return root


LEROBOT_REPO_ID = "local/cliprt_test"


@pytest.fixture(autouse=True)
def one_thread():
    """Run torch on one thread: on a shared 2-core machine more threads only wait."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
