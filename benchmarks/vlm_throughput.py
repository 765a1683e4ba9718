"""Demos per minute of the gemini segmenter at several concurrency levels.

The local Gemini test server answers every request after a fixed latency,
standing in for a remote model's response time; the segmenter runs the real
google-genai SDK. Throughput is demos finished per minute of wall-clock
time, including keyframe encoding and reply parsing on this machine.

Usage: .venv/bin/python benchmarks/vlm_throughput.py [--demos 32] [--latency 0.5]
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from servers.demos import make_demos
from servers.fixtures import gemini_server

from aas.segmenters.gemini import GeminiConfig, GeminiSegmenter
from aas.segmenters.keyframes import KeyframeConfig

KEY = "benchmark-key"
CONCURRENCY = (1, 4, 16)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demos", type=int, default=32, help="demos per run")
    parser.add_argument(
        "--latency", type=float, default=0.5, help="server latency in seconds"
    )
    parser.add_argument("--budget", type=int, default=16, help="keyframes per demo")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    fixtures = make_demos(args.demos, seed=2)
    items = [(f.demo, f.plan) for f in fixtures]
    print(
        f"{args.demos} demos, {args.budget} keyframes of 224 px each, "
        f"server latency {args.latency} s"
    )
    print(f"{'concurrency':>11} {'seconds':>8} {'demos/min':>9} {'speed-up':>8}")
    baseline = None
    for concurrency in CONCURRENCY:
        with gemini_server(fixtures, KEY, latency_s=args.latency) as server:
            config = GeminiConfig(
                base_url=server.url,
                concurrency=concurrency,
                keyframes=KeyframeConfig(budget=args.budget, image_size=224),
            )
            run = GeminiSegmenter(config, api_key=KEY)
            started = time.perf_counter()
            results = run.segment_many(items)
            seconds = time.perf_counter() - started
        assert all(r.ok for r in results), [r.error for r in results if not r.ok]
        rate = len(items) / seconds * 60
        baseline = baseline or rate
        print(
            f"{concurrency:>11} {seconds:>8.2f} {rate:>9.1f} {rate / baseline:>7.2f}x"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
