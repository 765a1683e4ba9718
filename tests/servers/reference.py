"""What the test servers answer: reference segments plus a controllable noise model.

Noise model: the server reads the frame numbers of the keyframes it was
sent, moves each reference boundary by a Gaussian offset of ``sigma_frames``
frames (rounded), and answers the sent keyframe nearest to the result, as a
model that can only point at frames it has seen. A boundary that lands on
the keyframe of the boundary before it moves to the next keyframe sent. With ``sigma_frames=0``
the answer is the keyframe nearest to the reference boundary. The offset is
drawn from a generator seeded by the request's demo key and keyframes, so
identical requests get identical answers.
"""

from __future__ import annotations

import bisect
import itertools
import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from aas.schema import Segment, content_hash

# Faults a server can inject, in the order a demo's requests meet them.
OK = "ok"
RATE_LIMIT = "rate_limit"
SERVER_ERROR = "server_error"
TIMEOUT = "timeout"
MALFORMED = "malformed"
TRUNCATED = "truncated"
WRONG_COUNT = "wrong_count"
OUT_OF_RANGE = "out_of_range"
EMPTY_CANDIDATES = "empty_candidates"
BLOCKED = "blocked"
REFUSAL = "refusal"
GAPS = "gaps"
FAULTS = (
    OK,
    RATE_LIMIT,
    SERVER_ERROR,
    TIMEOUT,
    MALFORMED,
    TRUNCATED,
    WRONG_COUNT,
    OUT_OF_RANGE,
    EMPTY_CANDIDATES,
    BLOCKED,
    REFUSAL,
    GAPS,
)

# Image tokens charged per image: Gemini's published count for an image of
# at most 384 px on each side.
IMAGE_TOKENS = 258

ReferenceLookup = Callable[[str], Sequence[Segment]]

_DEMO = re.compile(r"^Demo: (\S+)$", re.MULTILINE)
_NUM_FRAMES = re.compile(r"The demo has (\d+) frames")
_FRAME = re.compile(r"^Frame (\d+)$")


@dataclass(frozen=True)
class ParsedPrompt:
    demo_key: str
    num_frames: int
    keyframes: tuple[int, ...]
    text_chars: int
    images: int


def parse_prompt(texts: Sequence[str], images: int) -> ParsedPrompt:
    """Read the demo key, demo length and sent keyframes from the request's text parts."""
    prompt = texts[0] if texts else ""
    demo = _DEMO.search(prompt)
    frames = _NUM_FRAMES.search(prompt)
    keyframes = tuple(int(m.group(1)) for t in texts if (m := _FRAME.match(t.strip())))
    return ParsedPrompt(
        demo_key=demo.group(1) if demo else "",
        num_frames=int(frames.group(1)) if frames else 0,
        keyframes=keyframes,
        text_chars=sum(len(t) for t in texts),
        images=images,
    )


def estimate_tokens(chars: int) -> int:
    """Text tokens as about four characters each."""
    return math.ceil(chars / 4)


@dataclass
class Answerer:
    """Builds the model's JSON answer for a request, and picks the fault to inject.

    ``reference`` maps a demo key to its reference segments; any source of
    reference segments (fixture demos, a predicate segmenter's output) can
    be plugged in. ``faults`` lists, per demo key, the faults of its
    successive requests; ``"*"`` applies to every demo. A demo without
    faults left is answered normally.
    """

    reference: ReferenceLookup
    sigma_frames: float = 0.0
    seed: int = 0
    faults: dict[str, list[str]] = field(default_factory=dict)

    def next_fault(self, demo_key: str) -> str:
        for key in (demo_key, "*"):
            queue = self.faults.get(key)
            if queue:
                return queue.pop(0)
        return OK

    def segments(self, prompt: ParsedPrompt) -> list[dict]:
        reference = list(self.reference(prompt.demo_key))
        sent = sorted(set(prompt.keyframes)) or list(range(prompt.num_frames))
        rng = np.random.default_rng(
            int(content_hash(prompt.demo_key, str(sent), str(self.seed)), 16) % 2**32
        )
        last = prompt.num_frames - 1
        ends = []
        for segment in reference[:-1]:
            guess = segment.end + round(rng.normal(0.0, self.sigma_frames))
            ends.append(_nearest(sent, guess))
        for i in range(1, len(ends)):
            if ends[i] <= ends[i - 1]:
                # Two boundaries on one keyframe: take the next keyframe sent, if any.
                later = [k for k in sent if k > ends[i - 1]]
                ends[i] = later[0] if later else ends[i - 1]
        ends.append(last)
        starts = [0] + [e + 1 for e in ends[:-1]]
        return [
            {"op": s.op, "args": list(s.args), "start": a, "end": b, "confidence": 0.9}
            for s, a, b in zip(reference, starts, ends)
        ]

    def answer_text(self, prompt: ParsedPrompt, fault: str) -> str:
        """Return the reply text for ``fault`` (one of the answer-level faults)."""
        segments = self.segments(prompt)
        if fault == MALFORMED:
            return "Sure! The robot first grasps the bowl, then places it."
        if fault == WRONG_COUNT:
            segments = segments[:-1]
        if fault == OUT_OF_RANGE:
            segments[-1]["end"] = prompt.num_frames + 40
        if fault == GAPS:
            for left, right in itertools.pairwise(segments):
                right["start"] = left["end"] + 3
        text = json.dumps({"segments": segments})
        if fault == TRUNCATED:
            return text[: len(text) // 2]
        return text


def reference_from(segmentations: Mapping[str, Sequence[Segment]]) -> ReferenceLookup:
    """Return a lookup over a mapping of demo key to reference segments."""

    def lookup(demo_key: str) -> Sequence[Segment]:
        if demo_key not in segmentations:
            raise KeyError(f"no reference segments for demo {demo_key!r}")
        return segmentations[demo_key]

    return lookup


def _nearest(frames: Sequence[int], frame: int) -> int:
    i = bisect.bisect_left(frames, frame)
    options = frames[max(i - 1, 0) : i + 1]
    return min(options, key=lambda k: (abs(k - frame), k))
