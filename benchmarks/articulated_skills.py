"""Measure the articulated-object skills alone on the LIBERO tasks they complete.

Each case runs one skill (open, close, turn_on or turn_off) from LIBERO's fixed
init states 0..N-1 with rendering off, and counts an episode as a success
when the task's BDDL goal holds at the end. Tasks whose goal needs more than
the one articulated step are measured through ``generator_success.py``.

    .venv/bin/python benchmarks/articulated_skills.py --num-init-states 10
"""

from __future__ import annotations

import argparse
import logging
import time

from aas.schema import Step
from aas.sims.env import make_env
from aas.sims.skills import SKILLS, SkillFailure
from aas.sims.tasks import get_task

logger = logging.getLogger("articulated_skills")

# (suite, task name, operator, BDDL target): the single-step articulated tasks.
CASES = (
    (
        "libero_goal",
        "open_the_middle_drawer_of_the_cabinet",
        "open",
        "wooden_cabinet_1_middle_region",
    ),
    ("libero_goal", "turn_on_the_stove", "turn_on", "flat_stove_1"),
    (
        "libero_90",
        "KITCHEN_SCENE1_open_the_bottom_drawer_of_the_cabinet",
        "open",
        "wooden_cabinet_1_bottom_region",
    ),
    (
        "libero_90",
        "KITCHEN_SCENE4_close_the_bottom_drawer_of_the_cabinet",
        "close",
        "white_cabinet_1_bottom_region",
    ),
    ("libero_90", "KITCHEN_SCENE6_close_the_microwave", "close", "microwave_1"),
    ("libero_90", "KITCHEN_SCENE7_open_the_microwave", "open", "microwave_1"),
    ("libero_90", "KITCHEN_SCENE8_turn_off_the_stove", "turn_off", "flat_stove_1"),
    (
        "libero_90",
        "KITCHEN_SCENE10_close_the_top_drawer_of_the_cabinet",
        "close",
        "wooden_cabinet_1_top_region",
    ),
)


def run_case(
    suite: str, task: str, op: str, target: str, init_states: range
) -> tuple[int, float]:
    """Return (successes, mean frames per episode) of one skill over ``init_states``."""
    wins, frames = 0, 0
    with make_env(get_task(suite, task), render=False) as env:
        for index in init_states:
            env.reset(index)
            skill = SKILLS[op](Step(op, (target,)))
            try:
                for action in skill.act(env):
                    env.step(action)
                    frames += 1
            except SkillFailure as exc:
                logger.warning("%s init %d: %s", task, index, exc)
            wins += int(env.check_success())
    return wins, frames / len(init_states)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--num-init-states", type=int, default=10, help="init states 0..N-1 per task"
    )
    parser.add_argument(
        "--tasks",
        nargs="*",
        default=None,
        help="task names to run (default: all cases)",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("aas").setLevel(logging.WARNING)

    print(
        "| suite | task | step | init states | success | rate | frames/episode | seconds |"
    )
    print("|---|---|---|---|---|---|---|---|")
    init_states = range(args.num_init_states)
    for suite, task, op, target in CASES:
        if args.tasks and task not in args.tasks:
            continue
        start = time.perf_counter()
        wins, frames = run_case(suite, task, op, target, init_states)
        seconds = time.perf_counter() - start
        rate = wins / len(init_states)
        print(
            f"| {suite} | {task} | {op}({target}) | {len(init_states)} | {wins} | {rate:.0%} "
            f"| {frames:.0f} | {seconds:.0f} |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
