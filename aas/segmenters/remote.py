"""The shared runner of segmenters that call a remote vision-language model.

A backend (Gemini, an OpenAI-compatible server) only turns one
``SegmentRequest`` into one ``Reply``. Everything else lives here and is
the same for every backend:

- keyframe choice and encoding, prompt and answer schema;
- bounded concurrency: at most ``concurrency`` demos in progress at once;
- retries with exponential backoff and jitter on 429, 5xx and timeouts,
  honouring Retry-After;
- a request and token budget per segmenter instance that stops the run
  cleanly: demos not yet sent are reported as failed with reason
  ``budget_exhausted`` and no request is sent for them;
- a reply cache keyed by the request hash, so a rerun sends nothing;
- a cost ledger (requests, tokens, seconds) per demo and per run;
- a checkpoint file, so an interrupted run resumes without redoing or
  losing a finished demo.

API keys are only held by the backend's client. Every error message is
redacted before it is logged or stored.
"""

from __future__ import annotations

import abc
import asyncio
import json
import logging
import random
import threading
import time
import weakref
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aas.demo import Demo, MissingDatasetError
from aas.schema import Cost, Operator, Plan, Provenance, Segmentation, content_hash
from aas.segmenters.base import Segmenter, SegmenterConfig
from aas.segmenters.cache import ReplyCache
from aas.segmenters.checkpoint import Checkpoint
from aas.segmenters.keyframes import (
    Keyframe,
    KeyframeConfig,
    encode_keyframes,
    select_keyframes,
)
from aas.segmenters.ledger import BudgetExhausted, CostLedger
from aas.segmenters.prompt import (
    PROMPT_HASH,
    PROMPT_VERSION,
    answer_schema,
    build_prompt,
)
from aas.segmenters.response import Reply, interpret_reply
from aas.segmenters.retry import (
    RemoteError,
    RequestRejected,
    RetryPolicy,
    TransientError,
    redact,
)

logger = logging.getLogger(__name__)

# Failure reasons of requests that never produced a reply.
BUDGET_EXHAUSTED = "budget_exhausted"
REQUEST_FAILED = "request_failed"
REQUEST_REJECTED = "request_rejected"
INVALID_DEMO = "invalid_demo"
INTERNAL_ERROR = "internal_error"


@dataclass
class RemoteConfig(SegmenterConfig):
    """Settings shared by every remote vision-language segmenter."""

    # Model name sent to the server.
    model: str = ""
    # Which frames are sent and at what image size.
    keyframes: KeyframeConfig = field(default_factory=KeyframeConfig)
    # Add the commanded gripper state as frame ranges to the prompt.
    include_timeline: bool = False
    # Sampling temperature; 0 makes replies as repeatable as the server allows.
    temperature: float = 0.0
    # Maximum tokens of one reply; a longer reply is recorded as truncated.
    max_output_tokens: int = 4096
    # Maximum number of demos in progress at once.
    concurrency: int = 4
    # Seconds one request may take before it counts as timed out and is retried.
    timeout_s: float = 120.0
    # Retries per demo after the first attempt, on 429, 5xx and timeouts.
    max_retries: int = 5
    # Seconds before the first retry; doubles with each retry, with jitter.
    backoff_initial_s: float = 1.0
    # Upper bound in seconds of one backoff wait (a longer Retry-After wins).
    backoff_max_s: float = 30.0
    # Longest Retry-After in seconds that is honoured; longer ones are cut to this.
    max_retry_after_s: float = 120.0
    # Requests this segmenter may send in total, retries included; 0 means no limit.
    max_requests: int = 0
    # Input plus output tokens this segmenter may spend; 0 means no limit.
    max_tokens: int = 0
    # Folder of the reply cache; "" disables caching.
    cache_dir: str = ""
    # Seed of the backoff jitter.
    seed: int = 0

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {self.concurrency}")
        if self.timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0 seconds, got {self.timeout_s}")
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {self.max_retries}")
        if self.max_requests < 0 or self.max_tokens < 0:
            raise ValueError(
                "max_requests and max_tokens must be >= 0 (0 means no limit)"
            )


@dataclass(frozen=True)
class SegmentRequest:
    """Everything a backend sends for one demo.

    ``keyframes`` are the upright PNGs in frame order, each sent after its
    ``frame_label`` text. ``request_hash`` identifies the request in the
    reply cache.
    """

    demo_key: str
    prompt: str
    keyframes: tuple[Keyframe, ...]
    schema: dict[str, Any]
    request_hash: str


class Backend(abc.ABC):
    """One client session of a remote model, opened inside the running event loop."""

    @abc.abstractmethod
    async def send(self, request: SegmentRequest) -> Reply:
        """Send one request and return the completed reply.

        Raises:
            TransientError: 429, 5xx, timeout or connection failure.
            RequestRejected: any other error status.
        """

    async def aclose(self) -> None:
        """Release the client's connections."""


class RemoteSegmenter(Segmenter):
    """Base of segmenters that ask a remote model to segment keyframes.

    One instance is one run: its ``ledger`` and budget cover every call of
    ``segment`` and ``segment_many`` on it.
    """

    version = "1"

    def __init__(
        self, config: RemoteConfig, operators: Mapping[str, Operator] | None = None
    ) -> None:
        self.config = config
        self.operators = operators
        self.cache = ReplyCache(config.cache_dir or None)
        self.ledger = CostLedger(config.max_requests, config.max_tokens)
        self.policy = RetryPolicy(
            max_retries=config.max_retries,
            initial=config.backoff_initial_s,
            maximum=config.backoff_max_s,
            max_retry_after=config.max_retry_after_s,
        )
        self._rng = random.Random(config.seed)
        self._budget_warned = False
        self._runner: asyncio.Runner | None = None
        self._finalizer: weakref.finalize | None = None
        self._shared_backend: dict[str, Backend] = {}

    @abc.abstractmethod
    def open_backend(self) -> Backend:
        """Create the backend client; called inside the running event loop."""

    @abc.abstractmethod
    def identity(self) -> str:
        """Return the settings that change replies (model, endpoint...), for the request hash."""

    def secrets(self) -> tuple[str, ...]:
        """Return the strings redacted from every message (API keys)."""
        return ()

    def answer_schema(self, plan: Plan) -> dict[str, Any]:
        return answer_schema(plan)

    def segment(
        self, demo: Demo, plan: Plan, keyframes: Sequence[int] | None = None
    ) -> Segmentation:
        return self.segment_many([(demo, plan)], keyframes=[keyframes])[0]

    def segment_many(
        self,
        items: Iterable[tuple[Demo, Plan]],
        keyframes: Sequence[Sequence[int] | None] | None = None,
        checkpoint: str | Path | None = None,
    ) -> list[Segmentation]:
        """Segment many demos concurrently; see ``asegment_many``.

        Synchronous calls share one event loop and one backend client per
        segmenter, because creating a client is slow (about 1 s for
        google-genai 3.6.1 on a loaded 2-core machine). ``close`` releases
        them, as does garbage collection of the segmenter.
        """
        if self._runner is None:
            self._runner = asyncio.Runner()
            self._finalizer = weakref.finalize(
                self, _shut_down, self._runner, self._shared_backend
            )
        return self._runner.run(self._run_shared(list(items), keyframes, checkpoint))

    async def _run_shared(self, items, keyframes, checkpoint) -> list[Segmentation]:
        if "backend" not in self._shared_backend:
            self._shared_backend["backend"] = self.open_backend()
        backend = self._shared_backend["backend"]
        return await self.asegment_many(items, keyframes, checkpoint, backend=backend)

    def close(self) -> None:
        """Close the client and event loop used by synchronous calls."""
        if self._finalizer is not None:
            self._finalizer()
        self._runner = None
        self._finalizer = None
        self._shared_backend = {}

    async def asegment_many(
        self,
        items: Iterable[tuple[Demo, Plan]],
        keyframes: Sequence[Sequence[int] | None] | None = None,
        checkpoint: str | Path | None = None,
        backend: Backend | None = None,
    ) -> list[Segmentation]:
        """Segment ``(demo, plan)`` pairs with at most ``concurrency`` in progress.

        Args:
            items: demos with their plans.
            keyframes: per demo, the frames to send, or None to sample them
                with ``config.keyframes``.
            checkpoint: JSON Lines file of finished demos. Demos with a final
                record there are returned from it without a request; each
                newly finished demo is appended as soon as it is done.
            backend: an open client to reuse and leave open; None opens one
                for this call and closes it afterwards.

        Returns:
            One segmentation per item, in input order. Failures are returned
            with ``status="failed"``, never raised.
        """
        items = list(items)
        frames = list(keyframes) if keyframes is not None else [None] * len(items)
        if len(frames) != len(items):
            raise ValueError(f"got {len(frames)} keyframe lists for {len(items)} demos")
        store = Checkpoint(checkpoint) if checkpoint else None
        done = store.load() if store else {}
        if done:
            logger.info(
                "resuming: %d demos already finished in %s", len(done), checkpoint
            )

        started = time.perf_counter()
        semaphore = asyncio.Semaphore(self.config.concurrency)
        owned = backend is None
        if backend is None:
            backend = self.open_backend()

        async def run_one(demo: Demo, plan: Plan, chosen: Sequence[int] | None):
            if demo.key in done:
                return done[demo.key]
            async with semaphore:
                try:
                    result = await self._segment_one(backend, demo, plan, chosen)
                # One demo's bug must not lose the other demos' results.
                except Exception as exc:  # noqa: BLE001
                    message = redact(f"{type(exc).__name__}: {exc}", self.secrets())
                    logger.error("%s: segmentation failed: %s", demo.key, message)
                    extra = {"failure_reason": INTERNAL_ERROR, "retryable": True}
                    result = self._result(demo, plan, [], Cost(), extra, (), message)
            self.ledger.add_outcome(
                result.ok, result.provenance.extra.get("failure_reason", "")
            )
            if store:
                store.append(result)
            return result

        try:
            tasks = [run_one(d, p, f) for (d, p), f in zip(items, frames)]
            results = await asyncio.gather(*tasks)
        finally:
            if owned:
                await backend.aclose()
            self.ledger.seconds += time.perf_counter() - started
        logger.info(
            "%s: %d demos, %d ok, ledger %s",
            self.name,
            len(results),
            sum(r.ok for r in results),
            json.dumps(self.ledger.to_dict()),
        )
        return list(results)

    def _build_request(
        self, demo: Demo, plan: Plan, frames: Sequence[int]
    ) -> SegmentRequest:
        keyframes = encode_keyframes(
            demo, frames, self.config.keyframes.camera, self.config.keyframes.image_size
        )
        prompt = build_prompt(
            demo, plan, frames, self.operators, self.config.include_timeline
        )
        schema = self.answer_schema(plan)
        request_hash = content_hash(
            self.identity(),
            prompt,
            json.dumps(schema, sort_keys=True),
            *(part for k in keyframes for part in (str(k.frame), k.png)),
        )
        return SegmentRequest(demo.key, prompt, tuple(keyframes), schema, request_hash)

    async def _segment_one(
        self,
        backend: Backend,
        demo: Demo,
        plan: Plan,
        chosen: Sequence[int] | None,
    ) -> Segmentation:
        extra: dict[str, Any] = {"prompt_version": PROMPT_VERSION}
        frames: list[int] = []
        try:
            frames = (
                _check_frames(demo, chosen)
                if chosen is not None
                else (select_keyframes(demo, self.config.keyframes))
            )
            # Image reading and PNG encoding run in a worker thread, so that
            # other demos' requests keep going meanwhile.
            request = await asyncio.to_thread(self._build_request, demo, plan, frames)
        except (MissingDatasetError, IndexError, ValueError) as exc:
            extra.update(failure_reason=INVALID_DEMO, retryable=False)
            return self._result(demo, plan, frames, Cost(), extra, (), str(exc))
        extra["request_hash"] = request.request_hash
        extra["keyframe_strategy"] = (
            "given" if chosen is not None else self.config.keyframes.strategy
        )

        cost = Cost()
        reply = self.cache.get(request.request_hash)
        if reply is not None:
            self.ledger.cache_hits += 1
            extra["cached"] = True
        else:
            extra["cached"] = False
            reply, cost, failure = await self._send(backend, request)
            if failure is not None:
                reason, message = failure
                extra.update(failure_reason=reason, retryable=True)
                return self._result(demo, plan, frames, cost, extra, (), message)
            self.cache.put(request.request_hash, reply)

        extra["image_tokens"] = reply.image_tokens
        if reply.model_version:
            extra["model_version"] = reply.model_version
        answer = interpret_reply(reply, plan, frames, demo.num_frames, self.name)
        if answer.repairs:
            extra["repairs"] = list(answer.repairs)
        if not answer.ok:
            extra.update(failure_reason=answer.error, retryable=False)
            logger.warning(
                "%s: reply rejected (%s): %s", demo.key, answer.error, answer.message
            )
        return self._result(
            demo, plan, frames, cost, extra, answer.segments, answer.message
        )

    async def _send(
        self, backend: Backend, request: SegmentRequest
    ) -> tuple[Reply | None, Cost, tuple[str, str] | None]:
        """Send with retries; return the reply, its cost and ``(reason, message)`` on failure."""
        requests = 0
        started = time.perf_counter()
        input_tokens = output_tokens = 0

        def spent() -> Cost:
            return Cost(
                requests, input_tokens, output_tokens, time.perf_counter() - started
            )

        attempt = 0
        while True:
            try:
                self.ledger.reserve_request()
            except BudgetExhausted as exc:
                if not self._budget_warned:
                    logger.warning(
                        "%s: %s; remaining demos are not sent", self.name, exc
                    )
                    self._budget_warned = True
                return None, spent(), (BUDGET_EXHAUSTED, str(exc))
            requests += 1
            try:
                reply = await asyncio.wait_for(
                    backend.send(request), timeout=self.config.timeout_s
                )
            except TimeoutError:
                error: RemoteError = TransientError(
                    f"request timed out after {self.config.timeout_s} s"
                )
            except RemoteError as exc:
                error = exc
            else:
                input_tokens, output_tokens = reply.input_tokens, reply.output_tokens
                self.ledger.add_usage(input_tokens, output_tokens, reply.image_tokens)
                return reply, spent(), None

            message = redact(str(error), self.secrets())
            if isinstance(error, RequestRejected):
                logger.warning("%s: request rejected: %s", request.demo_key, message)
                return None, spent(), (REQUEST_REJECTED, message)
            if attempt >= self.policy.max_retries:
                logger.warning(
                    "%s: giving up after %d attempts: %s",
                    request.demo_key,
                    attempt + 1,
                    message,
                )
                return (
                    None,
                    spent(),
                    (
                        REQUEST_FAILED,
                        f"failed after {attempt + 1} attempts: {message}",
                    ),
                )
            attempt += 1
            self.ledger.retries += 1
            retry_after = (
                error.retry_after if isinstance(error, TransientError) else None
            )
            delay = self.policy.delay(attempt, retry_after, self._rng)
            logger.warning(
                "%s: %s; retry %d of %d in %.2f s",
                request.demo_key,
                message,
                attempt,
                self.policy.max_retries,
                delay,
            )
            await asyncio.sleep(delay)

    def _result(
        self,
        demo: Demo,
        plan: Plan,
        frames: Sequence[int],
        cost: Cost,
        extra: dict[str, Any],
        segments: tuple,
        message: str,
    ) -> Segmentation:
        failed = "failure_reason" in extra
        return Segmentation(
            demo_key=demo.key,
            num_frames=demo.num_frames,
            segments=segments if not failed else (),
            provenance=Provenance(
                segmenter=self.name,
                version=self.version,
                model=self.config.model,
                prompt_hash=PROMPT_HASH,
                keyframes=tuple(int(f) for f in frames),
                cost=cost,
                extra=extra,
            ),
            instruction=demo.instruction,
            plan=plan,
            source_file=demo.source,
            demo_hash=demo.action_hash(),
            fps=demo.fps,
            status="failed" if failed else "ok",
            error=redact(message, self.secrets()) if failed else "",
        )


def _shut_down(runner: asyncio.Runner, shared: dict[str, Backend]) -> None:
    """Close the shared backend and event loop of a segmenter's synchronous calls."""
    backend = shared.pop("backend", None)
    if threading.current_thread() is not threading.main_thread():
        # Garbage collection may run this in a worker thread of the loop's own
        # executor, and closing the loop there would wait for that thread.
        return
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        # Inside another running event loop nothing can be awaited here, so
        # the garbage collector releases the sockets instead.
        return
    if backend is not None:
        runner.run(backend.aclose())
    try:
        runner.close()
    except RuntimeError as exc:
        # At interpreter exit the loop's executor cannot start its shutdown thread.
        logger.debug("event loop of a segmenter not closed: %s", exc)


def _check_frames(demo: Demo, frames: Sequence[int]) -> list[int]:
    """Return ``frames`` sorted and deduplicated, or raise naming the bad frame."""
    chosen = sorted({int(f) for f in frames})
    if not chosen:
        raise ValueError(f"{demo.key}: no keyframes given")
    if chosen[0] < 0 or chosen[-1] >= demo.num_frames:
        raise ValueError(
            f"{demo.key}: keyframes must be in [0, {demo.num_frames - 1}], "
            f"got {chosen[0]}..{chosen[-1]}"
        )
    return chosen
