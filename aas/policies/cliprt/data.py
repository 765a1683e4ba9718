"""Training samples for CLIP-RT+: WebDataset shards or a LeRobot v3 dataset.

Training shards are tar files ``shard-%06d.tar`` (plus an optional
``manifest.json``) in WebDataset layout, one sample per (segment, frame). A
sample's members are ``<key>.agentview.png`` (upright uint8 RGB), ``<key>.instruction.txt``
(atomic instruction), ``<key>.original_instruction.txt``,
``<key>.actions.npy`` (float32 ``[8, 7]``, actions of frames t..t+7, zero
padded), ``<key>.mask.npy`` (bool ``[8]``, false past the segment's end),
``<key>.state.npy`` (float32) and ``<key>.meta.json``. The index below reads
member offsets once and then seeks straight to a sample, so any sample order
(shuffling, distributed slices, resuming mid-epoch) costs no extra reads.

A LeRobot dataset stores one atomic segment per episode, with the atomic
instruction as the episode's task string. Chunks come from LeRobot's own
``delta_timestamps``, with padded steps masked out.
"""

from __future__ import annotations

import io
import json
import logging
import random
import re
import tarfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from aas.policies.cliprt.preprocess import resize_like_eval

logger = logging.getLogger(__name__)

REQUIRED_MEMBERS = ("agentview.png", "instruction.txt", "actions.npy", "mask.npy")
SHARD_PATTERN = "shard-*.tar"
MANIFEST_FILE = "manifest.json"
INSTRUCTION_MODES = ("atomic", "original", "mix")
# WebDataset's key rule: the key is the member path up to the first dot of its file name.
_MEMBER_NAME = re.compile(r"^((?:.*/|)[^./]+)\.([^/]*)$")


@dataclass
class RawSample:
    """One decoded training sample before augmentation.

    Attributes:
        key: sample key (``<demo key>__f<frame>``) or ``episode/frame`` for LeRobot.
        image: upright uint8 RGB ``[H, W, 3]``.
        instruction: atomic instruction.
        original_instruction: the demo's full task instruction ("" if unknown).
        actions: float32 ``[chunk, action_dim]``, zero past the segment's end.
        mask: bool ``[chunk]``.
        state: float32 ``[state_dim]`` or ``None``.
        group: id of the demo (or episode) the sample came from, for held-out splits.
    """

    key: str
    image: np.ndarray
    instruction: str
    original_instruction: str
    actions: np.ndarray
    mask: np.ndarray
    state: np.ndarray | None
    group: str
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class _Member:
    shard: int
    offset: int
    size: int


class ShardDataset(Dataset):
    """Random-access view of WebDataset training shards.

    Args:
        source: a folder of ``shard-*.tar`` files (listed by its
            ``manifest.json`` when present), one tar file, or a list of tars.

    Samples missing a required member are skipped at indexing time with a
    warning; ``errors`` lists them as ``(shard, key, reason)``.
    """

    def __init__(self, source: str | Path | list[str | Path]) -> None:
        self.shards = list_shards(source)
        self.samples: list[tuple[str, dict[str, _Member]]] = []
        self.errors: list[tuple[str, str, str]] = []
        for shard_id, shard in enumerate(self.shards):
            self._index_shard(shard_id, shard)
        if not self.samples:
            raise ValueError(
                f"no usable training samples in {source}; errors: {self.errors[:5]}"
            )
        logger.info(
            "indexed %d samples in %d shards (%d skipped)",
            len(self.samples),
            len(self.shards),
            len(self.errors),
        )

    def _index_shard(self, shard_id: int, shard: Path) -> None:
        grouped: dict[str, dict[str, _Member]] = {}
        try:
            with tarfile.open(shard, "r:") as tar:
                for info in tar:
                    match = _MEMBER_NAME.match(info.name)
                    if not info.isfile() or match is None:
                        continue
                    key, ext = match.groups()
                    grouped.setdefault(key, {})[ext] = _Member(
                        shard_id, info.offset_data, info.size
                    )
        except (tarfile.TarError, OSError) as exc:
            self.errors.append((str(shard), "", f"unreadable tar: {exc}"))
            logger.warning("skipping unreadable shard %s: %s", shard, exc)
            return
        for key, members in grouped.items():
            missing = [name for name in REQUIRED_MEMBERS if name not in members]
            if missing:
                self.errors.append((str(shard), key, f"missing {missing}"))
                logger.warning(
                    "skipping sample %s in %s: missing %s", key, shard, missing
                )
                continue
            self.samples.append((key, members))

    def __len__(self) -> int:
        return len(self.samples)

    def _read(self, member: _Member) -> bytes:
        with open(self.shards[member.shard], "rb") as f:
            f.seek(member.offset)
            return f.read(member.size)

    def __getitem__(self, index: int) -> RawSample:
        key, members = self.samples[index]
        shard = self.shards[next(iter(members.values())).shard]
        try:
            return self._decode(key, members)
        except (OSError, ValueError, json.JSONDecodeError) as exc:
            raise ValueError(
                f"{shard}: sample {key!r} cannot be decoded: {exc}"
            ) from exc

    def _decode(self, key: str, members: dict[str, _Member]) -> RawSample:
        image = np.asarray(
            Image.open(io.BytesIO(self._read(members["agentview.png"]))).convert("RGB")
        )
        actions = np.load(
            io.BytesIO(self._read(members["actions.npy"])), allow_pickle=False
        )
        mask = np.load(io.BytesIO(self._read(members["mask.npy"])), allow_pickle=False)
        text = {
            name: self._read(members[f"{name}.txt"]).decode("utf-8").strip()
            for name in ("instruction", "original_instruction")
            if f"{name}.txt" in members
        }
        state = None
        if "state.npy" in members:
            state = np.load(
                io.BytesIO(self._read(members["state.npy"])), allow_pickle=False
            )
        meta = (
            json.loads(self._read(members["meta.json"]))
            if "meta.json" in members
            else {}
        )
        group = demo_of_key(key)
        return RawSample(
            key=key,
            image=image,
            instruction=text["instruction"],
            original_instruction=text.get("original_instruction", ""),
            actions=actions.astype(np.float32),
            mask=mask.astype(bool),
            state=None if state is None else state.astype(np.float32),
            group=group,
            meta=meta,
        )

    def groups(self) -> list[str]:
        """Demo id of every sample, from its key (``<demo key>__f<frame>``)."""
        return [demo_of_key(key) for key, _ in self.samples]

    def read_state(self, index: int) -> np.ndarray:
        """Read only the state vector of a sample."""
        _, members = self.samples[index]
        if "state.npy" not in members:
            raise ValueError(f"sample {self.samples[index][0]} has no state.npy")
        state = np.load(
            io.BytesIO(self._read(members["state.npy"])), allow_pickle=False
        )
        return state.astype(np.float32)

    def read_chunk(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Read only the action chunk ``[chunk, action_dim]`` and mask ``[chunk]`` of a sample."""
        _, members = self.samples[index]
        actions = np.load(
            io.BytesIO(self._read(members["actions.npy"])), allow_pickle=False
        )
        mask = np.load(io.BytesIO(self._read(members["mask.npy"])), allow_pickle=False)
        return actions.astype(np.float32), mask.astype(bool)


def demo_of_key(key: str) -> str:
    """Demo part of a sample key ``<demo key>__f<frame:04d>``."""
    return key.rsplit("__f", 1)[0]


def list_shards(source: str | Path | list[str | Path]) -> list[Path]:
    """Resolve a shard folder, tar file or list of tars to existing tar paths."""
    if isinstance(source, (list, tuple)):
        paths = [Path(p) for p in source]
    else:
        root = Path(source)
        manifest = root / MANIFEST_FILE
        if root.is_file():
            paths = [root]
        elif manifest.is_file():
            paths = _shards_from_manifest(manifest)
        else:
            paths = sorted(root.glob(SHARD_PATTERN))
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"training shards not found: {missing}")
    if not paths:
        raise FileNotFoundError(
            f"no {SHARD_PATTERN} files in {source}; export training shards first"
        )
    return paths


def _shards_from_manifest(manifest: Path) -> list[Path]:
    data = json.loads(manifest.read_text(encoding="utf-8"))
    names = data.get("shards") if isinstance(data, dict) else None
    if not names:
        return sorted(manifest.parent.glob(SHARD_PATTERN))
    return [
        manifest.parent
        / (n if isinstance(n, str) else n.get("file", n.get("name", "")))
        for n in names
    ]


class LeRobotChunkDataset(Dataset):
    """Training samples from a LeRobot v3 dataset, one atomic segment per episode.

    Args:
        repo_id: dataset id; with ``root`` the dataset is read offline.
        root: local dataset folder.
        image_key: image feature; ``None`` picks the first camera whose name
            contains "agentview" or "image".
        action_key / state_key: feature names of actions and state.
        chunk_size: actions per chunk (frames at the dataset's fps).
        original_instruction_key: per-frame string feature with the demo's
            full instruction, used when the dataset has it.
        flip: rotate images by 180 degrees (for exports of raw LIBERO renders).
    """

    def __init__(
        self,
        repo_id: str,
        root: str | Path | None = None,
        image_key: str | None = None,
        action_key: str = "action",
        state_key: str | None = None,
        chunk_size: int = 8,
        original_instruction_key: str | None = "original_instruction",
        flip: bool = False,
    ) -> None:
        from lerobot.datasets.lerobot_dataset import (
            LeRobotDataset,
            LeRobotDatasetMetadata,
        )

        meta = LeRobotDatasetMetadata(repo_id, root=root)
        if action_key not in meta.features:
            raise KeyError(
                f"LeRobot dataset {repo_id} has no {action_key!r} feature; features: {sorted(meta.features)}"
            )
        self.image_key = image_key or _pick_camera(meta.camera_keys, repo_id)
        self.action_key = action_key
        self.state_key = state_key
        # The exporter's feature with the demo's task instruction; datasets
        # without it have no original instruction.
        self.original_instruction_key = (
            original_instruction_key
            if original_instruction_key in meta.features
            else None
        )
        self.flip = flip
        offsets = [k / meta.fps for k in range(chunk_size)]
        self.dataset = LeRobotDataset(
            repo_id, root=root, delta_timestamps={action_key: offsets}
        )

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> RawSample:
        item = self.dataset[index]
        actions = item[self.action_key].numpy().astype(np.float32)
        mask = ~item[f"{self.action_key}_is_pad"].numpy()
        actions[~mask] = 0.0
        image = _to_hwc_uint8(item[self.image_key])
        if self.flip:
            image = np.ascontiguousarray(image[::-1, ::-1])
        state = (
            item[self.state_key].numpy().astype(np.float32) if self.state_key else None
        )
        original = ""
        if self.original_instruction_key:
            value = item[self.original_instruction_key]
            original = str(value[0] if isinstance(value, (list, tuple)) else value)
        episode = int(item["episode_index"])
        return RawSample(
            key=f"episode_{episode:06d}/frame_{int(item['frame_index']):04d}",
            image=image,
            instruction=str(item["task"]),
            original_instruction=original,
            actions=actions,
            mask=mask.astype(bool),
            state=state,
            group=f"episode_{episode:06d}",
        )

    def groups(self) -> list[str]:
        """Episode id of every frame."""
        episodes = self.dataset.hf_dataset["episode_index"]
        return [f"episode_{int(e):06d}" for e in episodes]


def _pick_camera(camera_keys: list[str], repo_id: str) -> str:
    for word in ("agentview", "image"):
        for key in camera_keys:
            if word in key and "wrist" not in key:
                return key
    if camera_keys:
        return camera_keys[0]
    raise KeyError(f"LeRobot dataset {repo_id} has no image feature; pass image_key")


def _to_hwc_uint8(image: torch.Tensor) -> np.ndarray:
    array = image.numpy()
    if array.ndim == 3 and array.shape[0] in (1, 3):
        array = np.transpose(array, (1, 2, 0))
    if array.dtype != np.uint8:
        array = np.clip(np.round(array * 255.0), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(array)


def split_by_group(
    groups: list[str], holdout_fraction: float, seed: int
) -> tuple[list[int], list[int]]:
    """Split sample indices into (train, held-out) by whole demos.

    ``round(holdout_fraction * demos)`` demos, at least one when the fraction
    is positive, go to the held-out part, chosen with ``seed``.
    """
    unique = sorted(set(groups))
    if not 0.0 <= holdout_fraction < 1.0:
        raise ValueError(f"holdout_fraction must be in [0, 1), got {holdout_fraction}")
    count = (
        0 if holdout_fraction == 0 else max(1, round(holdout_fraction * len(unique)))
    )
    if count >= len(unique):
        raise ValueError(
            f"holdout_fraction={holdout_fraction} leaves no training demo among {len(unique)}"
        )
    held = set(random.Random(seed).sample(unique, count))
    train = [i for i, g in enumerate(groups) if g not in held]
    val = [i for i, g in enumerate(groups) if g in held]
    return train, val


@dataclass
class Example:
    """A model-ready sample: image ``[3, S, S]``, prompt text, chunk and mask."""

    image: torch.Tensor
    instruction: str
    actions: torch.Tensor
    mask: torch.Tensor
    state: torch.Tensor | None


class TrainingExamples(Dataset):
    """Augmented, instruction-selected examples for given ``(index, seed)`` pairs.

    Each item is requested as ``(index, seed)``. All randomness of the sample
    (image augmentation, atomic or original instruction) comes from ``seed``.
    So a run resumed at any step, or split over processes, gets the same
    examples as an uninterrupted single-process run.

    Args:
        raw: ``ShardDataset`` or ``LeRobotChunkDataset``.
        transform: open_clip image transform (PIL image to ``[3, S, S]``).
        resize: side length in pixels before the transform (``None`` keeps it).
        chunk_size / action_dim: expected chunk shape; longer stored chunks
            are cut, smaller ones are rejected.
        instruction_mode: "atomic", "original", or "mix".
        original_ratio: probability of the original instruction in "mix" mode.
        state_dim: size of the state input, 0 to ignore states.
    """

    def __init__(
        self,
        raw: Dataset,
        transform: Callable[[Image.Image], torch.Tensor],
        resize: int | None,
        chunk_size: int,
        action_dim: int,
        instruction_mode: str = "atomic",
        original_ratio: float = 0.5,
        state_dim: int = 0,
    ) -> None:
        if instruction_mode not in INSTRUCTION_MODES:
            raise ValueError(
                f"instruction_mode must be one of {INSTRUCTION_MODES}, got {instruction_mode!r}"
            )
        if not 0.0 <= original_ratio <= 1.0:
            raise ValueError(f"original_ratio must be in [0, 1], got {original_ratio}")
        self.raw = raw
        self.transform = transform
        self.resize = resize
        self.chunk_size = chunk_size
        self.action_dim = action_dim
        self.instruction_mode = instruction_mode
        self.original_ratio = original_ratio
        self.state_dim = state_dim

    def __len__(self) -> int:
        return len(self.raw)

    def __getitem__(self, request: tuple[int, int]) -> Example:
        index, seed = request
        sample = self.raw[index]
        rng = random.Random(seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            image = self.transform(resize_like_eval(sample.image, self.resize))
        return Example(
            image=image,
            instruction=self._instruction(sample, rng),
            actions=torch.from_numpy(
                self._chunk(sample, sample.actions, (self.action_dim,))
            ),
            mask=torch.from_numpy(self._chunk(sample, sample.mask, ())),
            state=self._state(sample),
        )

    def _instruction(self, sample: RawSample, rng: random.Random) -> str:
        use_original = self.instruction_mode == "original" or (
            self.instruction_mode == "mix" and rng.random() < self.original_ratio
        )
        if use_original and not sample.original_instruction:
            raise ValueError(
                f"sample {sample.key}: instruction_mode={self.instruction_mode!r} needs an original instruction"
            )
        return sample.original_instruction if use_original else sample.instruction

    def _chunk(
        self, sample: RawSample, array: np.ndarray, tail: tuple[int, ...]
    ) -> np.ndarray:
        if (
            array.ndim != 1 + len(tail)
            or array.shape[1:] != tail
            or array.shape[0] < self.chunk_size
        ):
            raise ValueError(
                f"sample {sample.key}: chunk of shape {array.shape} does not fit "
                f"chunk_size={self.chunk_size}, action_dim={self.action_dim}"
            )
        return np.ascontiguousarray(array[: self.chunk_size])

    def _state(self, sample: RawSample) -> torch.Tensor | None:
        if not self.state_dim:
            return None
        if sample.state is None or sample.state.shape != (self.state_dim,):
            shape = None if sample.state is None else sample.state.shape
            raise ValueError(
                f"sample {sample.key}: state of shape {shape}, model expects ({self.state_dim},)"
            )
        return torch.from_numpy(sample.state)


def collate_examples(examples: list[Example]) -> dict[str, Any]:
    """Stack examples into a batch dict (instructions stay a list of strings)."""
    batch: dict[str, Any] = {
        "images": torch.stack([e.image for e in examples]),
        "instructions": [e.instruction for e in examples],
        "actions": torch.stack([e.actions for e in examples]),
        "mask": torch.stack([e.mask for e in examples]),
    }
    if examples[0].state is not None:
        batch["state"] = torch.stack([e.state for e in examples])
    return batch
