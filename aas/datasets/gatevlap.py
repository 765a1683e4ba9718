"""GATE-VLAP layout: one tar per atomic subtask, one PNG and one JSON per frame.

An export contains ``<suite>/<subtask>.tar`` where ``subtask`` is the atomic
instruction in snake case (``pick_up_the_black_bowl``). Inside a tar, the
k-th segment of that subtask is the folder ``demo_<k>`` with, for each of its
frames, ``demo_<k>/demo_<k>_timestep_<t:04d>.png`` (upright agentview image),
``demo_<k>/demo_<k>_timestep_<t:04d>.wrist.png`` (upright wrist image) and
``demo_<k>/demo_<k>_timestep_<t:04d>.json``; ``t`` counts frames from the
segment's start. The JSON record of a frame holds:

- ``instruction`` (atomic), ``original_instruction`` (the whole task's),
- ``action`` [7], ``state`` [8] (``frames.STATE_NAMES``), ``joint_state`` [7],
  ``robot_state`` [9] (LIBERO's: gripper 2, eef position 3, quaternion 4),
- ``image`` and ``wrist_image`` (member base names), ``timestep``, ``frame``
  (index in the source demo),
- ``op``, ``args``, ``start``, ``end`` (inclusive demo frames),
  ``confidence``, ``segment_index``, ``source`` (segmenter),
- ``demo_key``, ``demo_hash``, ``demo_num_frames``, ``suite``, ``task``.

WebDataset groups the members of one frame by their shared prefix, so each
tar reads as a dataset of frames with ``png``, ``wrist.png`` and ``json``
fields; plain ``tar -x`` unpacks the folders. Suites are written one at a
time and recorded in the progress file, so an interrupted export resumes at
the first unfinished suite.
"""

from __future__ import annotations

import json
import logging
import re
import tarfile
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from aas.datasets.atomic_tar import AtomicTarWriter, Opener, open_for_write
from aas.datasets.frames import SegmentFrames, read_segment_frames
from aas.datasets.images import decode_png, encode_png
from aas.datasets.sources import SegmentedDemo
from aas.schema import Provenance, Segment, Segmentation, write_atomic

logger = logging.getLogger(__name__)

PROGRESS_FILE = ".gatevlap_progress.json"
_MEMBER = re.compile(r"^(?P<demo>demo_\d+)/(?P=demo)_timestep_(?P<t>\d+)\.(?P<ext>.+)$")


def subtask_name(segment: Segment) -> str:
    """Return the tar name of a segment's subtask: its instruction in snake case.

    Falls back to the operator and its arguments when the instruction is empty.
    """
    text = segment.instruction or " ".join((segment.op, *segment.args))
    slug = re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")
    if not slug:
        raise ValueError(
            f"segment {segment.op}{segment.args} has no usable subtask name"
        )
    return slug


@dataclass
class ExportCounts:
    """Totals of one export: frames, segments, segments per operator, tars."""

    frames: int = 0
    segments: int = 0
    ops: Counter = field(default_factory=Counter)
    files: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "frames": self.frames,
            "segments": self.segments,
            "ops": dict(sorted(self.ops.items())),
            "files": sorted(self.files),
        }


def frame_record(
    item: SegmentedDemo, index: int, data: SegmentFrames, t: int, demo_name: str
) -> dict:
    """Build the JSON record of frame ``t`` (0-based within the segment)."""
    segment = item.segmentation.segments[index]
    stem = f"{demo_name}_timestep_{t:04d}"
    robot = data.robot_states[t].tolist() if data.robot_states is not None else None
    return {
        "instruction": segment.instruction,
        "original_instruction": item.segmentation.instruction or item.demo.instruction,
        "action": data.actions[t].tolist(),
        "state": data.state[t].tolist(),
        "joint_state": data.joint_states[t].tolist(),
        "robot_state": robot,
        "image": f"{stem}.png",
        "wrist_image": f"{stem}.wrist.png",
        "timestep": t,
        "frame": int(data.frames[t]),
        "op": segment.op,
        "args": list(segment.args),
        "start": segment.start,
        "end": segment.end,
        "confidence": segment.confidence,
        "segment_index": index,
        "source": segment.source,
        "demo_key": item.demo.key,
        "demo_hash": item.segmentation.demo_hash,
        "demo_num_frames": item.segmentation.num_frames,
        "suite": item.suite,
        "task": item.task,
    }


def _write_segment(
    writer: AtomicTarWriter, item: SegmentedDemo, index: int, demo_name: str
) -> int:
    data = read_segment_frames(item.demo, item.segmentation.segments[index])
    for t in range(len(data.frames)):
        stem = f"{demo_name}/{demo_name}_timestep_{t:04d}"
        record = frame_record(item, index, data, t, demo_name)
        writer.add(f"{stem}.json", json.dumps(record, sort_keys=True).encode())
        writer.add(f"{stem}.png", encode_png(data.agentview[t]))
        writer.add(f"{stem}.wrist.png", encode_png(data.wrist[t]))
    return len(data.frames)


def _read_progress(out: Path) -> dict[str, Any]:
    path = out / PROGRESS_FILE
    if not path.exists():
        return {"suites": {}}
    return json.loads(path.read_text(encoding="utf-8"))


class _SuiteWriter:
    """The open subtask tars of one suite; committed together when it ends."""

    def __init__(self, out: Path, suite: str, opener: Opener) -> None:
        self.out, self.suite, self.opener = out, suite, opener
        self.writers: dict[str, AtomicTarWriter] = {}
        self.demo_counts: Counter = Counter()
        self.counts = ExportCounts()

    def write(self, item: SegmentedDemo) -> None:
        for index, segment in enumerate(item.segmentation.segments):
            subtask = subtask_name(segment)
            if subtask not in self.writers:
                self.writers[subtask] = AtomicTarWriter(
                    self.out / self.suite / f"{subtask}.tar", self.opener
                )
            demo_name = f"demo_{self.demo_counts[subtask]}"
            self.demo_counts[subtask] += 1
            self.counts.frames += _write_segment(
                self.writers[subtask], item, index, demo_name
            )
            self.counts.segments += 1
            self.counts.ops[segment.op] += 1

    def commit(self) -> None:
        for subtask, writer in sorted(self.writers.items()):
            writer.commit()
            self.counts.files.append(f"{self.suite}/{subtask}.tar")

    def abort(self) -> None:
        for writer in self.writers.values():
            writer.abort()


def export_gatevlap(
    items: Iterable[SegmentedDemo],
    out: str | Path,
    resume: bool = False,
    opener: Opener = open_for_write,
) -> ExportCounts:
    """Write GATE-VLAP tars for ``items`` under ``out``; return the totals.

    ``items`` must come grouped by suite (the export command sorts its demo
    files so). With ``resume``, suites recorded as finished in the progress
    file are skipped. On any error the open tars of the current suite are
    removed and the error is raised; finished suites stay.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    progress = _read_progress(out) if resume else {"suites": {}}
    totals = ExportCounts()
    for counts in progress["suites"].values():
        _add_counts(totals, counts)
    current: _SuiteWriter | None = None
    try:
        for item in items:
            if item.suite in progress["suites"]:
                continue
            if current is not None and item.suite != current.suite:
                _finish_suite(out, current, progress, totals)
                current = None
            if current is None:
                logger.info("writing GATE-VLAP tars of suite %s", item.suite)
                current = _SuiteWriter(out, item.suite, opener)
            current.write(item)
        if current is not None:
            _finish_suite(out, current, progress, totals)
            current = None
    finally:
        if current is not None:
            current.abort()
    return totals


def _finish_suite(
    out: Path, suite: _SuiteWriter, progress: dict, totals: ExportCounts
) -> None:
    if suite.suite in progress["suites"]:
        raise ValueError(
            f"suite {suite.suite} appears twice in the input; pass its demo files together"
        )
    suite.commit()
    counts = suite.counts.to_dict()
    progress["suites"][suite.suite] = counts
    write_atomic(out / PROGRESS_FILE, json.dumps(progress, sort_keys=True))
    _add_counts(totals, counts)
    logger.info(
        "suite %s: %d segments, %d frames in %d tars",
        suite.suite,
        counts["segments"],
        counts["frames"],
        len(counts["files"]),
    )


def _add_counts(totals: ExportCounts, counts: dict[str, Any]) -> None:
    totals.frames += counts["frames"]
    totals.segments += counts["segments"]
    totals.ops.update(counts["ops"])
    totals.files.extend(counts["files"])


@dataclass
class ImportedSegment:
    """One segment read back from a GATE-VLAP tar (n frames).

    ``actions`` ``[n, 7]``, ``state`` ``[n, 8]`` (absent in files that lack
    it: then ``None``), ``joint_states`` ``[n, 7]``, ``robot_states`` ``[n, 9]``
    or ``None``; ``images`` and ``wrist_images`` ``[n, H, W, 3]`` uint8 when
    decoded, else ``None``.
    """

    subtask: str
    demo_name: str
    segment: Segment
    instruction: str
    original_instruction: str
    demo_key: str
    demo_hash: str
    demo_num_frames: int | None
    frames: np.ndarray
    actions: np.ndarray
    state: np.ndarray | None
    joint_states: np.ndarray
    robot_states: np.ndarray | None
    images: np.ndarray | None = None
    wrist_images: np.ndarray | None = None


def read_gatevlap_tar(
    path: str | Path, decode_images: bool = False
) -> Iterator[ImportedSegment]:
    """Read the segments of one GATE-VLAP tar in file order, streaming.

    Frames of a segment are ordered by timestep. Records written by other
    tools may lack the fields this toolkit adds (``state``, ``demo_key``...);
    missing ones become empty values, but ``action`` and ``instruction``
    are required.

    Raises:
        ValueError: a frame record is missing or lacks a required field; the
            message names the tar and member.
    """
    path = Path(path)
    subtask = path.stem
    pending: dict[str, dict[int, dict[str, Any]]] = defaultdict(dict)
    order: list[str] = []
    with tarfile.open(path, mode="r|*") as tar:
        for member in tar:
            match = _MEMBER.match(member.name) if member.isfile() else None
            if match is None:
                continue
            demo_name, t, ext = match["demo"], int(match["t"]), match["ext"]
            if order and order[-1] != demo_name and demo_name not in pending:
                yield _build_segment(path, subtask, order[-1], pending.pop(order[-1]))
            if demo_name not in pending:
                order.append(demo_name)
            frame = pending[demo_name].setdefault(t, {})
            payload = tar.extractfile(member).read()
            if ext == "json":
                frame["record"] = json.loads(payload)
            elif ext in ("png", "wrist.png") and decode_images:
                frame[ext] = decode_png(payload)
    for demo_name in order:
        if demo_name in pending:
            yield _build_segment(path, subtask, demo_name, pending.pop(demo_name))


def _build_segment(
    path: Path, subtask: str, demo_name: str, frames: dict[int, dict]
) -> ImportedSegment:
    steps = sorted(frames)
    records = []
    for t in steps:
        if "record" not in frames[t]:
            raise ValueError(f"{path}: {demo_name} timestep {t} has no .json record")
        records.append(frames[t]["record"])
    first = records[0]
    for name in ("action", "instruction"):
        if name not in first:
            raise ValueError(
                f"{path}: {demo_name} timestep {steps[0]}: field {name!r} is missing"
            )
    frame_ids = np.array(
        [r.get("frame", r.get("timestep", t)) for r, t in zip(records, steps)]
    )
    start = int(first.get("start", frame_ids[0]))
    end = int(first.get("end", frame_ids[-1]))
    segment = Segment(
        op=first.get("op", ""),
        args=tuple(first.get("args", ())),
        start=start,
        end=end,
        confidence=float(first.get("confidence", 1.0)),
        source=first.get("source", "gatevlap"),
        instruction=first["instruction"],
    )

    def stack(name: str) -> np.ndarray | None:
        if any(r.get(name) is None for r in records):
            return None
        return np.asarray([r[name] for r in records], dtype=np.float32)

    def images(key: str) -> np.ndarray | None:
        if not all(key in frames[t] for t in steps):
            return None
        return np.stack([frames[t][key] for t in steps])

    joint = stack("joint_state")
    return ImportedSegment(
        subtask=subtask,
        demo_name=demo_name,
        segment=segment,
        instruction=first["instruction"],
        original_instruction=first.get("original_instruction", ""),
        demo_key=first.get("demo_key", ""),
        demo_hash=first.get("demo_hash", ""),
        demo_num_frames=first.get("demo_num_frames"),
        frames=frame_ids,
        actions=stack("action"),
        state=stack("state"),
        joint_states=joint
        if joint is not None
        else np.zeros((len(steps), 0), np.float32),
        robot_states=stack("robot_state"),
        images=images("png"),
        wrist_images=images("wrist.png"),
    )


def import_segmentations(root: str | Path) -> list[Segmentation]:
    """Rebuild per-demo segmentations from every tar under ``root``.

    Segments are grouped by ``demo_key`` (a tar without it gives one
    segmentation per segment, keyed ``<subtask>/<demo_k>``) and sorted by
    start frame. ``num_frames`` is the stored demo length, else the last
    segment's end plus one.
    """
    grouped: dict[str, list[ImportedSegment]] = defaultdict(list)
    for path in sorted(Path(root).rglob("*.tar")):
        for imported in read_gatevlap_tar(path):
            key = imported.demo_key or f"{imported.subtask}/{imported.demo_name}"
            grouped[key].append(imported)
    result = []
    for key, parts in sorted(grouped.items()):
        parts.sort(key=lambda p: p.segment.start)
        stored = parts[0].demo_num_frames
        result.append(
            Segmentation(
                demo_key=key,
                num_frames=int(stored) if stored else parts[-1].segment.end + 1,
                segments=tuple(p.segment for p in parts),
                provenance=Provenance(segmenter=parts[0].segment.source, version=""),
                instruction=parts[0].original_instruction,
                demo_hash=parts[0].demo_hash,
            )
        )
    return result
