"""Core types shared by every part of the toolkit.

Plain frozen dataclasses with ``to_dict``/``from_dict``. Frame indices are
0-based and inclusive, in the demo's own frame numbering. A ground atom is a
tuple of lower-case strings, predicate first: ``("on", "akita_black_bowl_1",
"plate_1")``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Atom = tuple[str, ...]

SCHEMA_VERSION = 1


def _atom_list(atoms: Iterable[Atom]) -> list[list[str]]:
    return [list(atom) for atom in atoms]


def _atom_tuple(atoms: Iterable[Iterable[str]]) -> tuple[Atom, ...]:
    return tuple(tuple(atom) for atom in atoms)


@dataclass(frozen=True)
class Operator:
    """A typed atomic action with preconditions and effects over BDDL predicates.

    Parameters are ``(name, type)`` pairs. Atoms in ``preconditions``,
    ``add_effects`` and ``delete_effects`` refer to parameters as ``?name``.
    A ``*`` in a delete effect matches any value, so ``("on", "?obj", "*")``
    removes every support of the object. ``negative_preconditions`` must be
    false before the step. ``gripper_after`` is the gripper state the step
    leaves (``"closed"`` or ``"open"``), which the kinematic segmenter and
    the validator use as evidence. ``instruction`` is a ``str.format``
    template over the parameter names, filled with readable object names.
    """

    name: str
    params: tuple[tuple[str, str], ...]
    preconditions: tuple[Atom, ...]
    add_effects: tuple[Atom, ...]
    delete_effects: tuple[Atom, ...]
    description: str
    instruction: str
    gripper_after: str
    negative_preconditions: tuple[Atom, ...] = ()

    def __post_init__(self) -> None:
        if self.gripper_after not in ("open", "closed"):
            raise ValueError(
                f"Operator {self.name!r}: gripper_after must be 'open' or 'closed', "
                f"got {self.gripper_after!r}"
            )

    @property
    def arity(self) -> int:
        return len(self.params)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "params": [list(p) for p in self.params],
            "preconditions": _atom_list(self.preconditions),
            "negative_preconditions": _atom_list(self.negative_preconditions),
            "add_effects": _atom_list(self.add_effects),
            "delete_effects": _atom_list(self.delete_effects),
            "description": self.description,
            "instruction": self.instruction,
            "gripper_after": self.gripper_after,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Operator:
        return cls(
            name=data["name"],
            params=tuple(tuple(p) for p in data["params"]),
            preconditions=_atom_tuple(data["preconditions"]),
            negative_preconditions=_atom_tuple(data.get("negative_preconditions", [])),
            add_effects=_atom_tuple(data["add_effects"]),
            delete_effects=_atom_tuple(data["delete_effects"]),
            description=data["description"],
            instruction=data["instruction"],
            gripper_after=data["gripper_after"],
        )


@dataclass(frozen=True)
class Step:
    """One grounded operator, with its natural-language atomic instruction."""

    op: str
    args: tuple[str, ...]
    instruction: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"op": self.op, "args": list(self.args), "instruction": self.instruction}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Step:
        return cls(
            op=data["op"],
            args=tuple(data["args"]),
            instruction=data.get("instruction", ""),
        )

    def __str__(self) -> str:
        return f"{self.op}({', '.join(self.args)})"


@dataclass(frozen=True)
class Plan:
    """Ordered steps plus the scene they were planned for.

    ``problem`` is the BDDL problem name and ``bddl_file`` the file name the
    scene came from; ``goal`` is the conjunction of goal atoms the plan
    reaches.
    """

    steps: tuple[Step, ...]
    problem: str = ""
    bddl_file: str = ""
    goal: tuple[Atom, ...] = ()

    def __len__(self) -> int:
        return len(self.steps)

    def __iter__(self) -> Iterator[Step]:
        return iter(self.steps)

    def to_dict(self) -> dict[str, Any]:
        return {
            "steps": [s.to_dict() for s in self.steps],
            "problem": self.problem,
            "bddl_file": self.bddl_file,
            "goal": _atom_list(self.goal),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Plan:
        return cls(
            steps=tuple(Step.from_dict(s) for s in data["steps"]),
            problem=data.get("problem", ""),
            bddl_file=data.get("bddl_file", ""),
            goal=_atom_tuple(data.get("goal", [])),
        )


@dataclass(frozen=True)
class Segment:
    """One atomic action inside a demo: frames ``start`` to ``end`` inclusive.

    ``confidence`` is in [0, 1]; ``source`` names the segmenter that produced
    the segment.
    """

    op: str
    args: tuple[str, ...]
    start: int
    end: int
    confidence: float
    source: str
    instruction: str = ""

    def __post_init__(self) -> None:
        if self.start < 0 or self.end < self.start:
            raise ValueError(
                f"Segment {self.op}{self.args}: invalid frame range "
                f"[{self.start}, {self.end}]; expected 0 <= start <= end"
            )

    @property
    def num_frames(self) -> int:
        return self.end - self.start + 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "op": self.op,
            "args": list(self.args),
            "start": int(self.start),
            "end": int(self.end),
            "confidence": round(float(self.confidence), 6),
            "source": self.source,
            "instruction": self.instruction,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Segment:
        return cls(
            op=data["op"],
            args=tuple(data["args"]),
            start=int(data["start"]),
            end=int(data["end"]),
            confidence=float(data["confidence"]),
            source=data.get("source", ""),
            instruction=data.get("instruction", ""),
        )


@dataclass(frozen=True)
class Cost:
    """Resources spent on one segmentation: remote requests, tokens, seconds."""

    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    seconds: float = 0.0

    def __add__(self, other: Cost) -> Cost:
        return Cost(
            requests=self.requests + other.requests,
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            seconds=self.seconds + other.seconds,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "seconds": round(self.seconds, 6),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Cost:
        return cls(
            **{f.name: data.get(f.name, f.default) for f in dataclasses.fields(cls)}
        )


@dataclass(frozen=True)
class Provenance:
    """Origin of a segmentation: segmenter, model, prompt, keyframes and cost.

    ``keyframes`` lists the frame indices the segmenter looked at (empty when
    it used every frame). ``extra`` contains backend-specific metadata that must
    stay JSON-serialisable, such as a failure reason.
    """

    segmenter: str
    version: str
    model: str = ""
    prompt_hash: str = ""
    keyframes: tuple[int, ...] = ()
    cost: Cost = field(default_factory=Cost)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "segmenter": self.segmenter,
            "version": self.version,
            "model": self.model,
            "prompt_hash": self.prompt_hash,
            "keyframes": [int(k) for k in self.keyframes],
            "cost": self.cost.to_dict(),
            "extra": self.extra,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Provenance:
        return cls(
            segmenter=data["segmenter"],
            version=data["version"],
            model=data.get("model", ""),
            prompt_hash=data.get("prompt_hash", ""),
            keyframes=tuple(int(k) for k in data.get("keyframes", [])),
            cost=Cost.from_dict(data.get("cost", {})),
            extra=dict(data.get("extra", {})),
        )


@dataclass(frozen=True)
class Segmentation:
    """The segments of one demo plus provenance.

    ``demo_key`` identifies the demo across files: ``<file stem>/<demo id>``.
    ``num_frames`` is the demo length T, so a complete segmentation covers
    frames 0 to T-1. ``demo_hash`` is a digest of the demo's actions that
    exports use to detect a segmentation applied to the wrong file.
    ``status`` is ``"ok"`` or ``"failed"``; a failed segmentation keeps its
    reason in ``error`` and may have no segments.
    """

    demo_key: str
    num_frames: int
    segments: tuple[Segment, ...]
    provenance: Provenance
    instruction: str = ""
    plan: Plan | None = None
    source_file: str = ""
    demo_hash: str = ""
    fps: float = 20.0
    status: str = "ok"
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def boundaries(self) -> list[int]:
        """Return the end frame of every segment except the last."""
        return [s.end for s in self.segments[:-1]]

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "demo_key": self.demo_key,
            "source_file": self.source_file,
            "demo_hash": self.demo_hash,
            "num_frames": int(self.num_frames),
            "fps": self.fps,
            "instruction": self.instruction,
            "status": self.status,
            "error": self.error,
            "plan": self.plan.to_dict() if self.plan is not None else None,
            "segments": [s.to_dict() for s in self.segments],
            "provenance": self.provenance.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Segmentation:
        plan = data.get("plan")
        return cls(
            demo_key=data["demo_key"],
            num_frames=int(data["num_frames"]),
            segments=tuple(Segment.from_dict(s) for s in data["segments"]),
            provenance=Provenance.from_dict(data["provenance"]),
            instruction=data.get("instruction", ""),
            plan=Plan.from_dict(plan) if plan else None,
            source_file=data.get("source_file", ""),
            demo_hash=data.get("demo_hash", ""),
            fps=float(data.get("fps", 20.0)),
            status=data.get("status", "ok"),
            error=data.get("error", ""),
        )


def dumps_line(record: dict[str, Any]) -> str:
    """Serialise one JSON Lines record with stable key order."""
    return json.dumps(record, sort_keys=True, ensure_ascii=False)


def default_file_mode() -> int:
    """Return the mode ``open()`` would give a new file under the current umask."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def write_atomic(path: str | os.PathLike, text: str | bytes) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename.

    A reader never sees a half-written file, and an interrupted write leaves
    the previous content in place.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = "wb" if isinstance(text, bytes) else "w"
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp creates 0600 files; give the result the usual umask-based mode.
        os.chmod(tmp, default_file_mode())
        with os.fdopen(
            fd, mode, **({} if mode == "wb" else {"encoding": "utf-8"})
        ) as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_segmentations(path: str | os.PathLike, items: Iterable[Segmentation]) -> None:
    """Write segmentations as JSON Lines, one demo per line, atomically."""
    text = "".join(dumps_line(s.to_dict()) + "\n" for s in items)
    write_atomic(path, text)


def read_segmentations(
    path: str | os.PathLike, skipped: list[str] | None = None
) -> list[Segmentation]:
    """Read a JSON Lines file of segmentations.

    Args:
        path: the ``segments.jsonl`` file.
        skipped: when given, an unreadable line is skipped and its message
            (file, line number, reason) appended here instead of raised, so
            one torn line does not lose the other records.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: a line is not valid JSON or lacks a required field and
            ``skipped`` is None; the message names the file and line number.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"segmentation file {path} not found; write it with `aas segment --output_dir=...`"
        )
    result = []
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                result.append(Segmentation.from_dict(json.loads(line)))
            except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                message = (
                    f"{path}:{lineno}: invalid segmentation record ({exc}); "
                    "regenerate the file with `aas segment`"
                )
                if skipped is None:
                    raise ValueError(message) from exc
                skipped.append(message)
    return result


def content_hash(*parts: str | bytes) -> str:
    """Return a short SHA-256 hex digest over the given parts (16 hex digits)."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode("utf-8") if isinstance(part, str) else part)
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def _schema_for(cls: type) -> dict[str, Any]:
    """Build a JSON Schema for a serialised record type from its ``to_dict``."""
    schemas: dict[str, dict[str, Any]] = {
        "Segment": {
            "type": "object",
            "properties": {
                "op": {"type": "string"},
                "args": {"type": "array", "items": {"type": "string"}},
                "start": {"type": "integer", "minimum": 0},
                "end": {"type": "integer", "minimum": 0},
                "confidence": {"type": "number", "minimum": 0, "maximum": 1},
                "source": {"type": "string"},
                "instruction": {"type": "string"},
            },
            "required": ["op", "args", "start", "end", "confidence"],
        },
        "Step": {
            "type": "object",
            "properties": {
                "op": {"type": "string"},
                "args": {"type": "array", "items": {"type": "string"}},
                "instruction": {"type": "string"},
            },
            "required": ["op", "args"],
        },
    }
    if cls.__name__ not in schemas:
        raise ValueError(f"No JSON Schema defined for {cls.__name__}")
    return schemas[cls.__name__]


def json_schema(cls: type) -> dict[str, Any]:
    """Return the JSON Schema of ``Segment`` or ``Step`` records."""
    return _schema_for(cls)
