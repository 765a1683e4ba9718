"""Predicate segmenter: step boundaries where the simulator says each effect holds.

The demo's recorded MuJoCo states are replayed in the LIBERO environment of
its task, and the BDDL atoms of the plan are evaluated at every frame (see
``aas.sims.predicates``). A step ends at the first frame from which its
effect holds and stays true: until the end of the demo, or, for an effect
that a later step undoes (``holding`` undone by a place, ``on`` by the next
grasp of the same object), until that later step's own effect holds. A grasp
therefore ends when the object is held, a place when the object rests on its
target, an open when the joint is past LIBERO's open threshold.

This is the one segmenter that needs the simulator: ``aas.sims`` is imported
only when a demo is segmented, so importing this module (and registering
``--segmenter.type=predicate``) stays free of LIBERO. Its output is the
reference the other segmenters are scored against, and the per-frame
timeline is stored in ``Provenance.extra["timeline"]``
(``aas.timeline.timeline_from_segmentation`` reads it back).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from aas.demo import Demo, MissingDatasetError
from aas.planning import observable_effects, step_effects
from aas.planning.domain import matches
from aas.schema import Atom, Cost, Plan, Provenance, Segment, Segmentation, Step
from aas.segmenters.base import Segmenter, SegmenterConfig
from aas.timeline import (
    HOLDING,
    TIMELINE_KEY,
    PredicateTimeline,
    count_flickers,
    true_runs,
)

logger = logging.getLogger(__name__)

NAME = "predicate"
VERSION = "1"


@SegmenterConfig.register_subclass(NAME)
@dataclass
class PredicateConfig(SegmenterConfig):
    """Predicate segmenter settings (frames are control steps, 1/20 s in LIBERO)."""

    # False frames inside a run of true frames that still count as one hold
    # (contacts flicker for a frame or two while an object settles).
    max_gap_frames: int = 2
    # Confidence factor lost per flicker (a true-false-true change) after the onset.
    flicker_penalty: float = 0.1

    def __post_init__(self) -> None:
        if self.max_gap_frames < 0:
            raise ValueError(
                f"segmenter.max_gap_frames must be >= 0 frames, got {self.max_gap_frames}"
            )
        if not 0.0 <= self.flicker_penalty <= 1.0:
            raise ValueError(
                f"segmenter.flicker_penalty must be in [0, 1], got {self.flicker_penalty}"
            )

    def build(self) -> PredicateSegmenter:
        return PredicateSegmenter(self)


@dataclass(frozen=True)
class StepEvidence:
    """Where one step's effect begins to hold and how stably it holds.

    ``onset`` is None when the effect never holds in time. The horizon is
    the demo's last frame, or the frame before the onset of the step that
    undoes the effect. ``hold_fraction`` is the share of frames from the
    onset to the horizon where the effect is true, and ``flickers`` counts
    the times it turns false and then true again there.
    """

    atoms: tuple[Atom, ...]
    onset: int | None
    horizon: int | None
    hold_fraction: float
    flickers: int

    def confidence(self, flicker_penalty: float = 0.1) -> float:
        """Return ``hold_fraction * (1 - flicker_penalty) ** flickers``, 0 without an onset."""
        if self.onset is None:
            return 0.0
        return self.hold_fraction * (1.0 - flicker_penalty) ** self.flickers

    def to_dict(self) -> dict[str, Any]:
        return {
            "atoms": [list(a) for a in self.atoms],
            "onset": self.onset,
            "horizon": self.horizon,
            "hold_fraction": round(self.hold_fraction, 6),
            "flickers": self.flickers,
        }


class PredicateAlignmentError(ValueError):
    """The effects' onsets leave no room for the steps between them."""


def step_atoms(step: Step) -> tuple[Atom, ...]:
    """Return the atoms that show a step's effect: BDDL add effects and ``holding``."""
    added, _ = step_effects(step)
    holding = tuple(a for a in added if a[0] == HOLDING)
    return tuple(dict.fromkeys(observable_effects(step) + holding))


def _undoing_step(plan: Plan, index: int, atoms: tuple[Atom, ...]) -> int | None:
    """Return the first later step whose delete effects remove one of ``atoms``."""
    for later in range(index + 1, len(plan.steps)):
        _, deleted = step_effects(plan.steps[later])
        if any(matches(pattern, atom) for pattern in deleted for atom in atoms):
            return later
    return None


def step_evidence(
    timeline: PredicateTimeline, plan: Plan, max_gap: int = 2
) -> list[StepEvidence]:
    """Find each step's effect onset, from the last step back to the first.

    A step's onset is the first frame of the last run of its effect (runs
    joined across at most ``max_gap`` false frames) that starts before the
    next step's onset, so a failed grasp that was retried, or a drawer that
    bounced, gives way to the final, lasting hold.
    """
    count = len(plan.steps)
    last = timeline.num_frames - 1
    evidence: list[StepEvidence | None] = [None] * count
    bound = last
    for index in reversed(range(count)):
        if index < count - 1:
            # The last segment ends at the last frame, so earlier ones end before it.
            bound = min(bound, last - 1)
        atoms = step_atoms(plan.steps[index])
        if not atoms:
            evidence[index] = StepEvidence(atoms, None, None, 0.0, 0)
            continue
        series = timeline.all_of(atoms)
        runs = [run for run in true_runs(series, max_gap) if run[0] <= bound]
        if not runs:
            evidence[index] = StepEvidence(atoms, None, None, 0.0, 0)
            continue
        onset = runs[-1][0]
        undoing = _undoing_step(plan, index, atoms)
        horizon = last
        if undoing is not None and evidence[undoing].onset is not None:
            horizon = max(evidence[undoing].onset - 1, onset)
        window = series[onset : horizon + 1]
        evidence[index] = StepEvidence(
            atoms, onset, horizon, float(np.mean(window)), count_flickers(window)
        )
        bound = onset - 1
    return evidence


def step_ends(evidence: Sequence[StepEvidence], num_frames: int) -> list[int]:
    """Turn onsets into segment end frames; the last step ends at the last frame.

    Steps without an onset share the frames between their neighbours evenly.

    Raises:
        PredicateAlignmentError: there are fewer free frames than such steps.
    """
    count = len(evidence)
    ends: list[int | None] = [e.onset for e in evidence]
    ends[-1] = num_frames - 1
    index = 0
    while index < count:
        if ends[index] is not None:
            index += 1
            continue
        run_end = index
        while ends[run_end] is None:
            run_end += 1
        low = ends[index - 1] if index > 0 else -1
        high = ends[run_end]
        missing = run_end - index
        if high - low <= missing:
            raise PredicateAlignmentError(
                f"steps {index}..{run_end - 1} have no effect onset and only "
                f"{high - low - 1} frames between frames {low} and {high}"
            )
        spaced = np.linspace(low, high, missing + 2)[1:-1]
        for offset, frame in enumerate(spaced):
            ends[index + offset] = int(np.rint(frame))
        index = run_end + 1
    return [int(e) for e in ends]


def segments_from_timeline(
    timeline: PredicateTimeline,
    plan: Plan,
    max_gap: int = 2,
    flicker_penalty: float = 0.1,
    source: str = NAME,
) -> tuple[tuple[Segment, ...], list[StepEvidence]]:
    """Split the demo of ``timeline`` into one segment per plan step.

    Returns:
        The segments and the evidence behind each boundary.

    Raises:
        PredicateAlignmentError: the plan has no steps, more steps than the
            demo has frames, or onsets that leave no room for a step.
    """
    num_frames = timeline.num_frames
    if not plan.steps:
        raise PredicateAlignmentError("the plan has no steps")
    if num_frames < len(plan.steps):
        raise PredicateAlignmentError(
            f"the demo has {num_frames} frames, fewer than the {len(plan.steps)} plan steps"
        )
    evidence = step_evidence(timeline, plan, max_gap)
    ends = step_ends(evidence, num_frames)
    segments = []
    start = 0
    for step, end, proof in zip(plan.steps, ends, evidence):
        segments.append(
            Segment(
                op=step.op,
                args=tuple(step.args),
                start=start,
                end=end,
                confidence=float(proof.confidence(flicker_penalty)),
                source=source,
                instruction=step.instruction,
            )
        )
        start = end + 1
    return tuple(segments), evidence


class PredicateSegmenter(Segmenter):
    """Plan-aligned segmentation from BDDL predicates evaluated on replayed states.

    One render-free LIBERO environment is kept between demos of the same
    task; ``close()`` frees it. ``env`` (an ``aas.sims.env.LiberoEnv``) is
    used for demos of its task instead of building one, and is left open.
    """

    name = NAME
    version = VERSION

    def __init__(self, config: PredicateConfig | None = None, env: Any = None) -> None:
        self.config = config or PredicateConfig()
        self._env = env
        self._envs: Any = None

    def timeline(self, demo: Demo, plan: Plan) -> PredicateTimeline:
        """Replay ``demo`` and evaluate the plan's atoms at every frame."""
        from aas.sims.predicates import EnvCache, predicate_timeline

        if self._envs is None:
            self._envs = EnvCache(self._env)
        return predicate_timeline(demo, plan, cache=self._envs)

    def segment(
        self, demo: Demo, plan: Plan, keyframes: Sequence[int] | None = None
    ) -> Segmentation:
        """Split ``demo`` into one segment per plan step; ``keyframes`` is ignored.

        A demo without ``states``, of an unknown task, or whose effects
        cannot be ordered returns ``status="failed"`` with the reason.
        """
        started = time.perf_counter()
        extra: dict[str, Any] = {}
        try:
            timeline = self.timeline(demo, plan)
            extra[TIMELINE_KEY] = timeline.to_dict()
            segments, evidence = segments_from_timeline(
                timeline,
                plan,
                self.config.max_gap_frames,
                self.config.flicker_penalty,
                self.name,
            )
            extra["steps"] = [e.to_dict() for e in evidence]
            error = ""
        except (MissingDatasetError, KeyError, OSError, ValueError) as exc:
            segments, error = (), str(exc)
            logger.warning("%s: predicate segmentation failed: %s", demo.key, error)

        return Segmentation(
            demo_key=demo.key,
            num_frames=demo.num_frames,
            segments=segments,
            provenance=Provenance(
                segmenter=self.name,
                version=self.version,
                cost=Cost(seconds=time.perf_counter() - started),
                extra=extra,
            ),
            instruction=demo.instruction,
            plan=plan,
            source_file=demo.source,
            demo_hash=_action_hash(demo),
            fps=demo.fps,
            status="failed" if error else "ok",
            error=error,
        )

    def close(self) -> None:
        """Free the cached simulator environment."""
        if self._envs is not None:
            self._envs.close()
            self._envs = None


def _action_hash(demo: Demo) -> str:
    try:
        return demo.action_hash()
    except (MissingDatasetError, OSError):
        return ""
