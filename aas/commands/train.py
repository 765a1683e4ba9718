"""``aas train``: train the CLIP-RT+ policy on atomic segments.

Single process: ``aas train --data=SHARDS --output_dir=DIR``. Distributed:
``torchrun --nproc_per_node=N -m aas.cli train ...`` (DDP; gloo on CPU,
NCCL on GPU). Writes checkpoints every ``save_every`` steps, metrics.jsonl,
loss_curve.png, the final model folder and train_result.json into
``output_dir``, and resumes from the latest checkpoint there.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from aas.policies.cliprt.train import TrainConfig, train

logger = logging.getLogger(__name__)


@dataclass
class Config(TrainConfig):
    """Options of ``aas train`` (see ``TrainConfig`` for each field's meaning and unit)."""


def run(cfg: Config) -> int:
    result = train(cfg)
    logger.info("training finished: %s", result)
    return 0
