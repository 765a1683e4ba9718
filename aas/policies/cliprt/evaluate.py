"""Held-out action error of a CLIP-RT+ model and the loss-curve plot."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from aas.policies.cliprt.data import collate_examples
from aas.policies.cliprt.model import CLIPRTModel, masked_l1_sum

logger = logging.getLogger(__name__)

# Fixed augmentation seed for evaluation examples (the eval transform is
# deterministic, so it only matters for the instruction choice in "mix" mode).
EVAL_SEED = 0


def mean_action(raw: Dataset, indices: list[int]) -> np.ndarray:
    """Mean action ``[action_dim]`` over the valid chunk entries of ``indices``."""
    total, count = None, 0
    for index in indices:
        actions, mask = _chunk_arrays(raw, index)
        valid = actions[mask]
        total = valid.sum(axis=0) if total is None else total + valid.sum(axis=0)
        count += valid.shape[0]
    if not count:
        raise ValueError("no valid action in the training samples; every mask is false")
    return (total / count).astype(np.float32)


def state_statistics(raw: Dataset, indices: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Per-dimension mean and std ``[state_dim]`` of the states of ``indices``."""
    reader = getattr(raw, "read_state", None)
    states = np.stack([reader(i) if reader else raw[i].state for i in indices])
    return states.mean(axis=0), states.std(axis=0)


def _chunk_arrays(raw: Dataset, index: int) -> tuple[np.ndarray, np.ndarray]:
    if hasattr(raw, "read_chunk"):
        return raw.read_chunk(index)
    sample = raw[index]
    return sample.actions, sample.mask


@torch.no_grad()
def evaluate_l1(
    model: CLIPRTModel,
    examples: Dataset,
    indices: list[int],
    baseline_action: np.ndarray,
    batch_size: int = 32,
    device: str | torch.device = "cpu",
) -> dict[str, Any]:
    """Masked L1 of the model and of always predicting ``baseline_action``.

    Args:
        examples: ``TrainingExamples`` built with the eval transform.
        indices: held-out sample indices.
        baseline_action: ``[action_dim]``, normally the training mean action.

    Returns:
        ``{"l1", "baseline_l1", "ratio", "samples"}``; ``ratio`` is
        ``l1 / baseline_l1`` (below 1 means better than the baseline).
    """
    model.eval()
    requests = [(index, EVAL_SEED) for index in indices]
    loader = DataLoader(
        _Requests(examples, requests),
        batch_size=batch_size,
        collate_fn=collate_examples,
    )
    baseline = torch.from_numpy(baseline_action).to(device)
    sums = {"model": 0.0, "baseline": 0.0}
    count = 0.0
    for batch in loader:
        actions = batch["actions"].to(device)
        mask = batch["mask"].to(device)
        tokens = model.tokenize(batch["instructions"]).to(device)
        state = batch.get("state")
        predicted = model(
            batch["images"].to(device),
            tokens,
            None if state is None else state.to(device),
        )
        model_sum, batch_count = masked_l1_sum(predicted.float(), actions, mask)
        baseline_sum, _ = masked_l1_sum(baseline.expand_as(actions), actions, mask)
        sums["model"] += float(model_sum)
        sums["baseline"] += float(baseline_sum)
        count += float(batch_count)
    l1 = sums["model"] / max(count, 1.0)
    baseline_l1 = sums["baseline"] / max(count, 1.0)
    return {
        "l1": l1,
        "baseline_l1": baseline_l1,
        "ratio": l1 / baseline_l1 if baseline_l1 else float("nan"),
        "samples": len(indices),
    }


class _Requests(Dataset):
    def __init__(self, examples: Dataset, requests: list[tuple[int, int]]) -> None:
        self.examples = examples
        self.requests = requests

    def __len__(self) -> int:
        return len(self.requests)

    def __getitem__(self, i: int):
        return self.examples[self.requests[i]]


def plot_loss_curve(
    records: list[dict[str, Any]], path: str | Path, title: str = "CLIP-RT training"
) -> Path:
    """Write a PNG of training loss (log scale) and learning rate per step.

    Args:
        records: dicts with ``step``, ``loss`` and ``lr``; records with
            ``val_l1`` are drawn as held-out points.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = [r for r in records if "loss" in r]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(
        [r["step"] for r in train], [r["loss"] for r in train], label="train masked L1"
    )
    held = [r for r in records if "val_l1" in r]
    if held:
        ax.plot(
            [r["step"] for r in held],
            [r["val_l1"] for r in held],
            "o-",
            label="held-out L1",
        )
        ax.axhline(
            held[-1]["baseline_l1"],
            color="grey",
            linestyle="--",
            label="mean-action baseline",
        )
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("L1")
    ax.set_yscale("log")
    ax.set_title(title)
    lr_axis = ax.twinx()
    lr_axis.plot(
        [r["step"] for r in train],
        [r["lr"] for r in train],
        color="tab:orange",
        alpha=0.5,
    )
    lr_axis.set_ylabel("learning rate", color="tab:orange")
    ax.legend(loc="upper right")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
