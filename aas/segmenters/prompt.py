"""The segmentation prompt and the JSON schema that constrains the answer.

The prompt text lives in one versioned template file under ``prompts/``.
``PROMPT_HASH`` is a digest of that file. It is recorded in every
segmentation's provenance, so results of different prompt versions can be
told apart.
The answer schema is derived from the ``Segment`` schema of ``aas.schema``.
"""

from __future__ import annotations

import copy
import importlib.resources
from collections.abc import Mapping, Sequence
from string import Template
from typing import Any

import numpy as np

from aas.demo import Demo
from aas.schema import Operator, Plan, Segment, content_hash, json_schema

PROMPT_VERSION = "segment_v1"
PROMPT_TEMPLATE = (
    importlib.resources.files("aas.segmenters")
    .joinpath("prompts", f"{PROMPT_VERSION}.txt")
    .read_text(encoding="utf-8")
)
PROMPT_HASH = content_hash(PROMPT_TEMPLATE)

# Fields of a Segment the model fills in; source and instruction come from us.
ANSWER_FIELDS = ("op", "args", "start", "end", "confidence")


def frame_label(frame: int) -> str:
    """Return the text part sent just before the image of ``frame``."""
    return f"Frame {frame}"


def format_plan(plan: Plan) -> str:
    """Return one numbered line per step: ``1. grasp(akita_black_bowl_1)``."""
    return "\n".join(f"{i}. {step}" for i, step in enumerate(plan.steps, start=1))


def format_vocabulary(operators: Mapping[str, Operator]) -> str:
    """Return one line per operator: its signature and one-line description."""
    lines = []
    for name, operator in operators.items():
        params = ", ".join(p for p, _ in operator.params)
        lines.append(f"- {name}({params}): {operator.description}")
    return "\n".join(lines)


def gripper_timeline(demo: Demo) -> str:
    """Summarise the commanded gripper state as frame ranges.

    Reads the gripper column of the actions (-1 open, +1 close) and returns
    a line such as ``Gripper command: open 0-41, closed 42-97, open 98-149``.
    """
    closed = np.asarray(demo.actions)[:, -1] > 0
    change = np.flatnonzero(np.diff(closed.astype(np.int8))) + 1
    starts = [0, *change.tolist()]
    ends = [*(change - 1).tolist(), len(closed) - 1]
    runs = [
        f"{'closed' if closed[s] else 'open'} {s}-{e}" for s, e in zip(starts, ends)
    ]
    return "Gripper command: " + ", ".join(runs)


def default_operators() -> Mapping[str, Operator]:
    """Return the toolkit's operator vocabulary, ``aas.operators.OPERATORS``."""
    from aas.operators import OPERATORS

    return OPERATORS


def build_prompt(
    demo: Demo,
    plan: Plan,
    keyframes: Sequence[int],
    operators: Mapping[str, Operator] | None = None,
    include_timeline: bool = False,
) -> str:
    """Fill the template for one demo, its plan and the keyframes to be sent."""
    if operators is None:
        operators = default_operators()
    timeline = f"\n{gripper_timeline(demo)}\n" if include_timeline else ""
    return Template(PROMPT_TEMPLATE).substitute(
        demo_key=demo.key,
        instruction=demo.instruction or "(none given)",
        num_frames=demo.num_frames,
        last_frame=demo.num_frames - 1,
        num_keyframes=len(keyframes),
        num_steps=len(plan),
        plan=format_plan(plan),
        vocabulary=format_vocabulary(operators),
        timeline=timeline,
    )


def answer_schema(plan: Plan, strict: bool = False) -> dict[str, Any]:
    """Return the JSON Schema of the expected answer for ``plan``.

    The answer is ``{"segments": [...]}`` with exactly ``len(plan)`` items,
    each holding the ``ANSWER_FIELDS`` of the ``Segment`` schema and an
    ``op`` drawn from the plan's operators. ``strict`` adds
    ``additionalProperties: false`` and marks every field required, as
    OpenAI's strict structured outputs demand.
    """
    segment = copy.deepcopy(json_schema(Segment))
    segment["properties"] = {k: segment["properties"][k] for k in ANSWER_FIELDS}
    segment["properties"]["op"]["enum"] = sorted({step.op for step in plan.steps})
    segment["required"] = list(ANSWER_FIELDS)
    segments = {
        "type": "array",
        "items": segment,
        "minItems": len(plan),
        "maxItems": len(plan),
    }
    schema = {
        "type": "object",
        "properties": {"segments": segments},
        "required": ["segments"],
    }
    if strict:
        segment["additionalProperties"] = False
        schema["additionalProperties"] = False
    return schema
