"""Validation rules for one segmentation, each reported by name.

Structural rules need only the segmentation and its plan: ``status``,
``segment_count``, ``plan_match``, ``coverage``, ``contiguity``,
``min_duration`` and ``confidence``. Physical rules need the demo and are
skipped without it. ``demo_match`` checks that the demo has the length and
actions of the one that was segmented. A step whose operator leaves the
gripper closed must end with the fingers closed (``grasp_closed``) but not
fully closed, because the object stops them (``grasp_holds_object``). A step
whose operator leaves the gripper open must end with the fingers open
(``release_open``). Finger opening is measured from ``obs/gripper_states``
in metres.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from aas.demo import GRIPPER_STATES, Demo
from aas.operators import OPERATORS
from aas.schema import Operator, Plan, Segmentation

STATUS = "status"
SEGMENT_COUNT = "segment_count"
PLAN_MATCH = "plan_match"
COVERAGE = "coverage"
CONTIGUITY = "contiguity"
MIN_DURATION = "min_duration"
CONFIDENCE = "confidence"
DEMO_MATCH = "demo_match"
GRASP_CLOSED = "grasp_closed"
GRASP_HOLDS_OBJECT = "grasp_holds_object"
RELEASE_OPEN = "release_open"

RULES = (
    STATUS,
    SEGMENT_COUNT,
    PLAN_MATCH,
    COVERAGE,
    CONTIGUITY,
    MIN_DURATION,
    CONFIDENCE,
    DEMO_MATCH,
    GRASP_CLOSED,
    GRASP_HOLDS_OBJECT,
    RELEASE_OPEN,
)


@dataclass
class ValidationConfig:
    """Thresholds of the validation rules."""

    # Shortest allowed segment, in frames (1/20 s each in LIBERO).
    min_frames: int = 5
    # Lowest allowed segment confidence, in [0, 1].
    min_confidence: float = 0.3
    # Run the physical rules when the demo is available.
    check_physics: bool = True
    # The fingers count as closed when their opening is at least this many
    # metres below the demo's open level (95th percentile of the opening).
    closed_margin_m: float = 0.01
    # The fingers count as open when their opening is within this many metres
    # of the demo's open level.
    open_tolerance_m: float = 0.01
    # A closed gripper with an opening below this (metres) has grasped nothing.
    # In LIBERO the Panda fingers close to about 0.0012 m on nothing and
    # stopped at about 0.004 m on a black bowl's rim in a generated demo.
    empty_grasp_m: float = 0.002


@dataclass(frozen=True)
class RuleResult:
    """Outcome of one rule, for one segment (``segment_index``) or the whole demo.

    ``skipped`` marks a rule that could not run for lack of evidence, and a
    skipped rule counts as passed.
    """

    name: str
    passed: bool
    message: str = ""
    segment_index: int | None = None
    skipped: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "passed": self.passed,
            "message": self.message,
            "segment_index": self.segment_index,
            "skipped": self.skipped,
        }


@dataclass
class ValidationReport:
    """All rule results of one segmentation."""

    demo_key: str
    results: list[RuleResult] = field(default_factory=list)
    num_segments: int = 0

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    @property
    def failures(self) -> list[RuleResult]:
        return [r for r in self.results if not r.passed]

    def rule(self, name: str) -> list[RuleResult]:
        """Return the results of rule ``name``."""
        return [r for r in self.results if r.name == name]

    def to_dict(self) -> dict[str, Any]:
        return {
            "demo_key": self.demo_key,
            "passed": self.passed,
            "num_segments": self.num_segments,
            "failed_rules": sorted({r.name for r in self.failures}),
            "results": [r.to_dict() for r in self.results],
        }


def validate(
    segmentation: Segmentation,
    plan: Plan | None = None,
    demo: Demo | None = None,
    config: ValidationConfig | None = None,
) -> ValidationReport:
    """Check ``segmentation`` against ``plan`` (default: its own) and ``demo``.

    Every rule of ``RULES`` appears in the report at least once: once with
    ``passed=True`` when it holds, or once per offending segment.
    """
    config = config or ValidationConfig()
    plan = plan if plan is not None else segmentation.plan
    report = ValidationReport(
        segmentation.demo_key, num_segments=len(segmentation.segments)
    )
    add = report.results.extend

    add(_check_status(segmentation))
    add(_check_count(segmentation, plan))
    add(_check_plan_match(segmentation, plan))
    add(_check_coverage(segmentation))
    add(_check_contiguity(segmentation))
    add(_check_min_duration(segmentation, config.min_frames))
    add(_check_confidence(segmentation, config.min_confidence))

    opening = None
    if demo is not None:
        add(_check_demo_match(segmentation, demo))
        if config.check_physics and demo.has(GRIPPER_STATES):
            fingers = np.asarray(demo.gripper_states, dtype=np.float64)
            opening = np.abs(fingers[:, 0] - fingers[:, -1])
    else:
        add([_skipped(DEMO_MATCH, "no demo given")])
    add(_check_gripper(segmentation, opening, config))
    return report


def _passed(name: str, message: str = "") -> list[RuleResult]:
    return [RuleResult(name, True, message)]


def _skipped(name: str, reason: str) -> RuleResult:
    return RuleResult(name, True, f"skipped: {reason}", skipped=True)


def _check_status(seg: Segmentation) -> list[RuleResult]:
    if seg.ok:
        return _passed(STATUS)
    return [RuleResult(STATUS, False, f"segmenter reported failure: {seg.error}")]


def _check_count(seg: Segmentation, plan: Plan | None) -> list[RuleResult]:
    if plan is None:
        return [_skipped(SEGMENT_COUNT, "no plan given")]
    if len(seg.segments) == len(plan):
        return _passed(SEGMENT_COUNT, f"{len(plan)} segments")
    return [
        RuleResult(
            SEGMENT_COUNT,
            False,
            f"{len(seg.segments)} segments for a plan of {len(plan)} steps",
        )
    ]


def _check_plan_match(seg: Segmentation, plan: Plan | None) -> list[RuleResult]:
    if plan is None:
        return [_skipped(PLAN_MATCH, "no plan given")]
    failures = []
    for index, (segment, step) in enumerate(zip(seg.segments, plan.steps)):
        if segment.op != step.op or tuple(segment.args) != tuple(step.args):
            failures.append(
                RuleResult(
                    PLAN_MATCH,
                    False,
                    f"segment is {segment.op}({', '.join(segment.args)}) but plan step "
                    f"{index} is {step}",
                    index,
                )
            )
    return failures or _passed(PLAN_MATCH)


def _check_coverage(seg: Segmentation) -> list[RuleResult]:
    last = seg.num_frames - 1
    if not seg.segments:
        return [RuleResult(COVERAGE, False, f"no segments cover frames [0, {last}]")]
    failures = []
    first, final = seg.segments[0], seg.segments[-1]
    if first.start != 0:
        failures.append(
            RuleResult(
                COVERAGE,
                False,
                f"first segment starts at frame {first.start}, not 0",
                0,
            )
        )
    if final.end != last:
        failures.append(
            RuleResult(
                COVERAGE,
                False,
                f"last segment ends at frame {final.end}, not {last}",
                len(seg.segments) - 1,
            )
        )
    for index, segment in enumerate(seg.segments):
        if segment.end > last:
            failures.append(
                RuleResult(
                    COVERAGE,
                    False,
                    f"segment ends at frame {segment.end} > {last}",
                    index,
                )
            )
    return failures or _passed(COVERAGE, f"frames [0, {last}]")


def _check_contiguity(seg: Segmentation) -> list[RuleResult]:
    failures = []
    for index in range(1, len(seg.segments)):
        previous, current = seg.segments[index - 1], seg.segments[index]
        if current.start == previous.end + 1:
            continue
        kind = "gap" if current.start > previous.end + 1 else "overlap"
        failures.append(
            RuleResult(
                CONTIGUITY,
                False,
                f"{kind}: segment starts at frame {current.start} but the previous "
                f"one ends at frame {previous.end}",
                index,
            )
        )
    return failures or _passed(CONTIGUITY)


def _check_min_duration(seg: Segmentation, min_frames: int) -> list[RuleResult]:
    failures = [
        RuleResult(
            MIN_DURATION,
            False,
            f"segment has {segment.num_frames} frames, fewer than {min_frames}",
            index,
        )
        for index, segment in enumerate(seg.segments)
        if segment.num_frames < min_frames
    ]
    return failures or _passed(MIN_DURATION, f">= {min_frames} frames")


def _check_confidence(seg: Segmentation, threshold: float) -> list[RuleResult]:
    failures = [
        RuleResult(
            CONFIDENCE,
            False,
            f"confidence {segment.confidence:.3f} is below {threshold}",
            index,
        )
        for index, segment in enumerate(seg.segments)
        if segment.confidence < threshold
    ]
    return failures or _passed(CONFIDENCE, f">= {threshold}")


def _check_demo_match(seg: Segmentation, demo: Demo) -> list[RuleResult]:
    if seg.num_frames != demo.num_frames:
        return [
            RuleResult(
                DEMO_MATCH,
                False,
                f"segmentation has {seg.num_frames} frames but demo {demo.key} has "
                f"{demo.num_frames}",
            )
        ]
    if seg.demo_hash and seg.demo_hash != demo.action_hash():
        return [
            RuleResult(
                DEMO_MATCH,
                False,
                f"action hash {seg.demo_hash} does not match demo {demo.key}; "
                "the segmentation belongs to another file",
            )
        ]
    return _passed(DEMO_MATCH)


def _check_gripper(
    seg: Segmentation, opening: np.ndarray | None, config: ValidationConfig
) -> list[RuleResult]:
    names = (GRASP_CLOSED, GRASP_HOLDS_OBJECT, RELEASE_OPEN)
    if opening is None:
        reason = (
            "physical checks disabled"
            if not config.check_physics
            else "no gripper states"
        )
        return [_skipped(name, reason) for name in names]

    open_level = float(np.percentile(opening, 95))
    failures: list[RuleResult] = []
    checked = set()
    for index, segment in enumerate(seg.segments):
        operator = OPERATORS.get(segment.op)
        if operator is None or segment.end >= len(opening):
            continue
        width = float(opening[segment.end])
        if operator.gripper_after == "closed":
            checked.update((GRASP_CLOSED, GRASP_HOLDS_OBJECT))
            if width > open_level - config.closed_margin_m:
                failures.append(
                    RuleResult(
                        GRASP_CLOSED,
                        False,
                        f"{segment.op} ends at frame {segment.end} with the fingers open "
                        f"({width:.4f} m, open level {open_level:.4f} m)",
                        index,
                    )
                )
            elif _adds_holding(operator) and width < config.empty_grasp_m:
                failures.append(
                    RuleResult(
                        GRASP_HOLDS_OBJECT,
                        False,
                        f"{segment.op} ends at frame {segment.end} with the fingers fully "
                        f"closed ({width:.4f} m): nothing was grasped",
                        index,
                    )
                )
        else:
            checked.add(RELEASE_OPEN)
            if width < open_level - config.open_tolerance_m:
                failures.append(
                    RuleResult(
                        RELEASE_OPEN,
                        False,
                        f"{segment.op} ends at frame {segment.end} with the fingers not "
                        f"open ({width:.4f} m, open level {open_level:.4f} m)",
                        index,
                    )
                )

    results = list(failures)
    failed = {r.name for r in failures}
    for name in names:
        if name in failed:
            continue
        if name in checked:
            results.append(RuleResult(name, True))
        else:
            results.append(_skipped(name, "no segment of this kind"))
    return results


def _adds_holding(operator: Operator) -> bool:
    """Return whether the operator ends with an object in the gripper (not a push)."""
    return any(atom[0] == "holding" for atom in operator.add_effects)
