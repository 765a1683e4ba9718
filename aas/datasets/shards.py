"""Training shards: WebDataset tars with one sample per (segment, frame).

A shard folder contains ``shard-000000.tar``, ``shard-000001.tar``, ... and
``manifest.json``. Each sample has these members (``<key>.<field>``):

- ``__key__``: ``<demo key>__f<frame:04d>`` with ``/`` and ``.`` in the demo
  key replaced by ``__`` and ``_`` (WebDataset splits names at the first dot),
  for example ``KITCHEN_SCENE3_turn_on_the_stove_demo__demo_3__f0042``.
- ``agentview.png``, ``wrist.png``: upright uint8 RGB images ``[H, W, 3]``.
- ``instruction.txt``: the segment's atomic instruction (UTF-8).
- ``original_instruction.txt``: the whole task's instruction.
- ``actions.npy``: float32 ``[8, 7]``, the actions of frames t..t+7, rows
  past the segment's last frame set to zero.
- ``mask.npy``: bool ``[8]``, true for rows inside the segment.
- ``state.npy``: float32 ``[9]``: end-effector position (3, metres, world
  frame), end-effector axis-angle (3, radians), the two finger joint
  positions (2, metres), then one reserved entry that is always 0.
- ``meta.json``: ``op``, ``args``, ``demo_key``, ``frame``, ``segment_index``,
  ``start``, ``end`` (inclusive demo frames), ``confidence``, ``suite``,
  ``task``.

A shard is closed before it would exceed ``max_shard_bytes`` or
``max_shard_samples``. ``manifest.json`` lists the shards with their sample
counts, the field names and layouts, operator counts and, per demo, the
action digest and a hash of the exported segmentation. Samples are written
in demo order, one demo in memory at a time; shuffle when reading
(``load_shards(..., shuffle=N)``).
"""

from __future__ import annotations

import ast
import functools
import io
import json
import logging
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from aas.datasets.atomic_tar import AtomicTarWriter, Opener, open_for_write
from aas.datasets.frames import ACTION_NAMES, STATE_NAMES, read_segment_frames
from aas.datasets.images import decode_png, encode_png
from aas.datasets.sources import SegmentedDemo
from aas.schema import content_hash, dumps_line, write_atomic

logger = logging.getLogger(__name__)

CHUNK_SIZE = 8
STATE_SIZE = 9
SHARD_STATE_NAMES = (*STATE_NAMES, "reserved")
NPY_MAGIC = b"\x93NUMPY"
MANIFEST_FILE = "manifest.json"
PROGRESS_FILE = ".shards_progress.json"
SHARD_PATTERN = "shard-{index:06d}.tar"
FIELDS = (
    "agentview.png",
    "wrist.png",
    "instruction.txt",
    "original_instruction.txt",
    "actions.npy",
    "mask.npy",
    "state.npy",
    "meta.json",
)


class ResumeMismatchError(ValueError):
    """The inputs of a resumed export differ from those of the first run."""


def sample_key(demo_key: str, frame: int) -> str:
    """Return the WebDataset key of one frame of a demo."""
    safe = demo_key.replace("/", "__").replace(".", "_")
    return f"{safe}__f{frame:04d}"


def action_chunk(actions: np.ndarray, t: int) -> tuple[np.ndarray, np.ndarray]:
    """Return the ``[8, 7]`` chunk of actions t..t+7 and its ``[8]`` mask.

    ``actions`` ``[n, 7]`` are the segment's actions; rows past its end are
    zero and masked out.
    """
    chunk = np.zeros((CHUNK_SIZE, actions.shape[1]), dtype=np.float32)
    valid = actions[t : t + CHUNK_SIZE]
    chunk[: len(valid)] = valid
    mask = np.zeros(CHUNK_SIZE, dtype=bool)
    mask[: len(valid)] = True
    return chunk, mask


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


@functools.lru_cache(maxsize=64)
def _npy_header(header: bytes) -> tuple[np.dtype, tuple[int, ...], str]:
    fields = ast.literal_eval(header.decode("latin1"))
    order = "F" if fields["fortran_order"] else "C"
    return np.dtype(fields["descr"]), tuple(fields["shape"]), order


def load_npy(data: bytes) -> np.ndarray:
    """Decode the bytes of a ``.npy`` file (format 1.0 to 3.0) into a read-only array.

    Same result as ``np.load`` on the bytes, several times faster for the
    small arrays of a sample because repeated headers are parsed once.
    """
    if data[:6] != NPY_MAGIC:
        raise ValueError("not a .npy file: the magic string is missing")
    if data[6] == 1:
        length, start = int.from_bytes(data[8:10], "little"), 10
    else:
        length, start = int.from_bytes(data[8:12], "little"), 12
    dtype, shape, order = _npy_header(bytes(data[start : start + length]))
    array = np.frombuffer(data, dtype=dtype, offset=start + length)
    return array.reshape(shape, order=order)


def iter_samples(
    item: SegmentedDemo, skip: int = 0, png_level: int = 1
) -> Iterator[dict[str, Any]]:
    """Yield the encoded samples of one demo, leaving out the first ``skip``.

    ``png_level`` is the zlib level of the images. Level 0 stores them
    uncompressed: on 128 px scene images with Pillow 12.3 that made files
    about 1.5 times larger than level 1 and decoding about 3 times faster.
    """
    segments = item.segmentation.segments
    original = item.segmentation.instruction or item.demo.instruction
    position = 0
    for index, segment in enumerate(segments):
        if position + segment.num_frames <= skip:
            position += segment.num_frames
            continue
        data = read_segment_frames(item.demo, segment)
        for t, frame in enumerate(data.frames):
            position += 1
            if position <= skip:
                continue
            chunk, mask = action_chunk(data.actions, t)
            state = np.zeros(STATE_SIZE, dtype=np.float32)
            state[: data.state.shape[1]] = data.state[t]
            meta = {
                "op": segment.op,
                "args": list(segment.args),
                "demo_key": item.demo.key,
                "frame": int(frame),
                "segment_index": index,
                "start": segment.start,
                "end": segment.end,
                "confidence": segment.confidence,
                "suite": item.suite,
                "task": item.task,
            }
            yield {
                "__key__": sample_key(item.demo.key, int(frame)),
                "agentview.png": encode_png(data.agentview[t], png_level),
                "wrist.png": encode_png(data.wrist[t], png_level),
                "instruction.txt": segment.instruction.encode(),
                "original_instruction.txt": original.encode(),
                "actions.npy": _npy(chunk),
                "mask.npy": _npy(mask),
                "state.npy": _npy(state),
                "meta.json": json.dumps(meta, sort_keys=True).encode(),
            }


@dataclass
class ShardLimits:
    """When to start a new shard: bytes (tar size) and samples per shard."""

    max_shard_bytes: int = 512 * 1024**2
    max_shard_samples: int = 10_000


class _ShardSequence:
    """Writes samples into numbered shards, each committed when full."""

    def __init__(
        self, out: Path, limits: ShardLimits, progress: dict, opener: Opener
    ) -> None:
        self.out, self.limits, self.progress, self.opener = (
            out,
            limits,
            progress,
            opener,
        )
        self.writer: AtomicTarWriter | None = None
        self.samples_in_shard = 0

    def add(self, sample: dict[str, Any]) -> None:
        key = sample["__key__"]
        members = {f"{key}.{name}": len(sample[name]) for name in FIELDS}
        if self.writer is not None and (
            self.writer.closed_size(members) > self.limits.max_shard_bytes
            or self.samples_in_shard >= self.limits.max_shard_samples
        ):
            self.commit()
        if self.writer is None:
            name = SHARD_PATTERN.format(index=len(self.progress["shards"]))
            self.writer = AtomicTarWriter(self.out / name, self.opener)
            self.samples_in_shard = 0
        for name in FIELDS:
            self.writer.add(f"{key}.{name}", sample[name])
        self.samples_in_shard += 1

    def commit(self) -> None:
        if self.writer is None:
            return
        path = self.writer.commit()
        self.progress["shards"].append(
            {
                "name": path.name,
                "num_samples": self.samples_in_shard,
                "num_bytes": path.stat().st_size,
            }
        )
        self.progress["num_samples"] += self.samples_in_shard
        write_atomic(
            self.out / PROGRESS_FILE, json.dumps(self.progress, sort_keys=True)
        )
        logger.info("wrote %s with %d samples", path.name, self.samples_in_shard)
        self.writer = None

    def abort(self) -> None:
        if self.writer is not None:
            self.writer.abort()
            self.writer = None


def export_shards(
    items: Iterable[SegmentedDemo],
    out: str | Path,
    limits: ShardLimits | None = None,
    resume: bool = False,
    fingerprint: str = "",
    opener: Opener = open_for_write,
    png_level: int = 1,
) -> dict[str, Any]:
    """Write training shards for ``items`` under ``out``; return the manifest.

    With ``resume``, the samples already in committed shards are skipped
    without decoding their images. ``fingerprint`` identifies the inputs and
    settings; a resumed run with a different one raises
    ``ResumeMismatchError``. On any error the open shard is removed and the
    error is raised. ``png_level`` is the zlib level of the images (0 to 9).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    limits = limits or ShardLimits()
    progress = {"shards": [], "num_samples": 0, "fingerprint": fingerprint}
    if resume and (out / PROGRESS_FILE).exists():
        progress = json.loads((out / PROGRESS_FILE).read_text(encoding="utf-8"))
        if progress.get("fingerprint") != fingerprint:
            raise ResumeMismatchError(
                f"{out} contains shards written from other inputs or settings; "
                "pass --overwrite=true to start again"
            )
        logger.info(
            "resuming after %d samples in %d shards",
            progress["num_samples"],
            len(progress["shards"]),
        )
    to_skip = progress["num_samples"]
    sources: dict[str, dict[str, str]] = {}
    ops: Counter = Counter()
    sequence = _ShardSequence(out, limits, progress, opener)
    try:
        for item in items:
            sources[item.demo.key] = {
                "demo_hash": item.segmentation.demo_hash,
                "segmentation_hash": content_hash(
                    dumps_line(item.segmentation.to_dict())
                ),
            }
            ops.update(segment.op for segment in item.segmentation.segments)
            count = sum(segment.num_frames for segment in item.segmentation.segments)
            if count <= to_skip:
                to_skip -= count
                continue
            for sample in iter_samples(item, skip=to_skip, png_level=png_level):
                sequence.add(sample)
            to_skip = 0
        sequence.commit()
    finally:
        sequence.abort()
    manifest = {
        "format": "aas-webdataset",
        "version": 1,
        "num_samples": progress["num_samples"],
        "shards": progress["shards"],
        "fields": list(FIELDS),
        "chunk_size": CHUNK_SIZE,
        "action_names": list(ACTION_NAMES),
        "state_names": list(SHARD_STATE_NAMES),
        "ops": dict(sorted(ops.items())),
        "sources": sources,
    }
    write_atomic(
        out / MANIFEST_FILE, json.dumps(manifest, indent=2, sort_keys=True) + "\n"
    )
    return manifest


def shard_paths(folder: str | Path) -> list[str]:
    """Return the shard paths listed in a folder's ``manifest.json``.

    Raises:
        FileNotFoundError: the folder has no manifest (the export did not finish).
    """
    folder = Path(folder)
    manifest_path = folder / MANIFEST_FILE
    if not manifest_path.exists():
        raise FileNotFoundError(
            f"{manifest_path} not found; run `aas export --format=webdataset` to completion"
        )
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    return [str(folder / shard["name"]) for shard in manifest["shards"]]


def decode_sample(sample: dict[str, Any]) -> dict[str, Any]:
    """Decode the raw bytes of one WebDataset sample into arrays and strings.

    Returns ``agentview`` and ``wrist`` (uint8 ``[H, W, 3]``), ``instruction``
    and ``original_instruction`` (str), ``actions`` (float32 ``[8, 7]``),
    ``mask`` (bool ``[8]``), ``state`` (float32 ``[9]``), ``meta`` (dict) and
    ``key``.
    """
    return {
        "key": sample["__key__"],
        "agentview": decode_png(sample["agentview.png"]),
        "wrist": decode_png(sample["wrist.png"]),
        "instruction": sample["instruction.txt"].decode(),
        "original_instruction": sample["original_instruction.txt"].decode(),
        "actions": load_npy(sample["actions.npy"]),
        "mask": load_npy(sample["mask.npy"]),
        "state": load_npy(sample["state.npy"]),
        "meta": json.loads(sample["meta.json"]),
    }


def load_shards(folder: str | Path, shuffle: int = 0):
    """Open a shard folder as a ``webdataset.WebDataset`` of decoded samples.

    ``shuffle`` is the size of WebDataset's sample shuffle buffer (0: file
    order). Each sample is a dict as returned by ``decode_sample``.
    """
    import webdataset as wds

    dataset = wds.WebDataset(shard_paths(folder), shardshuffle=False, empty_check=False)
    if shuffle:
        dataset = dataset.shuffle(shuffle)
    return dataset.map(decode_sample)
