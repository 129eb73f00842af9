"""Staying up: model calls retried through transient faults, a bound on work in flight, and a
shutdown that finishes or cleanly refuses what is in flight within a bounded time.

Calls from the Censor service to its model services fail now and then under load (BentoML's
client closes pooled sessions that other calls still use: `ServerDisconnectedError`,
`Connector is closed`), and fail outright while a model worker restarts. Model calls are
idempotent, so they are retried with a jittered, growing backoff until a deadline; past it the
answer is 503 with `Retry-After`, naming the stage, never a bare 500.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import signal
import threading
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import aiohttp
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pipeline.errors import Unavailable

log = logging.getLogger(__name__)
T = TypeVar("T")

# What a call to a model service raises when the connection, not the request, failed.
TRANSIENT: tuple[type[BaseException], ...] = (aiohttp.ClientError, ConnectionError, TimeoutError, asyncio.TimeoutError)


def _transient(error: BaseException) -> bool:
    from bentoml.exceptions import BentoMLException

    if isinstance(error, TRANSIENT):
        return True
    if isinstance(error, RuntimeError) and "closed" in str(error).lower():  # aiohttp: "Session is closed".
        return True
    code = getattr(error, "error_code", None)  # A model worker restarting answers 5xx.
    return isinstance(error, BentoMLException) and code is not None and int(code) >= 500


class Draining:
    """Set once SIGTERM arrives: stop waiting for model services, refuse new work, and make sure
    the process is gone within `grace_s` even if something hangs."""

    def __init__(self) -> None:
        self.event = threading.Event()

    def is_set(self) -> bool:
        return self.event.is_set()

    def install(self, grace_s: float) -> None:
        """Chain onto the server's own SIGTERM handler (uvicorn's), keeping its behaviour."""
        previous = signal.getsignal(signal.SIGTERM)

        def on_term(signum, frame):
            if not self.event.is_set():
                self.event.set()
                log.info("SIGTERM: draining; this process exits within %.0f s", grace_s)
                watchdog = threading.Timer(grace_s, self._force_exit, args=(grace_s,))
                watchdog.daemon = True
                watchdog.start()
            if callable(previous):
                previous(signum, frame)

        signal.signal(signal.SIGTERM, on_term)

    @staticmethod
    def _force_exit(grace_s: float) -> None:
        log.warning("still running %.0f s after SIGTERM: exiting now", grace_s)
        os._exit(0)


DRAINING = Draining()


async def with_retries(call: Callable[[], Awaitable[T]], *, stage: str, deadline_s: float) -> T:
    """`call()`, again after each transient failure (0.1 s growing to 2 s, jittered), until
    `deadline_s` has passed or the process is shutting down; then 503 naming the stage."""
    started, delay, attempt = time.monotonic(), 0.1, 0
    while True:
        attempt += 1
        try:
            return await call()
        except Exception as error:
            if not _transient(error):
                raise
            waited = time.monotonic() - started
            if DRAINING.is_set():
                raise Unavailable(f"{stage}: the service is shutting down; send the request again") from None
            if waited + delay > deadline_s:
                raise Unavailable(
                    f"{stage}: the {stage} model service did not answer for {waited:.0f} s "
                    f"({type(error).__name__}, {attempt} tries); send the request again",
                    retry_after_s=10,
                ) from None
            log.warning(
                "%s call failed (%s: %s); retry %d in %.2f s", stage, type(error).__name__, error, attempt, delay
            )
        await asyncio.sleep(delay * random.uniform(0.5, 1.5))
        delay = min(delay * 2, 2.0)


class Admission:
    """A bound on the work a process holds: images and decoded pixels in flight. A request that
    would go over waits up to `wait_s` for room, then gets 503 with Retry-After. One image is
    always admitted when nothing else is in flight, so a single large image cannot starve."""

    def __init__(self, max_images: int, max_pixels: int, wait_s: float):
        self.max_images, self.max_pixels, self.wait_s = max_images, max_pixels, wait_s
        self.images = self.pixels = 0
        self._changed = asyncio.Condition()

    def fits_now(self, images: int, pixels: int) -> bool:
        """Whether this much work would be admitted without waiting."""
        return self._fits(images, pixels)

    def _fits(self, images: int, pixels: int) -> bool:
        if self.images == 0:
            return True
        return self.images + images <= self.max_images and self.pixels + pixels <= self.max_pixels

    async def acquire(self, images: int, pixels: int) -> None:
        async with self._changed:
            try:
                await asyncio.wait_for(self._changed.wait_for(lambda: self._fits(images, pixels)), self.wait_s)
            except TimeoutError:
                raise Unavailable(
                    f"busy: {self.images} images ({self.pixels:,} pixels) in flight; send the request again",
                    retry_after_s=2,
                ) from None
            self.images, self.pixels = self.images + images, self.pixels + pixels

    async def release(self, images: int, pixels: int) -> None:
        async with self._changed:
            self.images, self.pixels = self.images - images, self.pixels - pixels
            self._changed.notify_all()


OPEN_WHILE_DRAINING = {"/livez", "/healthz", "/metrics"}


class Probes:
    """ASGI middleware: `/readyz` answers within a bound, and a draining process refuses new work.

    BentoML's `/readyz` asks each model service for its own readiness; a probe that arrives while
    they start can wait on that call long after everything is ready (seen: minutes), and such a
    stuck request also keeps the worker from exiting on SIGTERM. Here it gets 503 after
    `timeout_s`, and once SIGTERM arrived every request but liveness and metrics gets 503.
    """

    def __init__(self, app: ASGIApp, timeout_s: float) -> None:
        self.app, self.timeout_s = app, timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if DRAINING.is_set() and scope["path"] not in OPEN_WHILE_DRAINING:
            error = Unavailable("shutting down: send the request again (another replica, or after the restart)")
            return await _refuse(error, scope, receive, send)
        if scope["path"] != "/readyz":
            return await self.app(scope, receive, send)
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await asyncio.wait_for(self.app(scope, receive, tracked), self.timeout_s)
        except TimeoutError:
            if not started:
                error = Unavailable(f"not ready: the model services did not answer within {self.timeout_s:g} s", 2)
                await _refuse(error, scope, receive, send)


async def _refuse(error: Unavailable, scope: Scope, receive: Receive, send: Send) -> None:
    response = JSONResponse({"error": str(error)}, status_code=int(error.status), headers=error.headers())
    await response(scope, receive, send)
