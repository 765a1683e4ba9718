"""Kinematic segmenter: plan-aligned segments from gripper events and motion.

Each plan step changes the gripper from the state the previous step left to
its operator's ``gripper_after`` state. A step from open to closed (grasp)
needs one close event and ends when the fingers have closed on the object. A
step from closed to open (place, put_in) needs one open event and ends when
the fingers have opened. A step from open to open (open, close, turn_on ...)
is a close, motion, release cycle and ends when the fingers have opened
again. Where the demo shows no cycle for such a step, it ends at a speed
minimum. Steps that keep the gripper closed end at the highest speed minimum
between their neighbours. Extra close/open pairs (a missed grasp that was retried) are
absorbed into the step they occur in. A dynamic program picks the matching
of steps to events with the highest total event strength, so one pass over
the events decides every boundary. No model and no simulator is involved.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from aas.demo import Demo, MissingDatasetError
from aas.operators import OPERATORS
from aas.schema import Cost, Operator, Plan, Provenance, Segment, Segmentation
from aas.segmenters.base import Segmenter, SegmenterConfig
from aas.segmenters.kinematic_events import (
    CLOSE,
    EventConfig,
    GripperEvent,
    KinematicEvents,
    detect_events,
)

logger = logging.getLogger(__name__)

NAME = "kinematic"
VERSION = "1"
_TOKEN = {CLOSE: "C", "open": "O"}
# Gripper patterns a step may match, by (state before, state after); "" means
# the step shows no gripper event of its own.
_PATTERNS = {
    ("open", "closed"): ("C",),
    ("closed", "open"): ("O",),
    ("open", "open"): ("CO", ""),
    ("closed", "closed"): ("", "OC"),
}

__all__ = [
    "EventConfig",
    "GripperEvent",
    "KinematicConfig",
    "KinematicEvents",
    "KinematicSegmenter",
    "detect_events",
]


@SegmenterConfig.register_subclass(NAME)
@dataclass
class KinematicConfig(SegmenterConfig, EventConfig):
    """Kinematic segmenter settings (frames are control steps, 1/20 s in LIBERO)."""

    # Score subtracted for each close/open pair left unmatched to a plan step.
    skip_penalty: float = 0.5
    # Confidence factor of a boundary placed at a speed minimum, not a gripper event.
    minimum_confidence_scale: float = 0.8
    # Confidence of a boundary placed at an interval midpoint for lack of evidence.
    fallback_confidence: float = 0.2

    def build(self) -> KinematicSegmenter:
        return KinematicSegmenter(self)


class KinematicSegmenter(Segmenter):
    """Plan-aligned segmentation from gripper events, end-effector speed and height."""

    name = NAME
    version = VERSION

    def __init__(self, config: KinematicConfig | None = None) -> None:
        self.config = config or KinematicConfig()

    def segment(
        self, demo: Demo, plan: Plan, keyframes: Sequence[int] | None = None
    ) -> Segmentation:
        """Split ``demo`` into one segment per plan step.

        With ``keyframes`` only those frames' rows are read and the signals
        are interpolated between them. A demo that cannot be aligned returns
        a segmentation with ``status="failed"`` and the reason in ``error``.
        """
        started = time.perf_counter()
        events: KinematicEvents | None = None
        try:
            events = detect_events(demo, keyframes, self.config)
            segments = self._align(events, plan)
            error = ""
        except (AlignmentError, MissingDatasetError, OSError, ValueError) as exc:
            segments, error = (), str(exc)
            logger.warning("%s: kinematic segmentation failed: %s", demo.key, error)

        extra = {}
        if events is not None:
            extra = {
                "gripper_events": [e.to_dict() for e in events.gripper_events],
                "initial_gripper": events.initial_state,
            }
        provenance = Provenance(
            segmenter=self.name,
            version=self.version,
            keyframes=events.keyframes if events is not None else (),
            cost=Cost(seconds=time.perf_counter() - started),
            extra=extra,
        )
        return Segmentation(
            demo_key=demo.key,
            num_frames=demo.num_frames,
            segments=segments,
            provenance=provenance,
            instruction=demo.instruction,
            plan=plan,
            source_file=demo.source,
            demo_hash=_action_hash(demo),
            fps=demo.fps,
            status="failed" if error else "ok",
            error=error,
        )

    def _align(self, events: KinematicEvents, plan: Plan) -> tuple[Segment, ...]:
        num_frames = events.num_frames
        steps = plan.steps
        if not steps:
            raise AlignmentError("the plan has no steps")
        if num_frames < len(steps):
            raise AlignmentError(
                f"the demo has {num_frames} frames, fewer than the {len(steps)} plan steps"
            )
        patterns = _step_patterns(plan)
        matched = _match_events(
            patterns, events.gripper_events, self.config.skip_penalty
        )
        if matched is None:
            raise AlignmentError(_shortfall(patterns, events))

        ends: list[int | None] = []
        first_frames: list[int | None] = []
        confidences: list[float] = []
        for used in matched:
            if used:
                ends.append(used[-1].settled)
                first_frames.append(used[0].frame)
                confidences.append(min(e.strength for e in used))
            else:
                ends.append(None)
                first_frames.append(None)
                confidences.append(0.0)
        ends[-1] = num_frames - 1
        confidences[-1] = 1.0
        self._fill_free_ends(ends, first_frames, confidences, patterns, events)
        _check_order(ends, num_frames)

        segments = []
        start = 0
        for index, step in enumerate(steps):
            before = confidences[index - 1] if index > 0 else 1.0
            segments.append(
                Segment(
                    op=step.op,
                    args=tuple(step.args),
                    start=start,
                    end=int(ends[index]),
                    confidence=float(min(before, confidences[index])),
                    source=self.name,
                    instruction=step.instruction,
                )
            )
            start = int(ends[index]) + 1
        return tuple(segments)

    def _fill_free_ends(
        self,
        ends: list[int | None],
        first_frames: list[int | None],
        confidences: list[float],
        patterns: list[tuple[str, str, tuple[str, ...]]],
        events: KinematicEvents,
    ) -> None:
        """Place the ends of steps without gripper events at speed minima, in place.

        A run of such steps ends before the first gripper event of the next
        step that has one, or before that step's end.
        """
        index = 0
        while index < len(ends):
            if ends[index] is not None:
                index += 1
                continue
            run_end = index
            while ends[run_end] is None:
                run_end += 1
            low = ends[index - 1] if index > 0 else -1
            high = first_frames[run_end]
            if high is None:
                high = ends[run_end]
            count = run_end - index
            edges = np.linspace(low, high, count + 1)
            for offset in range(count):
                step = index + offset
                window = (
                    int(np.ceil(edges[offset])) + 1,
                    int(np.floor(edges[offset + 1])) - 1,
                )
                holding = (
                    patterns[step][0] == "closed" and patterns[step][1] == "closed"
                )
                frame, confidence = self._pick_minimum(window, holding, events)
                ends[step] = frame
                confidences[step] = confidence
            index = run_end + 1

    def _pick_minimum(
        self, window: tuple[int, int], holding: bool, events: KinematicEvents
    ) -> tuple[int, float]:
        """Choose a boundary frame in ``window`` (inclusive) and its confidence.

        While the gripper holds an object the highest minimum wins (the
        object has been lifted); otherwise the slowest one.
        """
        low, high = window
        if high < low:
            return max(low - 1, 0), self.config.fallback_confidence
        minima = events.speed_minima
        candidates = minima[(minima >= low) & (minima <= high)]
        if candidates.size == 0:
            return (low + high) // 2, self.config.fallback_confidence
        if holding and events.has_position:
            frame = int(candidates[np.argmax(events.height[candidates])])
        else:
            frame = int(candidates[np.argmin(events.speed[candidates])])
        local = events.speed[low : high + 1]
        reference = float(np.max(local)) if local.size else 0.0
        depth = 1.0 - events.speed[frame] / reference if reference > 0 else 0.0
        return frame, float(
            np.clip(depth, 0.0, 1.0)
        ) * self.config.minimum_confidence_scale


class AlignmentError(ValueError):
    """The demo's gripper events cannot be matched to the plan's steps."""


def _step_patterns(plan: Plan) -> list[tuple[str, str, tuple[str, ...]]]:
    """Return ``(state before, state after, allowed patterns)`` per step, from open."""
    state = "open"
    patterns = []
    for step in plan.steps:
        # NOTE: a step that closes the gripper without grasping (push) also
        # ends when the fingers have closed, so its motion falls into the
        # next segment; no fixture or LIBERO demo with a push was checked.
        operator = OPERATORS.get(step.op)
        if operator is None:
            raise AlignmentError(
                f"unknown operator {step.op!r} in plan step {step}; "
                f"known operators: {', '.join(sorted(OPERATORS))}"
            )
        after = operator.gripper_after
        allowed = _PATTERNS[(state, after)]
        if (state, after) == ("open", "closed") and not _adds_holding(operator):
            # A push may be done with the fingers open, leaving no close event.
            allowed = (*allowed, "")
        patterns.append((state, after, allowed))
        state = after
    return patterns


def _adds_holding(operator: Operator) -> bool:
    return any(atom[0] == "holding" for atom in operator.add_effects)


def _match_events(
    patterns: list[tuple[str, str, tuple[str, ...]]],
    events: Sequence[GripperEvent],
    skip_penalty: float,
) -> list[list[GripperEvent]] | None:
    """Assign gripper events to plan steps in order, maximising total strength.

    Each step consumes the events of one of its allowed patterns; any pair of
    consecutive events may be skipped (a retried grasp) for ``skip_penalty``,
    and so may one event before the first step or after the last. Returns the
    events each step consumed, or ``None`` when no assignment exists.
    """
    tokens = "".join(_TOKEN[e.kind] for e in events)
    num_steps, num_events = len(patterns), len(events)
    best = np.full((num_steps + 1, num_events + 1), -np.inf)
    back: dict[tuple[int, int], tuple[int, int, str | None]] = {}
    best[0, 0] = 0.0

    def relax(
        src: tuple[int, int], dst: tuple[int, int], gain: float, used: str | None
    ):
        score = best[src] + gain
        if score > best[dst]:
            best[dst] = score
            back[dst] = (src[0], src[1], used)

    for k in range(num_steps + 1):
        for j in range(num_events + 1):
            if best[k, j] == -np.inf:
                continue
            if j + 2 <= num_events:
                relax((k, j), (k, j + 2), -skip_penalty, None)
            if j < num_events and (k == 0 and j == 0 or k == num_steps):
                relax((k, j), (k, j + 1), -skip_penalty, None)
            if k == num_steps:
                continue
            for pattern in patterns[k][2]:
                stop = j + len(pattern)
                if stop <= num_events and tokens[j:stop] == pattern:
                    gain = sum(1.0 + e.strength for e in events[j:stop])
                    relax((k, j), (k + 1, stop), gain, pattern)

    if best[num_steps, num_events] == -np.inf:
        return None
    assigned: list[list[GripperEvent]] = [[] for _ in patterns]
    cell = (num_steps, num_events)
    while cell != (0, 0):
        k, j, used = back[cell]
        if used is not None:
            assigned[k] = list(events[j : cell[1]])
        cell = (k, j)
    return assigned


def _shortfall(
    patterns: list[tuple[str, str, tuple[str, ...]]], events: KinematicEvents
) -> str:
    needed_close = sum(min(p.count("C") for p in allowed) for _, _, allowed in patterns)
    needed_open = sum(min(p.count("O") for p in allowed) for _, _, allowed in patterns)
    return (
        f"the plan needs at least {needed_close} gripper close and {needed_open} open "
        f"events in order, but the demo shows {len(events.close_frames)} close and "
        f"{len(events.open_frames)} open events (initial gripper {events.initial_state})"
    )


def _check_order(ends: list[int | None], num_frames: int) -> None:
    previous = -1
    for index, end in enumerate(ends):
        if end is None or end <= previous or end > num_frames - 1:
            raise AlignmentError(
                f"segment boundaries collide: step {index} would end at frame {end} "
                f"after the previous step ended at frame {previous} "
                f"(demo has {num_frames} frames)"
            )
        previous = end


def _action_hash(demo: Demo) -> str:
    try:
        return demo.action_hash()
    except (MissingDatasetError, OSError):
        return ""
