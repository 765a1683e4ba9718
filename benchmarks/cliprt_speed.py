"""Measure CLIP-RT+ training throughput and inference latency on CPU.

Training: samples per second of full optimizer steps (forward, masked L1,
backward, gradient clipping, AdamW) on random inputs, so data loading is not
included. Inference: seconds per ``predict_batch`` call of ``CLIPRTPolicy``
on 256 px observations (image pipeline included), with the instruction
embedding cached and recomputed (``cache_size=0``), batch 1 and 8.

Usage: ``python benchmarks/cliprt_speed.py [--models aas-cliprt-tiny ViT-B-32]
[--threads 2] [--out benchmarks/results/cliprt_speed.json]``. Models are
randomly initialised; nothing is downloaded.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from aas.policies.cliprt.config import TINY_MODEL_NAME, CLIPRTConfig
from aas.policies.cliprt.model import CLIPRTModel, masked_l1
from aas.policies.cliprt.policy import CLIPRTPolicy
from aas.policies.cliprt.schedule import build_optimizer

INSTRUCTION = "put the black bowl on the plate"


def measure_training(model: CLIPRTModel, batch: int, steps: int) -> dict:
    """Return samples per second over ``steps`` timed optimizer steps (one untimed first)."""
    model.train()
    optimizer = build_optimizer(model, lr=1e-5)
    size = model.image_size
    images = torch.randn(batch, 3, size, size)
    tokens = model.tokenize([INSTRUCTION] * batch)
    actions = torch.randn(batch, model.config.chunk_size, model.config.action_dim)
    mask = torch.ones(batch, model.config.chunk_size, dtype=torch.bool)
    durations = []
    for step in range(steps + 1):
        started = time.perf_counter()
        loss = masked_l1(model(images, tokens), actions, mask)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if step:
            durations.append(time.perf_counter() - started)
    seconds = statistics.median(durations)
    return {
        "batch": batch,
        "steps": steps,
        "step_seconds": seconds,
        "samples_per_second": batch / seconds,
    }


def measure_inference(model: CLIPRTModel, batch: int, repeats: int) -> dict:
    """Return seconds per predict_batch call (median and min) with and without the cache."""
    rng = np.random.default_rng(0)
    observations = [
        {"agentview_image": rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)}
        for _ in range(batch)
    ]
    instructions = [INSTRUCTION] * batch
    result = {"batch": batch, "repeats": repeats}
    policies = {
        "cached": CLIPRTPolicy(model, cache_size=1024),
        "uncached": CLIPRTPolicy(model, cache_size=0),
    }
    durations = {label: [] for label in policies}
    for policy in policies.values():
        policy.predict_batch(observations, instructions)
    # Alternate the two modes so that load from other processes hits both alike.
    for _ in range(repeats):
        for label, policy in policies.items():
            started = time.perf_counter()
            policy.predict_batch(observations, instructions)
            durations[label].append(time.perf_counter() - started)
    for label, values in durations.items():
        result[f"{label}_seconds"] = statistics.median(values)
        result[f"{label}_min_seconds"] = min(values)
    result["speedup"] = result["uncached_seconds"] / result["cached_seconds"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=[TINY_MODEL_NAME, "ViT-B-32"])
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument(
        "--train_batch", type=int, default=8, help="samples per training step"
    )
    parser.add_argument("--out", default="benchmarks/results/cliprt_speed.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    report = {
        "machine": f"{platform.machine()} CPU, {torch.get_num_threads()} torch threads, no GPU",
        "models": {},
    }
    for name in args.models:
        tiny = name == TINY_MODEL_NAME
        model = CLIPRTModel(CLIPRTConfig(model_name=name))
        entry = {
            "parameters_millions": sum(p.numel() for p in model.parameters()) / 1e6,
            "image_size": model.image_size,
            "training": measure_training(
                model, args.train_batch, steps=10 if tiny else 3
            ),
            "inference": [
                measure_inference(model, b, repeats=20 if tiny else 5) for b in (1, 8)
            ],
        }
        report["models"][name] = entry
        print(json.dumps({name: entry}, indent=2), flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(report, indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )


if __name__ == "__main__":
    main()
