"""Measure the scripted generator's success rate per LIBERO task.

For each task the symbolic planner plans from the BDDL file, and the scripted
controller runs the plan from LIBERO's fixed init states 0..N-1 with
rendering off. An episode succeeds when the task's BDDL goal holds at the
end, which is the condition under which ``aas generate`` keeps a demo.
Results are appended to a JSON Lines file after every episode, so an
interrupted run resumes; the Markdown table is printed at the end.

    .venv/bin/python benchmarks/generator_success.py --suites libero_goal libero_object \
        --num-init-states 10 --output outputs/generator_success.jsonl
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections import defaultdict
from pathlib import Path

from aas.sims.controller import UnsupportedStepError, check_supported, run_plan
from aas.sims.env import make_env
from aas.sims.generate import DEFAULT_MAX_FRAMES, plan_for_task
from aas.sims.tasks import get_task, list_tasks

logger = logging.getLogger("generator_success")


def _load(path: Path) -> dict[tuple[str, int, int], dict]:
    done = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                done[(row["suite"], row["task_index"], row["init_state"])] = row
    return done


def _append(path: Path, row: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(row, sort_keys=True) + "\n")


def measure_task(
    suite: str,
    task_index: int,
    init_states: list[int],
    output: Path,
    done: dict,
    max_frames: int,
) -> None:
    """Run the missing episodes of one task and append one row per episode to ``output``."""
    spec = get_task(suite, task_index)
    todo = [i for i in init_states if (suite, task_index, i) not in done]
    if not todo:
        return
    plan = plan_for_task(spec)
    try:
        check_supported(plan)
    except UnsupportedStepError as exc:
        for i in todo:
            row = _row(spec, plan, i, supported=False, error=str(exc))
            _append(output, row)
            done[(suite, task_index, i)] = row
        logger.info("%s task %d unsupported: %s", suite, task_index, exc)
        return

    with make_env(spec, render=False) as env:
        for i in todo:
            started = time.monotonic()
            try:
                env.reset(i)
                result = run_plan(env, plan, max_frames=max_frames)
                failed = result.failed_step
                row = _row(
                    spec,
                    plan,
                    i,
                    success=result.goal_reached,
                    frames=result.num_frames,
                    failed_step=str(failed.step) if failed else "",
                    error=result.error
                    or ("" if result.goal_reached else "goal not reached"),
                )
            except Exception as exc:  # noqa: BLE001  record and continue with the next episode
                row = _row(spec, plan, i, error=f"{type(exc).__name__}: {exc}")
            row["seconds"] = round(time.monotonic() - started, 2)
            _append(output, row)
            done[(suite, task_index, i)] = row
            logger.info(
                "%s %d init %d: success=%s %s",
                suite,
                task_index,
                i,
                row["success"],
                row["error"][:120],
            )


def _row(
    spec,
    plan,
    init_state: int,
    supported: bool = True,
    success: bool = False,
    frames: int = 0,
    failed_step: str = "",
    error: str = "",
) -> dict:
    return {
        "suite": spec.suite,
        "task_index": spec.index,
        "task": spec.name,
        "plan": [str(s) for s in plan.steps],
        "init_state": init_state,
        "supported": supported,
        "success": success,
        "frames": frames,
        "failed_step": failed_step,
        "error": error,
    }


def markdown_table(rows: list[dict]) -> str:
    """Render per-task success as a Markdown table."""
    by_task: dict[tuple[str, int], list[dict]] = defaultdict(list)
    for row in rows:
        by_task[(row["suite"], row["task_index"])].append(row)
    lines = [
        "| suite | task | plan | init states | success | rate | main failure |",
        "|---|---|---|---|---|---|---|",
    ]
    for (suite, index), task_rows in sorted(by_task.items()):
        first = task_rows[0]
        if not first["supported"]:
            lines.append(
                f"| {suite} | {index} {first['task']} | {' '.join(first['plan'])} | - | - | unsupported | {first['error'][:80]} |"
            )
            continue
        wins = sum(r["success"] for r in task_rows)
        failures = [
            r["failed_step"] or r["error"][:60] for r in task_rows if not r["success"]
        ]
        common = max(set(failures), key=failures.count) if failures else ""
        rate = wins / len(task_rows)
        lines.append(
            f"| {suite} | {index} {first['task']} | {' '.join(first['plan'])} | {len(task_rows)} | {wins} | {rate:.0%} | {common} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--suites", nargs="+", default=["libero_goal", "libero_object", "libero_10"]
    )
    parser.add_argument(
        "--tasks", nargs="*", type=int, default=None, help="task indices (default: all)"
    )
    parser.add_argument(
        "--num-init-states", type=int, default=10, help="init states 0..N-1 per task"
    )
    parser.add_argument(
        "--max-frames",
        type=int,
        default=DEFAULT_MAX_FRAMES,
        help="episode budget in frames",
    )
    parser.add_argument(
        "--output", type=Path, default=Path("outputs/generator_success.jsonl")
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("aas").setLevel(logging.WARNING)

    done = _load(args.output)
    init_states = list(range(args.num_init_states))
    for suite in args.suites:
        indices = (
            args.tasks
            if args.tasks is not None
            else [t.index for t in list_tasks(suite)]
        )
        for index in indices:
            measure_task(suite, index, init_states, args.output, done, args.max_frames)

    rows = [
        r
        for r in done.values()
        if r["suite"] in args.suites and r["init_state"] in init_states
    ]
    if args.tasks is not None:
        rows = [r for r in rows if r["task_index"] in args.tasks]
    print(markdown_table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
