"""An aiohttp server on 127.0.0.1 running in its own thread, for tests and benchmarks."""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Self

from aiohttp import web


class ThreadedServer:
    """Serves ``self.routes()`` on a free port of 127.0.0.1 until ``close()``.

    ``calls`` records every request as ``{"path", "headers", "body"}``.
    ``latency_s`` delays every reply, to measure throughput, and
    ``max_in_flight`` is the largest number of requests handled at once.
    """

    def __init__(self, latency_s: float = 0.0, hang_s: float = 3.0) -> None:
        self.latency_s = latency_s
        self.hang_s = hang_s
        self.calls: list[dict[str, Any]] = []
        self.port = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None

    def routes(self) -> list[web.RouteDef]:
        raise NotImplementedError

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def record(self, request: web.Request, body: Any) -> None:
        with self._lock:
            self.calls.append(
                {
                    "path": request.path_qs,
                    "headers": dict(request.headers),
                    "body": body,
                }
            )

    @web.middleware
    async def _count_in_flight(
        self, request: web.Request, handler
    ) -> web.StreamResponse:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return await handler(request)
        finally:
            self.in_flight -= 1

    async def _start(self) -> None:
        app = web.Application(
            client_max_size=256 * 1024 * 1024, middlewares=[self._count_in_flight]
        )
        app.add_routes(self.routes())
        self._runner = web.AppRunner(app, shutdown_timeout=0.2)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    def start(self) -> Self:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)
        return self

    def close(self) -> None:
        if self._runner is not None:
            future = asyncio.run_coroutine_threadsafe(
                self._runner.cleanup(), self._loop
            )
            future.result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
