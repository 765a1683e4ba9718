"""Per-frame truth values of BDDL atoms over one demo: the predicate timeline.

The predicate segmenter evaluates atoms such as ``("on", "akita_black_bowl_1",
"plate_1")`` or ``("holding", "akita_black_bowl_1")`` at every frame of a demo
by replaying its simulator states. The result is stored with the
segmentation, in ``Provenance.extra["timeline"]``, as run-length encoded
changes (``to_dict``), so ``segments.jsonl`` stays small and any other
segmenter, metric or report can read it back with ``timeline_from_segmentation``
without the simulator.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from aas.schema import Atom, Segmentation

# Key of the encoded timeline inside ``Provenance.extra``.
TIMELINE_KEY = "timeline"
# Atom the simulator evaluates as "both fingers touch the object and it touches
# nothing but the robot"; the planner's name for the same fact.
HOLDING = "holding"


@dataclass(frozen=True)
class PredicateTimeline:
    """Truth values of ``atoms`` at every frame of one demo.

    Attributes:
        atoms: the evaluated ground atoms, lower-case, predicate first.
        values: bool array ``[num_frames, len(atoms)]``; ``values[t, k]``
            is whether ``atoms[k]`` holds in the state recorded at frame ``t``.
    """

    atoms: tuple[Atom, ...]
    values: np.ndarray

    def __post_init__(self) -> None:
        values = np.asarray(self.values, dtype=bool)
        if values.ndim != 2 or values.shape[1] != len(self.atoms):
            raise ValueError(
                f"timeline values must have shape [num_frames, {len(self.atoms)}], "
                f"got {values.shape}"
            )
        object.__setattr__(self, "atoms", tuple(tuple(a) for a in self.atoms))
        object.__setattr__(self, "values", values)

    @property
    def num_frames(self) -> int:
        return int(self.values.shape[0])

    def __contains__(self, atom: Sequence[str]) -> bool:
        return tuple(atom) in self.atoms

    def series(self, atom: Sequence[str]) -> np.ndarray:
        """Return the truth value of ``atom`` per frame, bool ``[num_frames]``.

        Raises:
            KeyError: ``atom`` was not evaluated; the message lists those that were.
        """
        key = tuple(atom)
        if key not in self.atoms:
            raise KeyError(
                f"atom {key} is not in the timeline; it has {list(self.atoms)}"
            )
        return self.values[:, self.atoms.index(key)]

    def all_of(self, atoms: Iterable[Sequence[str]]) -> np.ndarray:
        """Return per frame whether every atom holds, bool ``[num_frames]``."""
        result = np.ones(self.num_frames, dtype=bool)
        for atom in atoms:
            result &= self.series(atom)
        return result

    def to_dict(self) -> dict[str, Any]:
        """Encode as JSON: per atom its value at frame 0 and the frames where it flips."""
        changes = []
        initial = []
        for k in range(len(self.atoms)):
            column = self.values[:, k]
            initial.append(bool(column[0]) if self.num_frames else False)
            changes.append(
                [int(f) for f in np.flatnonzero(column[1:] != column[:-1]) + 1]
            )
        return {
            "num_frames": self.num_frames,
            "atoms": [list(a) for a in self.atoms],
            "initial": initial,
            "changes": changes,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PredicateTimeline:
        """Decode ``to_dict`` output.

        Raises:
            ValueError: a field is missing or a change frame is out of range.
        """
        try:
            num_frames = int(data["num_frames"])
            atoms = tuple(tuple(str(x) for x in a) for a in data["atoms"])
            initial = [bool(v) for v in data["initial"]]
            changes = [[int(f) for f in c] for c in data["changes"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"invalid predicate timeline record: {exc}") from exc
        if not len(atoms) == len(initial) == len(changes):
            raise ValueError(
                "invalid predicate timeline record: atoms, initial and changes "
                f"have lengths {len(atoms)}, {len(initial)}, {len(changes)}"
            )
        values = np.zeros((num_frames, len(atoms)), dtype=bool)
        for k, (start, flips) in enumerate(zip(initial, changes)):
            if any(not 0 < f < num_frames for f in flips):
                raise ValueError(
                    f"invalid predicate timeline record: change frames of {atoms[k]} "
                    f"must be in [1, {num_frames - 1}], got {flips}"
                )
            state = start
            edges = [0, *flips, num_frames]
            for low, high in itertools.pairwise(edges):
                values[low:high, k] = state
                state = not state
        return cls(atoms, values)

    def save_npz(self, path: str | Path) -> Path:
        """Write the timeline as ``.npz`` with ``atoms`` (strings) and ``values``."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        names = np.array([" ".join(a) for a in self.atoms], dtype=str)
        np.savez_compressed(path, atoms=names, values=self.values)
        return path

    @classmethod
    def load_npz(cls, path: str | Path) -> PredicateTimeline:
        with np.load(path, allow_pickle=False) as data:
            atoms = tuple(tuple(str(name).split(" ")) for name in data["atoms"])
            return cls(atoms, data["values"])


def timeline_from_segmentation(segmentation: Segmentation) -> PredicateTimeline | None:
    """Return the predicate timeline stored with ``segmentation``, or None if it has none."""
    data = segmentation.provenance.extra.get(TIMELINE_KEY)
    if data is None:
        return None
    try:
        return PredicateTimeline.from_dict(data)
    except ValueError as exc:
        raise ValueError(f"{segmentation.demo_key}: {exc}") from exc


def true_runs(series: np.ndarray, max_gap: int = 0) -> list[tuple[int, int]]:
    """Return the inclusive ``(first, last)`` frames of each run of true values.

    Runs separated by at most ``max_gap`` false frames are merged, so a
    one-frame contact flicker does not split a hold.
    """
    frames = np.flatnonzero(np.asarray(series, dtype=bool))
    if frames.size == 0:
        return []
    runs = []
    first = last = int(frames[0])
    for frame in frames[1:]:
        frame = int(frame)
        if frame - last - 1 > max_gap:
            runs.append((first, last))
            first = frame
        last = frame
    runs.append((first, last))
    return runs


def count_flickers(series: np.ndarray) -> int:
    """Return how often ``series`` turns false and later true again (interior gaps)."""
    return max(len(true_runs(series)) - 1, 0)
