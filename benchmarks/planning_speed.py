"""Time BDDL parsing and planning over all 130 LIBERO tasks.

Compares A* with the step-count heuristic against uniform-cost search (the
same search with the heuristic off) on the same scenes in the same run.

    .venv/bin/python benchmarks/planning_speed.py
"""

from __future__ import annotations

import statistics
import time

from aas.bddl import libero_bddl_files, parse_bddl
from aas.planning import PlanningError, check_plan, search
from aas.planning.search import DEFAULT_MAX_EXPANSIONS

BASELINE_MAX_EXPANSIONS = 50_000


def _run(scenes, use_heuristic: bool, max_expansions: int):
    seconds, expanded, failures = [], [], 0
    for scene in scenes:
        started = time.perf_counter()
        try:
            result = search(
                scene, max_expansions=max_expansions, use_heuristic=use_heuristic
            )
        except PlanningError:
            failures += 1
            continue
        seconds.append(time.perf_counter() - started)
        expanded.append(result.expanded)
        assert check_plan(scene, list(result.steps)).ok, scene.source
    return seconds, expanded, failures


def main() -> None:
    files = libero_bddl_files()
    started = time.perf_counter()
    scenes = [parse_bddl(path) for path in files]
    parse_seconds = time.perf_counter() - started
    print(f"parsed {len(scenes)} BDDL files in {parse_seconds:.3f} s")

    for label, use_heuristic, budget in (
        ("A* (step-count heuristic)", True, DEFAULT_MAX_EXPANSIONS),
        ("uniform-cost baseline", False, BASELINE_MAX_EXPANSIONS),
    ):
        seconds, expanded, failures = _run(scenes, use_heuristic, budget)
        print(
            f"{label}: {len(seconds)} solved, {failures} over {budget} expansions; "
            f"total {sum(seconds):.3f} s, median {statistics.median(seconds) * 1e3:.1f} ms, "
            f"max {max(seconds) * 1e3:.1f} ms; expanded states median "
            f"{statistics.median(expanded):.0f}, max {max(expanded)}"
        )


if __name__ == "__main__":
    main()
