"""Shared set-up of the KV cache benchmarks: model, thread count, texts, output folder."""

from __future__ import annotations

import argparse
import json
import platform
import sysconfig
from pathlib import Path

import torch

from aas.policies.kv import FreezeConfig
from aas.policies.llm import load_causal_lm

RESULTS_DIR = Path(__file__).parent / "results"
# A long natural-language text that every install of the CUDA build of torch ships.
LONG_TEXT = Path(sysconfig.get_paths()["purelib"]) / (
    "nvidia_cusolver-12.0.4.66.dist-info/licenses/License.txt"
)


def base_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument(
        "--chunk_tokens", type=int, default=64, help="tokens per forward pass"
    )
    parser.add_argument(
        "--threshold", type=float, default=0.1, help="FreezeConfig.threshold"
    )
    parser.add_argument(
        "--freeze_steps", type=float, default=8.0, help="FreezeConfig.freeze_steps (k)"
    )
    parser.add_argument(
        "--recent_tokens", type=int, default=256, help="FreezeConfig.recent_tokens"
    )
    parser.add_argument(
        "--score_queries", type=int, default=64, help="FreezeConfig.score_queries"
    )
    parser.add_argument(
        "--entropy_percentile",
        type=float,
        default=None,
        help="FreezeConfig.entropy_percentile",
    )
    parser.add_argument(
        "--model", default="smollm2", help="'smollm2' or a local model folder"
    )
    return parser


def freeze_config(args: argparse.Namespace) -> FreezeConfig:
    return FreezeConfig(
        threshold=args.threshold,
        freeze_steps=args.freeze_steps,
        recent_tokens=args.recent_tokens,
        score_queries=args.score_queries,
        entropy_percentile=args.entropy_percentile,
    )


def setup(args: argparse.Namespace):
    torch.set_num_threads(args.threads)
    return load_causal_lm(args.model)


def settings(args: argparse.Namespace) -> dict:
    return {
        **vars(args),
        "machine": f"{platform.machine()} CPU, {torch.get_num_threads()} torch threads, no GPU",
        "torch": torch.__version__,
    }


def write_result(name: str, data: dict) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return path
