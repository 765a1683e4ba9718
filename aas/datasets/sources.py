"""Pair segmentations with the demos they were computed from.

Every export reads demos and segmentations side by side. A segmentation is
matched to its demo by ``demo_key``. The demo's action digest
(``Demo.action_hash``) and length must equal the segmentation's
``demo_hash`` and ``num_frames``, so that a segmentation applied to another
file is caught before anything is written. Segmentations that failed, or whose
validation failed, are left out unless the caller asks for them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from aas.demo import Demo
from aas.schema import Segmentation, read_segmentations
from aas.validation import validate

logger = logging.getLogger(__name__)

DemoSource = Callable[[], Iterable[Demo]]


class SegmentationMismatchError(ValueError):
    """A segmentation does not belong to the demo that has its ``demo_key``."""


@dataclass
class SegmentedDemo:
    """One demo with its segmentation, ready to export.

    ``valid`` is the validation verdict, or ``None`` when none was available.
    """

    demo: Demo
    segmentation: Segmentation
    suite: str
    task: str
    valid: bool | None


@dataclass
class PairingStats:
    """Counts of what the pairing kept and left out, with demo keys."""

    exported: list[str] = field(default_factory=list)
    invalid_excluded: list[str] = field(default_factory=list)
    invalid_included: list[str] = field(default_factory=list)
    failed_segmentations: list[str] = field(default_factory=list)
    unsegmented_demos: list[str] = field(default_factory=list)
    missing_demos: list[str] = field(default_factory=list)
    unvalidated: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, int | list[str]]:
        result: dict[str, int | list[str]] = {}
        for name, keys in vars(self).items():
            result[f"num_{name}"] = len(keys)
            if name != "exported":
                result[name] = list(keys)
        return result

    @property
    def validation_pass_rate(self) -> float | None:
        """Fraction of validated segmentations that passed, or ``None``."""
        passed = len(self.exported) - len(self.invalid_included) - len(self.unvalidated)
        checked = passed + len(self.invalid_included) + len(self.invalid_excluded)
        return passed / checked if checked else None


def task_name(demo: Demo) -> str:
    """Return the task name of a demo: its file stem without LIBERO's ``_demo``."""
    stem = demo.key.rsplit("/", 1)[0]
    return stem.removesuffix("_demo")


def suite_name(demo: Demo, default: str) -> str:
    """Return the suite of a demo: its folder if named ``libero_*``, else ``default``."""
    if demo.source:
        folder = Path(demo.source).parent.name
        if folder.startswith("libero_"):
            return folder
    return default


def load_segmentations(paths: Iterable[str | Path]) -> dict[str, Segmentation]:
    """Read segmentation files into a mapping from ``demo_key``.

    Raises:
        ValueError: the same demo key appears twice; the message names the files.
    """
    result: dict[str, Segmentation] = {}
    origin: dict[str, Path] = {}
    for path in paths:
        path = Path(path)
        skipped: list[str] = []
        segmentations = read_segmentations(path, skipped=skipped)
        for message in skipped:
            logger.warning("skipped record: %s", message)
        for segmentation in segmentations:
            key = segmentation.demo_key
            if key in result:
                raise ValueError(
                    f"demo {key} has segmentations in both {origin[key]} and {path}; "
                    "pass only one segmentation file per demo"
                )
            result[key] = segmentation
            origin[key] = path
    return result


def load_validation(path: str | Path) -> dict[str, bool]:
    """Read per-demo validation verdicts from a ``validation.json`` file.

    Accepts a list of reports (or an object whose ``reports``, ``results`` or
    ``demos`` field is one), each with ``demo_key`` and ``passed``, or an
    object mapping each demo key to a report or to a boolean.

    Raises:
        ValueError: the file has none of these shapes; the message names it.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: invalid JSON ({exc}); rerun `aas validate`") from exc
    if isinstance(data, dict):
        for name in ("reports", "results", "demos"):
            if isinstance(data.get(name), (list, dict)):
                data = data[name]
                break
    verdicts: dict[str, bool] = {}
    items = data.items() if isinstance(data, dict) else ((None, item) for item in data)
    for key, report in items:
        if isinstance(report, bool):
            verdicts[str(key)] = report
        elif isinstance(report, dict) and "passed" in report:
            verdicts[str(report.get("demo_key", key))] = bool(report["passed"])
        else:
            raise ValueError(
                f"{path}: expected per-demo reports with 'demo_key' and 'passed', "
                f"got {report!r:.80}; rerun `aas validate`"
            )
    return verdicts


def find_mismatches(
    demos: Iterable[Demo], segmentations: dict[str, Segmentation]
) -> list[str]:
    """List every segmentation whose demo has a different action digest or length.

    Reads only the actions of each demo. Each entry names the demo, its file
    and what differs.
    """
    problems = []
    for demo in demos:
        segmentation = segmentations.get(demo.key)
        if segmentation is None:
            continue
        if segmentation.num_frames != demo.num_frames:
            problems.append(
                f"{demo.key} ({demo.source}): segmentation has {segmentation.num_frames} "
                f"frames, demo has {demo.num_frames}"
            )
        elif segmentation.demo_hash and segmentation.demo_hash != demo.action_hash():
            problems.append(
                f"{demo.key} ({demo.source}): segmentation demo_hash "
                f"{segmentation.demo_hash} does not match the demo's actions "
                f"({demo.action_hash()})"
            )
    return problems


def check_matches(
    demo_source: DemoSource, segmentations: dict[str, Segmentation]
) -> None:
    """Raise ``SegmentationMismatchError`` listing every mismatched demo."""
    problems = find_mismatches(demo_source(), segmentations)
    if problems:
        raise SegmentationMismatchError(
            f"{len(problems)} segmentation(s) do not match their demo file; "
            "re-segment these demos or pass the demo files they were made from:\n  "
            + "\n  ".join(problems)
        )


def _validate_now(demo: Demo, segmentation: Segmentation) -> bool | None:
    """Run the validation rules when no verdict file was given and a plan exists."""
    if segmentation.plan is None:
        return None
    return validate(segmentation, segmentation.plan, demo=demo).passed


def pair_demos(
    demos: Iterable[Demo],
    segmentations: dict[str, Segmentation],
    verdicts: dict[str, bool] | None = None,
    include_invalid: bool = False,
    default_suite: str = "libero",
    stats: PairingStats | None = None,
) -> Iterator[SegmentedDemo]:
    """Yield each demo that has an exportable segmentation, in demo order.

    ``verdicts`` maps demo keys to validation results; without it the
    validation rules run on each segmentation that carries its plan. Call
    ``check_matches`` first: this function trusts keys, digests and lengths.
    Demos are yielded one at a time, so memory does not grow with their number.
    """
    stats = stats if stats is not None else PairingStats()
    seen = set()
    for demo in demos:
        segmentation = segmentations.get(demo.key)
        if segmentation is None:
            stats.unsegmented_demos.append(demo.key)
            continue
        seen.add(demo.key)
        if not segmentation.ok or not segmentation.segments:
            stats.failed_segmentations.append(demo.key)
            logger.warning(
                "skipping demo %s: segmentation failed (%s)",
                demo.key,
                segmentation.error,
            )
            continue
        valid = (
            verdicts.get(demo.key)
            if verdicts is not None
            else _validate_now(demo, segmentation)
        )
        if valid is None:
            stats.unvalidated.append(demo.key)
        elif not valid and not include_invalid:
            stats.invalid_excluded.append(demo.key)
            logger.warning(
                "skipping demo %s: its segmentation failed validation", demo.key
            )
            continue
        elif not valid:
            stats.invalid_included.append(demo.key)
        stats.exported.append(demo.key)
        yield SegmentedDemo(
            demo, segmentation, suite_name(demo, default_suite), task_name(demo), valid
        )
    stats.missing_demos.extend(sorted(set(segmentations) - seen))
    if stats.missing_demos:
        logger.warning(
            "%d segmentation(s) have no demo among the inputs, first: %s",
            len(stats.missing_demos),
            stats.missing_demos[0],
        )
