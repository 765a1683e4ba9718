"""Interpretation of a model's reply: checks, safe repairs and failure reasons.

A completed reply becomes segments or a failure with a reason code. Only
repairs that cannot change what the model meant are applied, and each is
listed:

- a boundary between keyframes is snapped to the nearest keyframe sent;
- a gap or overlap between neighbouring segments is closed at its midpoint;
- the first segment is made to start at frame 0 and the last to end at T-1.

A wrong segment count, ops or args that differ from the plan, frames outside
the demo and boundaries that are not increasing are failures, never fixed.
"""

from __future__ import annotations

import bisect
import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from aas.schema import Plan, Segment

# Failure reason codes recorded in a failed segmentation's provenance.
MALFORMED_JSON = "malformed_json"
INVALID_SCHEMA = "invalid_schema"
SEGMENT_COUNT_MISMATCH = "segment_count_mismatch"
PLAN_MISMATCH = "plan_mismatch"
FRAME_OUT_OF_RANGE = "frame_out_of_range"
BOUNDARIES_NOT_INCREASING = "boundaries_not_increasing"
TRUNCATED = "truncated"
REFUSAL = "refusal"
SAFETY_BLOCK = "safety_block"
EMPTY_CANDIDATES = "empty_candidates"

# Normalised finish reasons of a reply.
FINISH_STOP = "stop"
FINISH_LENGTH = "length"
FINISH_SAFETY = "safety"
FINISH_OTHER = "other"

_FENCE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.DOTALL)


@dataclass(frozen=True)
class Reply:
    """A completed model reply, normalised across backends.

    ``finish_reason`` is one of ``stop``, ``length``, ``safety``, ``other``.
    ``block_reason`` is set when the prompt itself was blocked and
    ``refusal`` when the model declined. ``candidates`` is the number of
    candidates or choices returned. Token counts come from the reply's usage
    metadata; ``image_tokens`` is the part of ``input_tokens`` spent on
    images when the server reports it, else 0.
    """

    text: str
    finish_reason: str = FINISH_STOP
    block_reason: str = ""
    refusal: str = ""
    candidates: int = 1
    input_tokens: int = 0
    output_tokens: int = 0
    image_tokens: int = 0
    model_version: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Reply:
        return cls(**data)


@dataclass(frozen=True)
class Answer:
    """Segments read from a reply, or the reason none could be read."""

    segments: tuple[Segment, ...] = ()
    repairs: tuple[str, ...] = ()
    error: str = ""
    message: str = ""

    @property
    def ok(self) -> bool:
        return not self.error


@dataclass
class _Draft:
    op: str
    args: tuple[str, ...]
    start: int
    end: int
    confidence: float
    notes: list[str] = field(default_factory=list)


def interpret_reply(
    reply: Reply,
    plan: Plan,
    keyframes: Sequence[int],
    num_frames: int,
    source: str,
) -> Answer:
    """Turn a completed reply into segments, or a failure with its reason."""
    if reply.block_reason:
        return Answer(
            error=SAFETY_BLOCK, message=f"prompt blocked: {reply.block_reason}"
        )
    if reply.candidates == 0:
        return Answer(error=EMPTY_CANDIDATES, message="the reply has no candidates")
    if reply.refusal:
        return Answer(error=REFUSAL, message=f"model refused: {reply.refusal[:200]}")
    if reply.finish_reason == FINISH_SAFETY:
        return Answer(
            error=SAFETY_BLOCK, message="candidate stopped by a safety filter"
        )
    if reply.finish_reason == FINISH_LENGTH:
        return Answer(
            error=TRUNCATED,
            message="reply truncated at the output token limit; raise max_output_tokens",
        )
    if not reply.text.strip():
        return Answer(error=EMPTY_CANDIDATES, message="the reply has no text")
    return parse_answer(reply.text, plan, keyframes, num_frames, source)


def parse_answer(
    text: str,
    plan: Plan,
    keyframes: Sequence[int],
    num_frames: int,
    source: str,
) -> Answer:
    """Parse the JSON text of a reply, check it against the plan and repair it.

    Args:
        text: the model's answer, ``{"segments": [...]}``, optionally fenced.
        plan: the plan the segments must follow.
        keyframes: frame indices that were sent, sorted or not.
        num_frames: demo length T; valid frames are 0 to T-1.
        source: segmenter name stored in each segment.
    """
    fenced = _FENCE.match(text)
    body = fenced.group(1) if fenced else text
    try:
        data = json.loads(body)
    except json.JSONDecodeError as exc:
        return Answer(
            error=MALFORMED_JSON,
            message=f"reply is not valid JSON ({exc}): {text[:120]!r}",
        )

    drafts, problem = _read_drafts(data)
    if problem:
        return Answer(error=INVALID_SCHEMA, message=problem)
    if len(drafts) != len(plan):
        return Answer(
            error=SEGMENT_COUNT_MISMATCH,
            message=f"expected {len(plan)} segments, one per plan step, got {len(drafts)}",
        )
    for i, (draft, step) in enumerate(zip(drafts, plan.steps)):
        if draft.op != step.op or draft.args != tuple(step.args):
            return Answer(
                error=PLAN_MISMATCH,
                message=f"segment {i} is {draft.op}{draft.args}, plan step {i} is {step}",
            )
    for i, draft in enumerate(drafts):
        for name in ("start", "end"):
            frame = getattr(draft, name)
            if not 0 <= frame < num_frames:
                return Answer(
                    error=FRAME_OUT_OF_RANGE,
                    message=f"segment {i} {name} frame {frame} is outside the demo's "
                    f"frames 0-{num_frames - 1}",
                )

    repairs, problem = _repair_boundaries(drafts, sorted(set(keyframes)), num_frames)
    if problem:
        return Answer(error=BOUNDARIES_NOT_INCREASING, message=problem, repairs=repairs)
    segments = tuple(
        Segment(
            op=d.op,
            args=d.args,
            start=d.start,
            end=d.end,
            confidence=d.confidence,
            source=source,
            instruction=step.instruction,
        )
        for d, step in zip(drafts, plan.steps)
    )
    return Answer(segments=segments, repairs=repairs)


def _read_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def _read_drafts(data: Any) -> tuple[list[_Draft], str]:
    """Check the answer's structure; return drafts or a message naming the field."""
    if not isinstance(data, dict) or not isinstance(data.get("segments"), list):
        return [], 'the reply must be a JSON object with a "segments" array'
    drafts = []
    for i, item in enumerate(data["segments"]):
        if not isinstance(item, dict):
            return [], f"segments[{i}] is not an object"
        op, args = item.get("op"), item.get("args")
        start, end = _read_int(item.get("start")), _read_int(item.get("end"))
        confidence = item.get("confidence")
        if not isinstance(op, str):
            return [], f"segments[{i}].op must be a string"
        if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
            return [], f"segments[{i}].args must be an array of strings"
        if start is None or end is None:
            return [], f"segments[{i}].start and .end must be integer frame numbers"
        if isinstance(confidence, bool) or not isinstance(confidence, (int, float)):
            return [], f"segments[{i}].confidence must be a number"
        if not 0.0 <= float(confidence) <= 1.0:
            return [], f"segments[{i}].confidence {confidence} is outside [0, 1]"
        drafts.append(_Draft(op, tuple(args), start, end, float(confidence)))
    return drafts, ""


def _nearest(sorted_frames: Sequence[int], frame: int) -> int:
    """Return the element of ``sorted_frames`` closest to ``frame`` (earlier on ties)."""
    i = bisect.bisect_left(sorted_frames, frame)
    candidates = sorted_frames[max(i - 1, 0) : i + 1]
    return min(candidates, key=lambda k: (abs(k - frame), k))


def _repair_boundaries(
    drafts: list[_Draft], keyframes: list[int], num_frames: int
) -> tuple[tuple[str, ...], str]:
    """Make segments contiguous with ends on keyframes; edit ``drafts`` in place."""
    repairs = []
    last = num_frames - 1
    if drafts[0].start != 0:
        repairs.append(f"segment 0 start moved from {drafts[0].start} to 0")
        drafts[0].start = 0
    if drafts[-1].end != last:
        repairs.append(
            f"segment {len(drafts) - 1} end moved from {drafts[-1].end} to {last}"
        )
        drafts[-1].end = last

    for i in range(len(drafts) - 1):
        left, right = drafts[i], drafts[i + 1]
        boundary = left.end
        if right.start != left.end + 1:
            boundary = (left.end + right.start - 1) // 2
            repairs.append(
                f"segments {i} and {i + 1} (end {left.end}, start {right.start}) "
                f"made contiguous at frame {boundary}"
            )
        if keyframes and boundary not in keyframes:
            snapped = _nearest(keyframes, boundary)
            repairs.append(
                f"segment {i} end moved from {boundary} to keyframe {snapped}"
            )
            boundary = snapped
        left.end = boundary
        right.start = boundary + 1

    for i, draft in enumerate(drafts):
        if draft.end < draft.start:
            return tuple(repairs), (
                f"segment {i} ends at frame {draft.end} before it starts at "
                f"{draft.start}; boundaries must increase"
            )
    return tuple(repairs), ""
