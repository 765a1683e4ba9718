"""The child side of a rollout worker: build the policy once, serve episodes."""

from __future__ import annotations

import dataclasses
import logging
import traceback
from multiprocessing.connection import Connection
from typing import Any

logger = logging.getLogger(__name__)


def _limit_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def serve(conn: Connection, setup: Any) -> None:
    """Receive ``EpisodeJob`` objects until ``None``; reply ``("ok", dict)`` or ``("error", text)``."""
    from aas.bddl import parse_bddl
    from aas.sims.env import make_env
    from aas.sims.rollout import run_episode
    from aas.sims.tasks import get_task
    from aas.sims.video import VideoRecorder

    _limit_threads(setup.torch_threads)
    policy = setup.policy.build()
    planner = setup.planner.build() if setup.planner is not None else None
    env = None
    env_key = None
    scene = None
    while True:
        job = conn.recv()
        if job is None:
            break
        try:
            key = (job.suite, job.task_index)
            if env_key != key:
                if env is not None:
                    env.close()
                spec = get_task(job.suite, job.task_index)
                render = setup.render or bool(job.video)
                env = make_env(
                    spec,
                    render=render,
                    camera_names=setup.camera_names,
                    camera_size=setup.camera_size,
                    seed=setup.env_seed,
                )
                env_key = key
                scene = parse_bddl(spec.bddl_path) if planner is not None else None
            recorder = VideoRecorder(job.video) if job.video else None
            result = run_episode(
                env,
                policy,
                job.init_state_index,
                job.seed,
                setup.rollout,
                planner=planner,
                scene=scene,
                on_frame=recorder,
            )
            if recorder is not None:
                written = recorder.write()
                result = dataclasses.replace(result, video=str(written or ""))
            conn.send(("ok", result.to_dict()))
        except Exception:  # noqa: BLE001  one failed episode must not end the worker
            # The parent decides between a retry and an errored episode.
            conn.send(("error", traceback.format_exc()))
            if env is not None:
                env.close()
            env, env_key = None, None
    if env is not None:
        env.close()
