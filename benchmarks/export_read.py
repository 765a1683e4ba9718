"""Read throughput of training batches: WebDataset shards versus the HDF5 demo files.

A training batch is 32 samples, each with the upright agentview and wrist
images of one frame, its 8x7 action chunk, chunk mask and atomic
instruction (what `aas.datasets.shards` stores). Three readers:

- shards: ``aas.datasets.shards.load_shards`` (webdataset 1.0.2) with a
  1000-sample shuffle buffer, decoding PNGs and .npy members, on shards
  with PNG level 1 (the default) and level 0 (``shards_png0``);
- hdf5 (toolkit reader): samples in random order through
  ``aas.datasets.libero_hdf5`` demos (``Demo.frames``), which reopens the
  file for every read;
- hdf5 (open files): samples in random order with h5py files kept open,
  the fastest direct HDF5 reading;
- hdf5 (open files, gzip): the same on a copy of the demo files written
  with gzip-compressed datasets (h5py's default chunking).

Each reader runs in its own process, so peak resident memory is its own.
Usage: ``.venv/bin/python benchmarks/export_read.py --demos 10 50`` after
``export_throughput.py`` has written the shards (or pass --export).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

BATCH = 32
CHUNK = 8
READERS = ("shards", "shards_png0", "hdf5_toolkit", "hdf5_open", "hdf5_open_gzip")


def peak_rss_mib() -> float:
    """Return this process's peak resident memory (VmHWM) in MiB.

    ``getrusage``'s ``ru_maxrss`` is not used because Linux carries it over
    ``execve``, so a child would report its parent's peak.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("VmHWM not found in /proc/self/status")


def gzip_copy(data: Path, num_demos: int) -> None:
    """Write the demo files again with gzip-compressed datasets, unless present."""
    from aas.datasets.libero_hdf5 import iter_demo_files, write_demo_file

    target = data / f"demos_{num_demos}_gzip" / "libero_goal"
    for demo_file in iter_demo_files(data / f"demos_{num_demos}"):
        path = target / demo_file.path.name
        if not path.exists():
            write_demo_file(path, demo_file.demos, demo_file.meta(), compression="gzip")


def sample_index(
    data: Path, num_demos: int, suffix: str = ""
) -> list[tuple[str, str, int, int, str]]:
    """List every (file, demo id, frame, segment end, instruction) sample."""
    from aas.schema import read_segmentations

    demo_dir = data / f"demos_{num_demos}{suffix}" / "libero_goal"
    index = []
    for segmentation in read_segmentations(data / f"segments_{num_demos}.jsonl"):
        stem, demo_id = segmentation.demo_key.split("/")
        path = str(demo_dir / f"{stem}.hdf5")
        for segment in segmentation.segments:
            for t in range(segment.start, segment.end + 1):
                index.append((path, demo_id, t, segment.end, segment.instruction))
    return index


def chunk_of(actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    chunk = np.zeros((CHUNK, 7), np.float32)
    chunk[: len(actions)] = actions
    mask = np.zeros(CHUNK, bool)
    mask[: len(actions)] = True
    return chunk, mask


def collate(samples: list[dict]) -> dict:
    return {
        "agentview": np.stack([s["agentview"] for s in samples]),
        "wrist": np.stack([s["wrist"] for s in samples]),
        "actions": np.stack([s["actions"] for s in samples]),
        "mask": np.stack([s["mask"] for s in samples]),
        "instruction": [s["instruction"] for s in samples],
    }


def read_shards(data: Path, num_demos: int, limit: int, suffix: str = ""):
    from aas.datasets.shards import load_shards

    batch = []
    folder = data / f"out_webdataset{suffix}_{num_demos}"
    for sample in load_shards(folder, shuffle=1000):
        batch.append(sample)
        if len(batch) == BATCH:
            yield collate(batch)
            batch = []


def read_hdf5_toolkit(data: Path, num_demos: int, limit: int):
    from aas.datasets.libero_hdf5 import open_demo_file
    from aas.demo import AGENTVIEW, EYE_IN_HAND

    index = sample_index(data, num_demos)
    demos = {}
    for path in sorted({entry[0] for entry in index}):
        for demo in open_demo_file(path).demos:
            demos[(path, demo.demo_id)] = demo
    order = np.random.default_rng(0).permutation(len(index))[:limit]
    batch = []
    for i in order:
        path, demo_id, t, end, instruction = index[i]
        demo = demos[(path, demo_id)]
        chunk, mask = chunk_of(
            demo.frames("actions", list(range(t, min(t + CHUNK, end + 1))))
        )
        batch.append(
            {
                "agentview": demo.frames(AGENTVIEW, [t])[0, ::-1, ::-1],
                "wrist": demo.frames(EYE_IN_HAND, [t])[0, ::-1, ::-1],
                "actions": chunk,
                "mask": mask,
                "instruction": instruction,
            }
        )
        if len(batch) == BATCH:
            yield collate(batch)
            batch = []


def read_hdf5_open(data: Path, num_demos: int, limit: int, suffix: str = ""):
    import h5py

    index = sample_index(data, num_demos, suffix)
    files = {path: h5py.File(path, "r") for path in {entry[0] for entry in index}}
    order = np.random.default_rng(0).permutation(len(index))[:limit]
    batch = []
    for i in order:
        path, demo_id, t, end, instruction = index[i]
        group = files[path][f"data/{demo_id}"]
        chunk, mask = chunk_of(group["actions"][t : min(t + CHUNK, end + 1)])
        batch.append(
            {
                "agentview": group["obs/agentview_rgb"][t][::-1, ::-1],
                "wrist": group["obs/eye_in_hand_rgb"][t][::-1, ::-1],
                "actions": chunk,
                "mask": mask,
                "instruction": instruction,
            }
        )
        if len(batch) == BATCH:
            yield collate(batch)
            batch = []


def worker(reader: str, data: Path, num_demos: int, limit: int) -> dict:
    """Read ``limit`` samples after the first batch; time start-up and steady reading.

    Imports happen before any timer starts. Start-up is the time to the first
    batch (for shards it includes filling the shuffle buffer).
    """
    import h5py  # noqa: F401
    import webdataset  # noqa: F401

    import aas.datasets.shards  # noqa: F401

    function = {
        "shards": read_shards,
        "shards_png0": lambda *a: read_shards(*a, suffix="_png0"),
        "hdf5_toolkit": read_hdf5_toolkit,
        "hdf5_open": read_hdf5_open,
        "hdf5_open_gzip": lambda *a: read_hdf5_open(*a, suffix="_gzip"),
    }
    started = time.perf_counter()
    batches = function[reader](data, num_demos, limit + BATCH)
    next(batches)
    startup = time.perf_counter() - started
    wall, cpu = time.perf_counter(), time.process_time()
    samples = 0
    for batch in batches:
        samples += len(batch["instruction"])
        if samples >= limit:
            break
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {
        "reader": reader,
        "demos": num_demos,
        "samples": samples,
        "startup_s": round(startup, 2),
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "samples_per_s": round(samples / wall, 1),
        "samples_per_cpu_s": round(samples / cpu, 1),
        "peak_rss_mib": round(peak_rss_mib(), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", type=Path, default=Path("/tmp/aas_bench"), help="data folder"
    )
    parser.add_argument(
        "--demos", type=int, nargs="+", default=[10, 50], help="demo counts"
    )
    parser.add_argument(
        "--samples", type=int, default=3200, help="samples timed per reader"
    )
    parser.add_argument("--frames", type=int, default=100, help="frames per demo")
    parser.add_argument(
        "--worker", nargs=2, metavar=("READER", "DEMOS"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.worker:
        reader, num_demos = args.worker
        print(json.dumps(worker(reader, args.data, int(num_demos), args.samples)))
        return
    rows = []
    for num_demos in args.demos:
        gzip_copy(args.data, num_demos)
        # Leave two batches of the dataset for start-up and the last batch.
        samples = min(args.samples, num_demos * args.frames - 2 * BATCH)
        for reader in READERS:
            command = [
                sys.executable,
                __file__,
                "--data",
                str(args.data),
                "--samples",
                str(samples),
            ]
            done = subprocess.run(
                [*command, "--worker", reader, str(num_demos)],
                capture_output=True,
                text=True,
                check=True,
            )
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(json.dumps(rows[-1]), flush=True)
    results = Path(__file__).parent / "results" / "export_read.json"
    results.parent.mkdir(exist_ok=True)
    results.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
