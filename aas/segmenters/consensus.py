"""Consensus segmenter: a VLM proposal checked against kinematic evidence.

A boundary ends a plan step. When the step changes the gripper state (a
grasp closes it, a place opens it), the boundary should lie near a gripper
event of that kind. Let ``d`` be the distance in frames from the boundary
to the nearest matching event, 0 inside the event's change-to-settle span.
The step segment's confidence is scaled by the agreement
``0.5 ** ((d / tolerance_frames) ** 2)``: 1 at the event, one half at
``tolerance_frames``, and 0 when no event of that kind exists. Steps that
leave the gripper as it was carry no kinematic evidence and keep their
confidence. Optionally, boundaries within ``snap_frames`` of their event
move onto the event's settle frame.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import draccus

from aas.demo import Demo, MissingDatasetError
from aas.operators import OPERATORS
from aas.schema import Operator, Plan, Segment, Segmentation
from aas.segmenters.base import Segmenter, SegmenterConfig
from aas.segmenters.gemini import GeminiConfig
from aas.segmenters.kinematic_events import (
    CLOSE,
    OPEN,
    EventConfig,
    KinematicEvents,
    detect_events,
)
from aas.segmenters.openai_compat import OpenAIConfig

logger = logging.getLogger(__name__)

NAME = "consensus"


class ProposalConfig(draccus.ChoiceRegistry):
    """Registry of the segmenters whose proposal consensus checks (the VLM backends).

    A registry of its own, because a field typed ``SegmenterConfig`` inside a
    registered ``SegmenterConfig`` makes draccus recurse without end.
    """


ProposalConfig.register_subclass("gemini", GeminiConfig)
ProposalConfig.register_subclass("openai", OpenAIConfig)


@SegmenterConfig.register_subclass(NAME)
@dataclass
class ConsensusConfig(SegmenterConfig):
    """A VLM segmenter's settings plus how its boundaries are checked."""

    # The segmenter whose proposal is checked, such as --segmenter.vlm.type=openai.
    vlm: ProposalConfig = field(default_factory=GeminiConfig)
    # Distance in frames from the matching gripper event that halves a confidence.
    tolerance_frames: float = 10.0
    # Move a boundary onto its event's settle frame when within this many frames; 0 never moves it.
    snap_frames: int = 0
    # Thresholds of the kinematic event detection.
    events: EventConfig = field(default_factory=EventConfig)

    def __post_init__(self) -> None:
        if self.tolerance_frames <= 0:
            raise ValueError(
                f"tolerance_frames must be > 0, got {self.tolerance_frames}"
            )
        if self.snap_frames < 0:
            raise ValueError(f"snap_frames must be >= 0, got {self.snap_frames}")

    def build(self) -> ConsensusSegmenter:
        return ConsensusSegmenter(self, self.vlm.build())


@dataclass(frozen=True)
class BoundaryCheck:
    """Kinematic evidence for the boundary that ends plan step ``index``.

    ``expected`` is the gripper event the step should end near (``close``,
    ``open``, or ``""`` when the step leaves the gripper unchanged).
    ``event_frame`` is the settle frame of the nearest such event and
    ``distance_frames`` the distance to it, both None without one.
    """

    index: int
    op: str
    frame: int
    expected: str
    event_frame: int | None
    distance_frames: int | None
    agreement: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "boundary": self.index,
            "op": self.op,
            "frame": self.frame,
            "expected_event": self.expected,
            "event_frame": self.event_frame,
            "distance_frames": self.distance_frames,
            "agreement": round(self.agreement, 6),
        }


def check_boundaries(
    segments: Sequence[Segment],
    events: KinematicEvents,
    tolerance_frames: float,
    operators: Mapping[str, Operator] = OPERATORS,
) -> list[BoundaryCheck]:
    """Compare every boundary of ``segments`` with the gripper events it should match."""
    checks = []
    gripper = events.initial_state
    for index, segment in enumerate(segments[:-1]):
        operator = operators.get(segment.op)
        after = operator.gripper_after if operator is not None else gripper
        expected = ""
        if after != gripper:
            expected = CLOSE if after == "closed" else OPEN
        gripper = after
        if not expected:
            checks.append(
                BoundaryCheck(index, segment.op, segment.end, "", None, None, 1.0)
            )
            continue
        spans = [
            (e.frame, e.settled) for e in events.gripper_events if e.kind == expected
        ]
        if not spans:
            checks.append(
                BoundaryCheck(index, segment.op, segment.end, expected, None, None, 0.0)
            )
            continue
        distance, settled = min(
            (max(start - segment.end, 0, segment.end - stop), stop)
            for start, stop in spans
        )
        agreement = 0.5 ** ((distance / tolerance_frames) ** 2)
        checks.append(
            BoundaryCheck(
                index, segment.op, segment.end, expected, settled, distance, agreement
            )
        )
    return checks


def _snap(
    segments: list[Segment], checks: Sequence[BoundaryCheck], snap_frames: int
) -> list[str]:
    """Move boundaries within ``snap_frames`` of their event onto it, keeping order."""
    moves = []
    for check in checks:
        if check.event_frame is None or check.distance_frames is None:
            continue
        if check.distance_frames == 0 or check.distance_frames > snap_frames:
            continue
        left, right = segments[check.index], segments[check.index + 1]
        if not left.start <= check.event_frame < right.end:
            continue
        segments[check.index] = replace(left, end=check.event_frame)
        segments[check.index + 1] = replace(right, start=check.event_frame + 1)
        moves.append(
            f"boundary {check.index} moved from {check.frame} to {check.event_frame}"
        )
    return moves


class ConsensusSegmenter(Segmenter):
    """Checks the segments of another segmenter against kinematic gripper events."""

    name = NAME
    version = "1"

    def __init__(self, config: ConsensusConfig, proposer: Segmenter) -> None:
        self.config = config
        self.proposer = proposer

    def segment(
        self, demo: Demo, plan: Plan, keyframes: Sequence[int] | None = None
    ) -> Segmentation:
        return self.combine(demo, self.proposer.segment(demo, plan, keyframes))

    def segment_many(
        self,
        items: Iterable[tuple[Demo, Plan]],
        keyframes: Sequence[Sequence[int] | None] | None = None,
        **kwargs: Any,
    ) -> list[Segmentation]:
        """Segment many demos, concurrently when the proposer supports it."""
        items = list(items)
        if hasattr(self.proposer, "segment_many"):
            proposals = self.proposer.segment_many(items, keyframes, **kwargs)
        else:
            frames = keyframes or [None] * len(items)
            proposals = [
                self.proposer.segment(d, p, k) for (d, p), k in zip(items, frames)
            ]
        return [
            self.combine(demo, proposal)
            for (demo, _), proposal in zip(items, proposals)
        ]

    def combine(self, demo: Demo, proposal: Segmentation) -> Segmentation:
        """Scale the proposal's confidences by kinematic agreement; report it per boundary."""
        extra = dict(proposal.provenance.extra)
        extra["proposer"] = proposal.provenance.segmenter
        provenance = replace(
            proposal.provenance, segmenter=self.name, version=self.version
        )
        if not proposal.ok:
            return replace(proposal, provenance=replace(provenance, extra=extra))
        try:
            events = detect_events(demo, config=self.config.events)
        except (MissingDatasetError, ValueError) as exc:
            extra["kinematic_error"] = str(exc)
            logger.warning("%s: no kinematic check (%s)", demo.key, exc)
            return replace(proposal, provenance=replace(provenance, extra=extra))

        checks = check_boundaries(
            proposal.segments, events, self.config.tolerance_frames
        )
        segments = list(proposal.segments)
        for check in checks:
            segment = segments[check.index]
            segments[check.index] = replace(
                segment,
                confidence=segment.confidence * check.agreement,
                source=self.name,
            )
        segments[-1] = replace(segments[-1], source=self.name)
        if self.config.snap_frames:
            extra["snapped"] = _snap(segments, checks, self.config.snap_frames)
        extra["disagreement"] = [c.to_dict() for c in checks]
        return replace(
            proposal,
            segments=tuple(segments),
            provenance=replace(provenance, extra=extra),
        )
