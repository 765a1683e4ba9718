"""Episode records, success rates with confidence intervals, and eval_info.json.

Finished episodes are appended to ``episodes.jsonl`` one line each, flushed
and fsynced, so an interrupted evaluation loses at most the episode in
flight and a rerun skips every episode already on disk.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from aas.schema import write_atomic

logger = logging.getLogger(__name__)

EPISODES_FILE = "episodes.jsonl"
EVAL_INFO_FILE = "eval_info.json"
Z_95 = 1.959964


@dataclass(frozen=True)
class EpisodeResult:
    """One rollout. ``error`` is set when the episode crashed instead of ending.

    ``steps`` counts environment steps after the settle steps; ``step_results``
    lists, in planner-in-the-loop mode, each plan step with whether its effect
    was reached and at which environment step.
    """

    suite: str
    task_index: int
    task: str
    init_state_index: int
    seed: int
    success: bool
    steps: int
    wall_seconds: float
    error: str = ""
    attempts: int = 1
    step_results: tuple[dict[str, Any], ...] = ()
    video: str = ""

    @property
    def key(self) -> tuple[str, int, int, int]:
        return (self.suite, self.task_index, self.init_state_index, self.seed)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["step_results"] = list(self.step_results)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EpisodeResult:
        data = dict(data)
        data["step_results"] = tuple(data.get("step_results", ()))
        return cls(**data)


def wilson_interval(
    successes: int, trials: int, z: float = Z_95
) -> tuple[float, float]:
    """Return the Wilson score interval of a binomial proportion (95% by default)."""
    if trials == 0:
        return (0.0, 1.0)
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = (
        z
        * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials))
        / denominator
    )
    return (max(0.0, centre - half), min(1.0, centre + half))


@dataclass(frozen=True)
class RateSummary:
    """Success rate over ``trials`` finished episodes; errored episodes count as failures."""

    successes: int
    trials: int
    errors: int
    success_rate: float
    ci95_low: float
    ci95_high: float

    @classmethod
    def of(cls, episodes: list[EpisodeResult]) -> RateSummary:
        successes = sum(e.success for e in episodes)
        trials = len(episodes)
        low, high = wilson_interval(successes, trials)
        return cls(
            successes=successes,
            trials=trials,
            errors=sum(bool(e.error) for e in episodes),
            success_rate=successes / trials if trials else 0.0,
            ci95_low=low,
            ci95_high=high,
        )


class EpisodeLog:
    """Append-only ``episodes.jsonl`` of one evaluation run."""

    def __init__(self, output_dir: str | Path) -> None:
        self.path = Path(output_dir) / EPISODES_FILE
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def load(self) -> dict[tuple[str, int, int, int], EpisodeResult]:
        """Return the finished episodes by key; a torn last line is ignored."""
        done: dict[tuple[str, int, int, int], EpisodeResult] = {}
        if not self.path.exists():
            return done
        with self.path.open(encoding="utf-8") as f:
            for lineno, line in enumerate(f, start=1):
                try:
                    episode = EpisodeResult.from_dict(json.loads(line))
                except (json.JSONDecodeError, TypeError, KeyError) as exc:
                    logger.warning(
                        "%s:%d: skipped unreadable episode record (%s)",
                        self.path,
                        lineno,
                        exc,
                    )
                    continue
                done[episode.key] = episode
        return done

    def append(self, episode: EpisodeResult) -> None:
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(episode.to_dict(), sort_keys=True) + "\n")
            f.flush()
            os.fsync(f.fileno())


@dataclass
class EvalSummary:
    """Everything ``eval_info.json`` contains."""

    protocol: dict[str, Any]
    versions: dict[str, str]
    episodes: list[EpisodeResult]
    per_task: dict[str, dict[str, Any]] = field(default_factory=dict)
    per_suite: dict[str, dict[str, Any]] = field(default_factory=dict)
    per_step: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "protocol": self.protocol,
            "versions": self.versions,
            "per_suite": self.per_suite,
            "per_task": self.per_task,
            "per_step": self.per_step,
            "episodes": [e.to_dict() for e in self.episodes],
        }


def summarise(
    episodes: Iterable[EpisodeResult],
    protocol: dict[str, Any],
    versions: dict[str, str],
) -> EvalSummary:
    """Aggregate episodes per task, per suite and (planner mode) per plan step."""
    episodes = sorted(episodes, key=lambda e: e.key)
    summary = EvalSummary(protocol=protocol, versions=versions, episodes=episodes)
    by_task: dict[str, list[EpisodeResult]] = {}
    by_suite: dict[str, list[EpisodeResult]] = {}
    for episode in episodes:
        by_task.setdefault(
            f"{episode.suite}/{episode.task_index:02d}_{episode.task}", []
        ).append(episode)
        by_suite.setdefault(episode.suite, []).append(episode)
    summary.per_task = {k: asdict(RateSummary.of(v)) for k, v in by_task.items()}
    summary.per_suite = {k: asdict(RateSummary.of(v)) for k, v in by_suite.items()}

    steps: dict[str, list[bool]] = {}
    for episode in episodes:
        for i, result in enumerate(episode.step_results):
            name = f"{episode.suite}/{episode.task_index:02d} step {i}: {result.get('step', '')}"
            steps.setdefault(name, []).append(bool(result.get("reached")))
    for name, reached in steps.items():
        low, high = wilson_interval(sum(reached), len(reached))
        summary.per_step[name] = {
            "reached": sum(reached),
            "attempted": len(reached),
            "rate": sum(reached) / len(reached),
            "ci95_low": low,
            "ci95_high": high,
        }
    return summary


def write_eval_info(output_dir: str | Path, info: dict[str, Any]) -> Path:
    """Write the ``eval_info.json`` content (``EvalSummary.to_dict`` plus run counters)."""
    path = Path(output_dir) / EVAL_INFO_FILE
    write_atomic(path, json.dumps(info, indent=2, sort_keys=True) + "\n")
    return path


def format_table(summary: EvalSummary) -> str:
    """Return a plain-text table of per-task and per-suite success rates."""
    rows = [("task", "success", "trials", "errors", "95% CI")]
    for name, rate in list(summary.per_task.items()) + [
        (f"{suite} (all tasks)", rate) for suite, rate in summary.per_suite.items()
    ]:
        rows.append(
            (
                name,
                f"{100 * rate['success_rate']:.1f}%",
                str(rate["trials"]),
                str(rate["errors"]),
                f"[{100 * rate['ci95_low']:.1f}, {100 * rate['ci95_high']:.1f}]",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths)) for row in rows
    )


def plot_success(summary: EvalSummary, path: str | Path) -> Path:
    """Bar chart of per-task success with 95% confidence intervals, as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(summary.per_task)
    rates = [summary.per_task[n]["success_rate"] for n in names]
    low = [r - summary.per_task[n]["ci95_low"] for n, r in zip(names, rates)]
    high = [summary.per_task[n]["ci95_high"] - r for n, r in zip(names, rates)]
    fig, ax = plt.subplots(figsize=(max(6, 0.6 * len(names) + 2), 4))
    ax.bar(
        range(len(names)),
        [100 * r for r in rates],
        yerr=[[100 * v for v in low], [100 * v for v in high]],
        capsize=3,
    )
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(
        [n.split("/", 1)[-1][:40] for n in names], rotation=60, ha="right", fontsize=7
    )
    ax.set_ylabel("success rate (%)")
    ax.set_ylim(0, 105)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
