"""Training loop of the CLIP-RT+ policy on atomic segments.

One code path for one CPU process, ``torchrun`` on CPUs (DDP over gloo) and
GPUs (DDP over NCCL, bf16 autocast). The loss is the masked L1 summed over
all processes and divided by the global count of valid entries, so a run
over N processes follows the same loss curve as one process with the same
global batch. Checkpoints contain the model (``save_pretrained`` layout) and
the optimizer and scheduler state. The batch of every step is a function of
the step number (``StepBatchSampler``), so a resumed run continues with the
exact batch it would have drawn.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from aas.policies.cliprt.checkpoint import WEIGHTS_FILE, save_pretrained
from aas.policies.cliprt.config import CLIPRTConfig
from aas.policies.cliprt.data import (
    LeRobotChunkDataset,
    ShardDataset,
    TrainingExamples,
    collate_examples,
    split_by_group,
)
from aas.policies.cliprt.evaluate import (
    evaluate_l1,
    mean_action,
    plot_loss_curve,
    state_statistics,
)
from aas.policies.cliprt.model import CLIPRTModel, masked_l1_sum
from aas.policies.cliprt.sampler import StepBatchSampler
from aas.policies.cliprt.schedule import build_optimizer, build_scheduler
from aas.schema import write_atomic

logger = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoints"
STATE_FILE = "training_state.pt"
METRICS_FILE = "metrics.jsonl"
CURVE_FILE = "loss_curve.png"
RESULT_FILE = "train_result.json"
FINAL_MODEL_DIR = "model"


@dataclass
class TrainConfig:
    """Options of ``aas train``."""

    # Folder of WebDataset training shards (shard-*.tar, manifest.json) or one tar file.
    data: str = ""
    # LeRobot v3 dataset id to train from instead of shards (read offline from lerobot_root).
    lerobot_repo_id: str = ""
    # Local folder of the LeRobot dataset.
    lerobot_root: str = ""
    # LeRobot image feature; empty picks the first agentview-like camera.
    lerobot_image_key: str = ""
    # LeRobot state feature used when model.state_dim > 0.
    lerobot_state_key: str = "observation.state"
    # Folder for checkpoints, metrics.jsonl, loss_curve.png and the final model.
    output_dir: str = "outputs/train"
    # Start from scratch, deleting earlier checkpoints and metrics in output_dir.
    overwrite: bool = False
    # Continue from the latest checkpoint in output_dir.
    resume: bool = True
    # Policy architecture and backbone weights.
    model: CLIPRTConfig = field(default_factory=CLIPRTConfig)
    # Instruction per sample: "atomic", "original" (the demo's task), or "mix".
    instruction_mode: str = "atomic"
    # Probability of the original instruction in "mix" mode.
    original_ratio: float = 0.5
    # Samples per optimizer step over all processes (published: 256).
    batch_size: int = 256
    # Optimizer steps of the whole run.
    steps: int = 1000
    # Peak learning rate of AdamW.
    lr: float = 5e-6
    # AdamW weight decay of the matrices.
    weight_decay: float = 0.1
    # AdamW beta1.
    beta1: float = 0.9
    # AdamW beta2.
    beta2: float = 0.98
    # AdamW epsilon.
    eps: float = 1e-6
    # Steps of linear learning-rate warmup before the cosine decay.
    warmup_steps: int = 1000
    # Max global L2 norm of the gradients; 0 disables clipping.
    grad_clip_norm: float = 1.0
    # "auto" (bf16 autocast on CUDA, fp32 on CPU), "bf16" or "fp32".
    precision: str = "auto"
    # Freeze the backbone's image tower.
    freeze_image_tower: bool = False
    # Freeze the backbone's text tower.
    freeze_text_tower: bool = False
    # Lower bound of open_clip's RandomResizedCrop area scale (upper bound 1.0).
    crop_scale_min: float = 0.9
    # Write a checkpoint every this many steps (and at the end).
    save_every: int = 500
    # Log loss and learning rate every this many steps.
    log_every: int = 10
    # Checkpoints kept on disk (oldest deleted first); 0 keeps all.
    keep_checkpoints: int = 2
    # Fraction of demos held out for the final action-L1 evaluation; 0 disables it.
    holdout_fraction: float = 0.0
    # Seed of model initialisation, shuffling, augmentation and the held-out split.
    seed: int = 0
    # DataLoader worker processes per training process.
    num_workers: int = 0
    # CPU threads per training process for torch ops; 0 keeps torch's default.
    num_threads: int = 0
    # "auto" (CUDA when available), "cpu" or "cuda".
    device: str = "auto"
    # Also log to "wandb" or "tensorboard"; "none" logs only to files.
    logger: str = "none"
    # Show a progress bar on the main process.
    progress: bool = True

    def __post_init__(self) -> None:
        if not self.data and not self.lerobot_repo_id:
            raise ValueError(
                "set --data (training shards) or --lerobot_repo_id (LeRobot dataset)"
            )
        if self.precision not in ("auto", "bf16", "fp32"):
            raise ValueError(
                f"precision must be auto, bf16 or fp32, got {self.precision!r}"
            )
        if self.logger not in ("none", "wandb", "tensorboard"):
            raise ValueError(
                f"logger must be none, wandb or tensorboard, got {self.logger!r}"
            )
        for name in ("batch_size", "steps", "save_every", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(
                    f"{name} must be at least 1, got {getattr(self, name)}"
                )


@dataclass
class _Dist:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def _init_distributed(device_kind: str) -> _Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return _Dist()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device_kind == "cuda" else "gloo")
    return _Dist(
        dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0"))
    )


def _device(cfg: TrainConfig, ranks: _Dist | None = None) -> torch.device:
    kind = cfg.device
    if kind == "auto":
        kind = "cuda" if torch.cuda.is_available() else "cpu"
    if kind == "cuda":
        return torch.device("cuda", ranks.local_rank if ranks else 0)
    return torch.device(kind)


def build_raw_dataset(cfg: TrainConfig):
    """Open the training data named by ``cfg``: shards, or a LeRobot dataset."""
    if cfg.lerobot_repo_id:
        return LeRobotChunkDataset(
            cfg.lerobot_repo_id,
            root=cfg.lerobot_root or None,
            image_key=cfg.lerobot_image_key or None,
            state_key=cfg.lerobot_state_key if cfg.model.state_dim else None,
            chunk_size=cfg.model.chunk_size,
        )
    return ShardDataset(cfg.data)


def latest_checkpoint(output_dir: Path) -> Path | None:
    """Return the newest complete checkpoint folder in ``output_dir``, if any."""
    root = output_dir / CHECKPOINT_DIR
    done = [
        p
        for p in sorted(root.glob("step_*"))
        if (p / STATE_FILE).is_file() and (p / WEIGHTS_FILE).is_file()
    ]
    return done[-1] if done else None


def train(cfg: TrainConfig) -> dict[str, Any]:
    """Run (or resume) training as configured; return the result summary.

    Under ``torchrun`` every process calls this; only the main process
    writes files and the returned summary is the same on all of them.
    """
    if cfg.num_threads > 0:
        torch.set_num_threads(cfg.num_threads)
    device = _device(cfg)
    ranks = _init_distributed(device.type)
    device = _device(cfg, ranks)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    out = Path(cfg.output_dir)
    if ranks.main:
        _prepare(out, cfg)
    _barrier(ranks)

    torch.manual_seed(cfg.seed)
    aug_cfg = {"scale": (cfg.crop_scale_min, 1.0)}
    model = CLIPRTModel(cfg.model, aug_cfg=aug_cfg)
    model.freeze_towers(image=cfg.freeze_image_tower, text=cfg.freeze_text_tower)
    # logit_scale / logit_bias only serve the contrastive loss, unused here.
    for name in ("logit_scale", "logit_bias"):
        param = getattr(model.backbone, name, None)
        if isinstance(param, torch.nn.Parameter):
            param.requires_grad_(False)

    raw = build_raw_dataset(cfg)
    train_idx, val_idx = split_by_group(raw.groups(), cfg.holdout_fraction, cfg.seed)
    examples = TrainingExamples(
        raw,
        model.preprocess_train,
        cfg.model.eval_resize,
        cfg.model.chunk_size,
        cfg.model.action_dim,
        cfg.instruction_mode,
        cfg.original_ratio,
        cfg.model.state_dim,
    )

    if cfg.model.state_dim:
        mean, std = state_statistics(raw, train_idx)
        model.set_state_statistics(torch.from_numpy(mean), torch.from_numpy(std))

    optimizer = build_optimizer(
        model, cfg.lr, cfg.weight_decay, (cfg.beta1, cfg.beta2), cfg.eps
    )
    scheduler = build_scheduler(optimizer, cfg.warmup_steps, cfg.steps)
    start_step = _restore(out, model, optimizer, scheduler)
    model.to(device)
    _move_optimizer_state(optimizer, device)
    records = _read_records(out / METRICS_FILE, start_step) if ranks.main else []

    sampler = StepBatchSampler(
        train_idx,
        cfg.batch_size,
        cfg.steps,
        cfg.seed,
        start_step,
        ranks.rank,
        ranks.world_size,
    )
    loader = DataLoader(
        examples,
        batch_sampler=sampler,
        collate_fn=collate_examples,
        num_workers=cfg.num_workers,
    )
    wrapped = model
    if ranks.world_size > 1:
        wrapped = DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )

    use_bf16 = cfg.precision == "bf16" or (
        cfg.precision == "auto" and device.type == "cuda"
    )
    tracker = _Tracker(cfg, out) if ranks.main else None
    logger.info(
        "training %s from step %d to %d: %d train / %d held-out samples, batch %d over %d processes on %s",
        cfg.model.model_name,
        start_step,
        cfg.steps,
        len(train_idx),
        len(val_idx),
        cfg.batch_size,
        ranks.world_size,
        device,
    )
    progress = _progress(cfg, ranks, start_step)
    # A frozen text tower gives the same embedding for an instruction at every
    # step, so each distinct instruction is encoded once.
    text_cache = {} if cfg.freeze_text_tower else None
    started = time.perf_counter()
    for step, batch in enumerate(loader, start=start_step):
        loss = _train_step(
            wrapped, model, batch, optimizer, cfg, device, ranks, use_bf16, text_cache
        )
        lr = optimizer.param_groups[0]["lr"]
        scheduler.step()
        done = step + 1
        if ranks.main and (done % cfg.log_every == 0 or done == cfg.steps):
            record = {
                "step": done,
                "loss": loss,
                "lr": lr,
                "epoch": sampler.epoch_of_step(done),
            }
            records.append(record)
            tracker.log(record)
        if progress is not None:
            progress.update(1)
            progress.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}")
        if done % cfg.save_every == 0 or done == cfg.steps:
            if ranks.main:
                _save_checkpoint(
                    out, done, model, optimizer, scheduler, cfg.keep_checkpoints
                )
            _barrier(ranks)
    if progress is not None:
        progress.close()
    elapsed = time.perf_counter() - started
    steps_run = cfg.steps - start_step

    result: dict[str, Any] = {
        "steps": cfg.steps,
        "resumed_from": start_step,
        "world_size": ranks.world_size,
    }
    if steps_run:
        result["samples_per_second"] = steps_run * cfg.batch_size / elapsed
    if ranks.main:
        result.update(
            _finish(
                out,
                cfg,
                model,
                raw,
                examples,
                train_idx,
                val_idx,
                records,
                device,
                tracker,
            )
        )
        write_atomic(
            out / RESULT_FILE, json.dumps(result, indent=2, sort_keys=True) + "\n"
        )
    _barrier(ranks)
    return result


def _train_step(
    wrapped, model, batch, optimizer, cfg, device, ranks, use_bf16, text_cache
) -> float:
    model.train()
    images = batch["images"].to(device, non_blocking=True)
    actions = batch["actions"].to(device)
    mask = batch["mask"].to(device)
    state = batch["state"].to(device) if "state" in batch else None
    tokens, embedding = None, None
    if text_cache is None:
        tokens = model.tokenize(batch["instructions"]).to(device)
    else:
        embedding = _cached_embeddings(model, batch["instructions"], text_cache, device)

    autocast = (
        torch.autocast(device.type, dtype=torch.bfloat16) if use_bf16 else nullcontext()
    )
    with autocast:
        predicted = wrapped(images, tokens, state, instruction_embedding=embedding)
    local_sum, local_count = masked_l1_sum(predicted.float(), actions, mask)
    totals = torch.stack([local_sum.detach(), local_count.detach()])
    if ranks.world_size > 1:
        dist.all_reduce(totals)
    global_count = totals[1].clamp(min=1.0)
    # DDP averages gradients over processes, hence the world-size factor.
    loss = local_sum * ranks.world_size / global_count

    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if cfg.grad_clip_norm > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip_norm)
    optimizer.step()
    return float(totals[0] / global_count)


def _cached_embeddings(model, instructions, cache, device) -> torch.Tensor:
    """Embed instructions with the frozen text tower, each distinct one once per run."""
    todo = [text for text in dict.fromkeys(instructions) if text not in cache]
    if todo:
        with torch.no_grad():
            tokens = model.tokenize(todo).to(device)
            cache.update(zip(todo, model.encode_instruction(tokens).float()))
    return torch.stack([cache[text] for text in instructions])


def _prepare(out: Path, cfg: TrainConfig) -> None:
    from aas.commands.common import prepare_output_dir, save_config

    prepare_output_dir(out, overwrite=cfg.overwrite, resume=cfg.resume)
    if cfg.overwrite:
        for name in (CHECKPOINT_DIR, FINAL_MODEL_DIR):
            shutil.rmtree(out / name, ignore_errors=True)
        for name in (METRICS_FILE, CURVE_FILE, RESULT_FILE):
            (out / name).unlink(missing_ok=True)
    save_config(cfg, out)


def _restore(out: Path, model, optimizer, scheduler) -> int:
    checkpoint = latest_checkpoint(out)
    if checkpoint is None:
        return 0
    from safetensors.torch import load_file

    model.load_state_dict(load_file(str(checkpoint / WEIGHTS_FILE)), strict=True)
    state = torch.load(checkpoint / STATE_FILE, map_location="cpu", weights_only=True)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    logger.info("resuming from %s (step %d)", checkpoint, state["step"])
    return int(state["step"])


def _move_optimizer_state(optimizer, device: torch.device) -> None:
    for param_state in optimizer.state.values():
        for key, value in param_state.items():
            if torch.is_tensor(value) and key != "step":
                param_state[key] = value.to(device)


def _save_checkpoint(
    out: Path, step: int, model, optimizer, scheduler, keep: int
) -> Path:
    root = out / CHECKPOINT_DIR
    target = root / f"step_{step:07d}"
    tmp = root / f".tmp_step_{step:07d}"
    shutil.rmtree(tmp, ignore_errors=True)
    save_pretrained(model, tmp)
    state = {
        "step": step,
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
    }
    torch.save(state, tmp / STATE_FILE)
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    if keep > 0:
        for old in sorted(root.glob("step_*"))[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    logger.info("saved checkpoint %s", target)
    return target


def _read_records(path: Path, start_step: int) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    records = [
        json.loads(line)
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    kept = [r for r in records if r.get("step", 0) <= start_step]
    if len(kept) != len(records):
        write_atomic(path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in kept))
    return kept


def _finish(
    out, cfg, model, raw, train_examples, train_idx, val_idx, records, device, tracker
) -> dict[str, Any]:
    result: dict[str, Any] = {}
    save_pretrained(model, out / FINAL_MODEL_DIR)
    if val_idx:
        eval_examples = TrainingExamples(
            raw,
            model.preprocess_eval,
            cfg.model.eval_resize,
            cfg.model.chunk_size,
            cfg.model.action_dim,
            "atomic",
            0.0,
            cfg.model.state_dim,
        )
        baseline = mean_action(raw, train_idx)
        metrics = evaluate_l1(model, eval_examples, val_idx, baseline, device=device)
        result["heldout"] = metrics
        records.append(
            {
                "step": cfg.steps,
                "val_l1": metrics["l1"],
                "baseline_l1": metrics["baseline_l1"],
            }
        )
        tracker.log(
            {
                "step": cfg.steps,
                "val_l1": metrics["l1"],
                "baseline_l1": metrics["baseline_l1"],
            }
        )
        logger.info(
            "held-out L1 %.4f, mean-action baseline %.4f",
            metrics["l1"],
            metrics["baseline_l1"],
        )
    if records:
        plot_loss_curve(
            records, out / CURVE_FILE, title=f"CLIP-RT {cfg.model.model_name}"
        )
    tracker.close()
    return result


class _Tracker:
    """Appends records to metrics.jsonl and forwards them to W&B or TensorBoard."""

    def __init__(self, cfg: TrainConfig, out: Path) -> None:
        self.path = out / METRICS_FILE
        self.backend = None
        if cfg.logger == "wandb":
            try:
                import wandb
            except ImportError as exc:
                raise RuntimeError(
                    "logger=wandb needs the wandb package: pip install wandb"
                ) from exc
            self.backend = wandb.init(
                project="aas-cliprt",
                dir=str(out),
                config={"output_dir": str(out)},
                resume="allow",
            )
        elif cfg.logger == "tensorboard":
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as exc:
                raise RuntimeError(
                    "logger=tensorboard needs the tensorboard package"
                ) from exc
            self.backend = SummaryWriter(log_dir=str(out / "tensorboard"))

    def log(self, record: dict[str, Any]) -> None:
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(record, sort_keys=True) + "\n")
        values = {k: v for k, v in record.items() if k != "step"}
        if self.backend is None:
            return
        if hasattr(self.backend, "add_scalar"):
            for name, value in values.items():
                self.backend.add_scalar(f"train/{name}", value, record["step"])
        else:
            self.backend.log(
                {f"train/{k}": v for k, v in values.items()}, step=record["step"]
            )

    def close(self) -> None:
        if self.backend is not None and hasattr(self.backend, "close"):
            self.backend.close()
        elif self.backend is not None:
            self.backend.finish()


def _progress(cfg: TrainConfig, ranks: _Dist, start_step: int):
    if not (cfg.progress and ranks.main):
        return None
    from tqdm.auto import tqdm

    return tqdm(total=cfg.steps, initial=start_step, desc="train", unit="step")


def _barrier(ranks: _Dist) -> None:
    if ranks.world_size > 1:
        dist.barrier()
