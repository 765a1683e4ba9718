"""AdamW with weight-decay groups and a warmup + cosine learning-rate schedule.

Defaults follow the published CLIP-RT+ recipe: lr 5e-6, weight decay 0.1,
betas (0.9, 0.98), eps 1e-6, 1000 warmup steps, cosine decay to zero. As in
open_clip's training code, 1-D tensors (norm gains, biases, embeddings of
shape ``[width]``), names containing "bias" or "ln", and ``logit_scale`` get
no weight decay.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Split trainable parameters into a decayed and a non-decayed group."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        exempt = (
            param.ndim < 2 or "bias" in name or "ln" in name or "logit_scale" in name
        )
        (no_decay if exempt else decay).append(param)
    return [
        {"params": no_decay, "weight_decay": 0.0},
        {"params": decay, "weight_decay": weight_decay},
    ]


def build_optimizer(
    model: nn.Module,
    lr: float = 5e-6,
    weight_decay: float = 0.1,
    betas: tuple[float, float] = (0.9, 0.98),
    eps: float = 1e-6,
) -> torch.optim.AdamW:
    """AdamW over the trainable parameters of ``model``."""
    return torch.optim.AdamW(
        parameter_groups(model, weight_decay), lr=lr, betas=betas, eps=eps
    )


def warmup_cosine(warmup_steps: int, total_steps: int):
    """Return a ``LambdaLR`` factor: linear warmup to 1, then cosine decay to 0.

    Step ``s`` (0-based) of the warmup gets ``(s + 1) / warmup_steps``, as in
    open_clip's ``cosine_lr``.
    """

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        decay_steps = max(1, total_steps - warmup_steps)
        progress = min(1.0, (step - warmup_steps) / decay_steps)
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


def build_scheduler(
    optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int
):
    """``LambdaLR`` with ``warmup_cosine``; call ``step()`` once per optimizer step."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, warmup_cosine(warmup_steps, total_steps)
    )
