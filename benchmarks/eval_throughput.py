"""Environment steps per second of evaluation: 1 vs 2 workers, and vs LeRobot's wrapper.

Usage:
    .venv/bin/python benchmarks/eval_throughput.py [--episodes 4] [--steps 100]

All numbers come from one run of this script on one machine:

1. Single environment, same task, cameras and resolution: ``aas`` LiberoEnv
   against LeRobot 0.6.1's ``LiberoEnv`` (``lerobot.envs.factory.make_env``,
   one synchronous vector env), stepping a zero action for ``--steps`` steps
   after one reset. The ratio aas / LeRobot is the comparison.
2. The rollout pool with 1 and 2 worker processes running the same episodes
   (no-op policy, rendering on): total environment steps over wall time,
   including worker start-up. Parallel efficiency = rate(2) / (2 * rate(1)).
   The 2-worker pool runs twice: with Mesa's default renderer threads (one
   per core in every worker) and with cores / workers threads per worker,
   which is what ``aas eval`` sets.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

SUITE = "libero_goal"
TASK = 8
CAMERA_SIZE = 128


def aas_env_rate(steps: int) -> float:
    from aas.sims.env import make_env
    from aas.sims.tasks import get_task

    env = make_env(get_task(SUITE, TASK), render=True, camera_size=CAMERA_SIZE)
    try:
        env.reset(init_state=0, settle_steps=0)
        action = np.array([0, 0, 0, 0, 0, 0, -1.0])
        started = time.perf_counter()
        for _ in range(steps):
            env.step(action)
        return steps / (time.perf_counter() - started)
    finally:
        env.close()


def lerobot_env_rate(steps: int) -> float:
    from aas.sims.runtime import setup_libero

    setup_libero()
    from lerobot.envs.configs import LiberoEnv
    from lerobot.envs.factory import make_env

    config = LiberoEnv(
        task=SUITE,
        task_ids=[TASK],
        observation_height=CAMERA_SIZE,
        observation_width=CAMERA_SIZE,
    )
    envs = make_env(config, n_envs=1)
    vec = envs[SUITE][TASK]
    try:
        vec.reset(seed=7)
        action = np.array([[0, 0, 0, 0, 0, 0, -1.0]])
        started = time.perf_counter()
        for _ in range(steps):
            vec.step(action)
        return steps / (time.perf_counter() - started)
    finally:
        vec.close()


def pool_rate(workers: int, episodes: int, steps: int, render_threads: int) -> dict:
    from aas.policies.base import NoopConfig
    from aas.sims.rollout import RolloutConfig
    from aas.sims.workers import EpisodeJob, RolloutPool, WorkerSetup

    setup = WorkerSetup(
        policy=NoopConfig(),
        rollout=RolloutConfig(max_steps=steps),
        camera_names=("agentview", "robot0_eye_in_hand"),
        camera_size=CAMERA_SIZE,
        render=True,
        render_threads=render_threads,
    )
    jobs = [EpisodeJob(SUITE, TASK, "put_the_bowl_on_the_plate", i, 7) for i in range(episodes)]
    results = []
    stats = RolloutPool(setup, workers).run(jobs, results.append)
    return {
        "workers": workers,
        "render_threads": render_threads,
        "episodes": len(results),
        "env_steps": stats.env_steps,
        "wall_seconds": round(stats.seconds, 2),
        "env_steps_per_second": round(stats.env_steps / stats.seconds, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=4, help="episodes per pool run")
    parser.add_argument("--steps", type=int, default=100, help="steps per episode / env timing")
    args = parser.parse_args()

    aas_rate = aas_env_rate(args.steps)
    lerobot_rate = lerobot_env_rate(args.steps)
    cores = os.cpu_count() or 1
    one = pool_rate(1, args.episodes, args.steps, render_threads=0)
    two_default = pool_rate(2, args.episodes, args.steps, render_threads=0)
    two = pool_rate(2, args.episodes, args.steps, render_threads=max(1, cores // 2))
    result = {
        "task": f"{SUITE} {TASK}",
        "cameras": "agentview + wrist",
        "camera_size": CAMERA_SIZE,
        "cpu_count": os.cpu_count(),
        "single_env_steps_per_second": {
            "aas": round(aas_rate, 3),
            "lerobot": round(lerobot_rate, 3),
            "ratio_aas_over_lerobot": round(aas_rate / lerobot_rate, 3),
        },
        "pool": [one, two_default, two],
        "parallel_efficiency_2_workers_mesa_default_threads": round(
            two_default["env_steps_per_second"] / (2 * one["env_steps_per_second"]), 3
        ),
        "parallel_efficiency_2_workers": round(
            two["env_steps_per_second"] / (2 * one["env_steps_per_second"]), 3
        ),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
