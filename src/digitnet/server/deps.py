"""The server's shared pieces, in one place: its state, the API error, the work gate and the token check."""

from __future__ import annotations

import asyncio
import hmac
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
    """Bounded concurrency with a bounded wait queue (503 when full, never unbounded memory)."""

    def __init__(self, workers: int, max_queue: int):
        self.sem = asyncio.Semaphore(workers)
        self.max_queue = max_queue
        self.waiting = 0

    async def run(self, fn, *args, timeout: float):
        if self.waiting >= self.max_queue:
            raise ApiError(503, "server busy, retry shortly", {"Retry-After": "1"})
        self.waiting += 1
        queued = True

        async def work():
            nonlocal queued
            async with self.sem:
                self.waiting -= 1
                queued = False
                return await asyncio.to_thread(fn, *args)

        try:
            return await asyncio.wait_for(work(), timeout)
        except TimeoutError:
            raise ApiError(504, f"prediction did not finish within {timeout:g} s") from None
        finally:
            if queued:  # timed out or cancelled before reaching a worker
                self.waiting -= 1


@dataclass
class ServerState:
    """Everything a request needs, built once by ``create_app`` and kept on ``app.state.digitnet``."""

    predictor: Predictor
    limits: Limits
    gate: Gate
    token: str | None = None


def state(request: Request) -> ServerState:
    """Dependency: the server's state."""
    return request.app.state.digitnet


def check_token(request: Request) -> None:
    """Dependency: refuse API calls without the bearer token, when one is set (timing-safe compare)."""
    token = state(request).token
    if token is None:
        return
    given = request.headers.get("authorization", "")
    if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
        raise ApiError(401, "missing or invalid token (send Authorization: Bearer <token>)")
