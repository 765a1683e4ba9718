"""Export throughput (frames/s) and peak memory of each export format.

Each (format, demo count) runs in its own process through `aas export`'s
``run``, so peak resident memory (``ru_maxrss``) belongs to that export
alone. Memory after imports is reported too: the export's own share is the
difference. Usage:

    .venv/bin/python benchmarks/export_throughput.py --demos 10 50
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

FORMATS = ("gatevlap", "webdataset", "webdataset_png0", "lerobot")


def peak_rss_mib() -> float:
    """Return this process's peak resident memory (VmHWM) in MiB.

    ``getrusage``'s ``ru_maxrss`` is not used because Linux carries it over
    ``execve``, so a child would report its parent's peak.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("VmHWM not found in /proc/self/status")


def worker(fmt: str, data: Path, num_demos: int, out: Path) -> dict:
    """Run one export in this process and return its measurements."""
    import logging

    from aas.commands.export import Config, run

    if fmt == "lerobot":
        import lerobot.datasets.lerobot_dataset  # noqa: F401  (import cost not timed)
    logging.basicConfig(level=logging.WARNING)
    baseline = peak_rss_mib()
    cfg = Config(
        demos=str(data / f"demos_{num_demos}"),
        segmentations=str(data / f"segments_{num_demos}.jsonl"),
        format=fmt.removesuffix("_png0"),
        output_dir=str(out),
        overwrite=True,
        png_level=0 if fmt.endswith("_png0") else 1,
    )
    wall, cpu = time.perf_counter(), time.process_time()
    if run(cfg) != 0:
        raise RuntimeError(f"export {fmt} failed")
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    result = json.loads((out / "export.json").read_text())
    frames = result["counts"]["frames"]
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    return {
        "format": fmt,
        "demos": num_demos,
        "frames": frames,
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "frames_per_s": round(frames / wall, 1),
        "frames_per_cpu_s": round(frames / cpu, 1),
        "rss_after_imports_mib": round(baseline, 1),
        "peak_rss_mib": round(peak_rss_mib(), 1),
        "output_mib": round(size / 1024**2, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", type=Path, default=Path("/tmp/aas_bench"), help="data folder"
    )
    parser.add_argument(
        "--demos", type=int, nargs="+", default=[10, 50], help="demo counts"
    )
    parser.add_argument("--frames", type=int, default=100, help="frames per demo")
    parser.add_argument("--formats", nargs="+", default=list(FORMATS))
    parser.add_argument(
        "--results",
        type=Path,
        default=Path(__file__).parent / "results" / "export_throughput.json",
        help="JSON file the rows are written to",
    )
    parser.add_argument(
        "--worker", nargs=3, metavar=("FORMAT", "DEMOS", "OUT"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.worker:
        fmt, num_demos, out = args.worker
        print(json.dumps(worker(fmt, args.data, int(num_demos), Path(out))))
        return

    from export_data import write_benchmark_data

    rows = []
    for num_demos in args.demos:
        write_benchmark_data(args.data, num_demos, num_frames=args.frames)
        for fmt in args.formats:
            out = args.data / f"out_{fmt}_{num_demos}"
            command = [sys.executable, __file__, "--data", str(args.data)]
            command += ["--worker", fmt, str(num_demos), str(out)]
            done = subprocess.run(command, capture_output=True, text=True, check=True)
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(json.dumps(rows[-1]), flush=True)
            if not fmt.startswith("webdataset"):
                shutil.rmtree(out)
    args.results.parent.mkdir(exist_ok=True)
    args.results.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
