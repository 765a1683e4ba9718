"""Check that the tiny CLIP-RT+ model learns from training shards on CPU.

Trains ``aas-cliprt-tiny`` from random initialisation with whole demos held
out, then compares the held-out masked action L1 with the L1 of always
predicting the training set's mean action. Writes the run (checkpoints,
metrics.jsonl, loss_curve.png, train_result.json) into ``--output_dir``.

Usage: ``python benchmarks/cliprt_learning.py --data SHARDS --output_dir DIR
[--steps 400] [--batch_size 16] [--lr 3e-4] [--threads 2] [--state_dim 9] [--freeze_text_tower]``.
"""

from __future__ import annotations

import argparse
import json
import logging

from aas.policies.cliprt.config import TINY_MODEL_NAME, CLIPRTConfig
from aas.policies.cliprt.train import TrainConfig, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="training shard folder")
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--steps", type=int, default=400, help="optimizer steps")
    parser.add_argument("--batch_size", type=int, default=16, help="samples per step")
    parser.add_argument("--lr", type=float, default=3e-4, help="peak learning rate")
    parser.add_argument("--warmup_steps", type=int, default=40)
    parser.add_argument(
        "--holdout_fraction", type=float, default=0.25, help="demos held out"
    )
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument(
        "--state_dim",
        type=int,
        default=0,
        help="proprioceptive state size, 0 for images only",
    )
    parser.add_argument(
        "--freeze_text_tower",
        action="store_true",
        help="keep the text tower at its initial weights",
    )
    args = parser.parse_args()
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )

    config = TrainConfig(
        data=args.data,
        output_dir=args.output_dir,
        model=CLIPRTConfig(
            model_name=TINY_MODEL_NAME, eval_resize=None, state_dim=args.state_dim
        ),
        batch_size=args.batch_size,
        steps=args.steps,
        lr=args.lr,
        warmup_steps=args.warmup_steps,
        save_every=max(1, args.steps // 4),
        log_every=10,
        holdout_fraction=args.holdout_fraction,
        num_threads=args.threads,
        freeze_text_tower=args.freeze_text_tower,
        progress=False,
    )
    result = train(config)
    print(json.dumps(result, indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
