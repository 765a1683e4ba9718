"""Parallel rollout workers that survive crashed and hung episodes.

Each worker is a separate process (``spawn``: MuJoCo and EGL contexts do not
survive ``fork``) that builds its policy once and its environment lazily for
the task of the episode it is given, keeping one environment at a time. The
parent hands out one episode per idle worker. When a worker dies (a MuJoCo
or renderer crash kills the process) or exceeds the episode timeout, the
parent kills it, starts a fresh one and retries the episode once. A second
failure is recorded as an errored episode, and the run continues. A Python
exception inside an episode is treated the same way, without the restart.

On CPU each worker runs its own policy inference.
NOTE: batching inference across workers in the parent process has not been
implemented or measured here; it matters on a GPU, not on 2 CPU cores.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any

from aas.policies.base import PolicyConfig
from aas.sims.eval_results import EpisodeResult

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EpisodeJob:
    """One episode to run: task, init state, seed, and an optional video path."""

    suite: str
    task_index: int
    task: str
    init_state_index: int
    seed: int
    video: str = ""

    @property
    def key(self) -> tuple[str, int, int, int]:
        return (self.suite, self.task_index, self.init_state_index, self.seed)


@dataclass(frozen=True)
class WorkerSetup:
    """Everything a worker process needs to build its policy and environments."""

    policy: PolicyConfig
    rollout: Any
    camera_names: tuple[str, ...]
    camera_size: int
    render: bool
    planner: Any = None
    torch_threads: int = 1
    env_seed: int = 7
    # Threads of Mesa's llvmpipe software renderer per worker (LP_NUM_THREADS);
    # 0 leaves Mesa's default, one thread per core, which oversubscribes the
    # cores once several workers render at the same time.
    render_threads: int = 0


def _error_result(job: EpisodeJob, error: str, attempts: int) -> EpisodeResult:
    return EpisodeResult(
        suite=job.suite,
        task_index=job.task_index,
        task=job.task,
        init_state_index=job.init_state_index,
        seed=job.seed,
        success=False,
        steps=0,
        wall_seconds=0.0,
        error=error,
        attempts=attempts,
    )


def _worker_main(conn: Connection, setup: WorkerSetup) -> None:
    # Runs in the child process: build once, then serve episodes until the parent sends None.
    # Mesa reads LP_NUM_THREADS when the first rendering context is created.
    if setup.render_threads > 0 and "LP_NUM_THREADS" not in os.environ:
        os.environ["LP_NUM_THREADS"] = str(setup.render_threads)
    from aas.sims.worker_loop import serve

    serve(conn, setup)


@dataclass
class _Worker:
    process: mp.Process
    conn: Connection
    job: EpisodeJob | None = None
    attempts: int = 0
    started: float = 0.0


@dataclass
class PoolStats:
    """Counters of one pool run."""

    restarts: int = 0
    retries: int = 0
    errors: int = 0
    episodes: int = 0
    seconds: float = 0.0
    env_steps: int = 0
    per_worker: dict[int, int] = field(default_factory=dict)


class RolloutPool:
    """Runs episode jobs on ``num_workers`` processes.

    Args:
        setup: worker configuration (policy, rollout settings, cameras).
        num_workers: processes to run at once.
        episode_timeout_s: seconds after which a running episode counts as hung.
    """

    def __init__(
        self, setup: WorkerSetup, num_workers: int, episode_timeout_s: float = 900.0
    ) -> None:
        if num_workers < 1:
            raise ValueError(f"num_workers must be at least 1, got {num_workers}")
        self.setup = setup
        self.num_workers = num_workers
        self.episode_timeout_s = episode_timeout_s
        self._ctx = mp.get_context("spawn")
        self.stats = PoolStats()

    def _start_worker(self) -> _Worker:
        parent, child = self._ctx.Pipe()
        process = self._ctx.Process(
            target=_worker_main, args=(child, self.setup), daemon=True
        )
        process.start()
        child.close()
        return _Worker(process=process, conn=parent)

    def _stop(self, worker: _Worker, kill: bool = False) -> None:
        if kill:
            worker.process.kill()
        else:
            try:
                worker.conn.send(None)
            except (BrokenPipeError, OSError):
                pass
        worker.process.join(timeout=10)
        if worker.process.is_alive():
            worker.process.kill()
            worker.process.join(timeout=5)
        worker.conn.close()

    def run(
        self, jobs: Iterable[EpisodeJob], on_result: Callable[[EpisodeResult], None]
    ) -> PoolStats:
        """Run every job, calling ``on_result`` in the parent as each episode ends."""
        queue: deque[tuple[EpisodeJob, int]] = deque((job, 0) for job in jobs)
        workers = [
            self._start_worker() for _ in range(min(self.num_workers, len(queue)))
        ]
        started = time.perf_counter()
        try:
            while queue or any(w.job is not None for w in workers):
                for worker in workers:
                    if worker.job is None and queue:
                        job, attempts = queue.popleft()
                        worker.job, worker.attempts, worker.started = (
                            job,
                            attempts,
                            time.monotonic(),
                        )
                        worker.conn.send(job)
                busy = [w for w in workers if w.job is not None]
                ready = wait([w.conn for w in busy], timeout=1.0)
                for index, worker in enumerate(workers):
                    if worker.job is None:
                        continue
                    if worker.conn in ready:
                        try:
                            message = worker.conn.recv()
                        except (EOFError, OSError):
                            message = None
                        if message is not None:
                            self._finish(worker, message, queue, on_result)
                            continue
                        reason = (
                            f"worker process died (exit code {worker.process.exitcode})"
                        )
                    elif not worker.process.is_alive():
                        reason = (
                            f"worker process died (exit code {worker.process.exitcode})"
                        )
                    elif time.monotonic() - worker.started > self.episode_timeout_s:
                        reason = (
                            f"episode timed out after {self.episode_timeout_s:.0f} s"
                        )
                    else:
                        continue
                    workers[index] = self._replace(worker, reason, queue, on_result)
        finally:
            for worker in workers:
                self._stop(worker, kill=worker.job is not None)
        self.stats.seconds = time.perf_counter() - started
        return self.stats

    def _finish(
        self, worker: _Worker, message: tuple, queue: deque, on_result: Callable
    ) -> None:
        job, attempts = worker.job, worker.attempts
        worker.job = None
        status, payload = message
        if status == "ok":
            result = EpisodeResult.from_dict({**payload, "attempts": attempts + 1})
            self._record(result, worker, on_result)
            return
        logger.warning(
            "episode %s raised: %s", job.key, payload.strip().splitlines()[-1]
        )
        self._retry_or_fail(
            job, attempts, payload.strip().splitlines()[-1], queue, on_result
        )

    def _replace(
        self, worker: _Worker, reason: str, queue: deque, on_result: Callable
    ) -> _Worker:
        job, attempts = worker.job, worker.attempts
        logger.warning("episode %s: %s; restarting the worker", job.key, reason)
        worker.job = None
        self._stop(worker, kill=True)
        self.stats.restarts += 1
        self._retry_or_fail(job, attempts, reason, queue, on_result)
        return self._start_worker()

    def _retry_or_fail(
        self,
        job: EpisodeJob,
        attempts: int,
        reason: str,
        queue: deque,
        on_result: Callable,
    ) -> None:
        if attempts == 0:
            self.stats.retries += 1
            queue.appendleft((job, 1))
            return
        self.stats.errors += 1
        self._record(_error_result(job, reason, attempts + 1), None, on_result)

    def _record(
        self, result: EpisodeResult, worker: _Worker | None, on_result: Callable
    ) -> None:
        self.stats.episodes += 1
        self.stats.env_steps += result.steps
        if worker is not None:
            pid = worker.process.pid or 0
            self.stats.per_worker[pid] = self.stats.per_worker.get(pid, 0) + 1
        on_result(result)


def default_workers() -> int:
    """Return the number of CPU cores, the default worker count."""
    return max(1, os.cpu_count() or 1)
