"""The server's shared pieces, in one place: its state, the API error, the work gate and the token check."""

from __future__ import annotations

import asyncio
import hmac
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from fastapi import Request

from ..inference import Predictor
from ..presets import Limits


class ApiError(Exception):
    """An error answer: HTTP ``status`` and ``{"error": message}`` (plus ``"code"`` when given)."""

    def __init__(self, status: int, message: str, headers: dict | None = None, code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.headers, self.code = status, message, headers, code

    def body(self) -> dict:
        return {"error": self.message, **({"code": self.code} if self.code else {})}


class Gate:
    """Bounded concurrency with a bounded wait queue (503 when full, never unbounded memory).

    A prediction holds its worker slot until its thread has really finished, even after its request
    got a 504: never more than ``workers`` predictions run at once. The work itself is given the
    request's deadline and stops between stages once it has passed.
    """

    def __init__(self, workers: int, max_queue: int):
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        self.sem = asyncio.Semaphore(workers)
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="digitnet-predict")
        self.max_queue = max_queue
        self.waiting = 0

    async def run(self, fn, *args, deadline: float):
        """``fn(*args)`` on a worker thread; ``deadline`` is a ``time.monotonic()`` value."""
        if self.waiting >= self.max_queue:
            raise ApiError(503, "server busy, retry shortly", {"Retry-After": "1"})
        self.waiting += 1
        try:
            await asyncio.wait_for(self.sem.acquire(), max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            raise ApiError(504, "the request waited past its deadline for a worker") from None
        finally:
            self.waiting -= 1
        future = asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)
        future.add_done_callback(self._finished)  # the slot is freed here, when the thread is done
        try:
            return await asyncio.wait_for(asyncio.shield(future), max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            raise ApiError(504, "prediction did not finish before the request's deadline") from None

    def _finished(self, future) -> None:
        self.sem.release()
        if not future.cancelled():
            future.exception()  # retrieved, so that a late failure after a 504 is not logged as lost


@dataclass
class ServerState:
    """Everything a request needs, built once by ``create_app`` and kept on ``app.state.digitnet``."""

    predictor: Predictor  # swapped whole by the live swap: read it once per request
    limits: Limits
    gate: Gate
    token: str | None = None
    learning: bool = True  # the samples and personalize endpoints answer (else 403)


def state(request: Request) -> ServerState:
    """Dependency: the server's state."""
    return request.app.state.digitnet


def check_learning(request: Request) -> None:
    """Dependency of the learning endpoints: refused (403) on a server anyone could retrain."""
    if not state(request).learning:
        raise ApiError(403, "learning is off on this server: it listens beyond loopback without a token, so anyone "
                            "could retrain it; restart it with --token", code="learning_off")


def check_token(request: Request) -> None:
    """Dependency: refuse API calls without the bearer token, when one is set (timing-safe compare)."""
    token = state(request).token
    if token is None:
        return
    given = request.headers.get("authorization", "")
    if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
        raise ApiError(401, "missing or invalid token (send Authorization: Bearer <token>)",
                       {"WWW-Authenticate": "Bearer"})
