"""ASGI middleware: the request log, the Host check and the request-body cap and deadline."""

from __future__ import annotations

import asyncio
import json
import logging
import time

log = logging.getLogger("digitnet.server")


async def send_json(send, status: int, message: str, headers: list | None = None) -> None:
    body = json.dumps({"error": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *(headers or [])]})
    await send({"type": "http.response.body", "body": body})


class RequestLog:
    """One JSON line per request on the ``digitnet.server`` logger (method, path, status, milliseconds),
    including requests the other middleware refuse and the 500s of bugs. The outermost middleware."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        t0, status = time.perf_counter(), [None]

        async def sending(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception:
            status[0] = 500  # Starlette's error middleware turns it into the 500 answer
            raise
        finally:
            log.info(json.dumps({"method": scope["method"], "path": scope["path"], "status": status[0],
                                 "ms": round((time.perf_counter() - t0) * 1000, 2)}))


class HostCheck:
    """Refuse requests whose Host header is not allowed (DNS rebinding): 400 with a JSON error."""

    def __init__(self, app, allowed: list[str]):
        self.app = app
        self.allowed = {h.lower() for h in allowed}

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and "*" not in self.allowed:
            host = dict(scope["headers"]).get(b"host", b"").decode("latin-1").lower()
            name = host.rsplit(":", 1)[0] if host.count(":") == 1 or host.startswith("[") else host
            if name not in self.allowed and host not in self.allowed:
                return await send_json(send, 400, f"host {host!r} is not allowed (see --allowed-hosts)")
        return await self.app(scope, receive, send)


class BodyLimit:
    """Read the whole request body before the app sees it: refuse it over ``max_bytes`` (413), by header
    or by bytes actually received (chunked uploads have no length), and when it has not arrived within
    ``timeout_s`` (408). Bodies are capped at a few MB, so holding one in memory is the point: nothing
    of an upload is written to disk."""

    def __init__(self, app, max_bytes: int, timeout_s: float):
        self.app, self.max_bytes, self.timeout_s = app, max_bytes, timeout_s

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            return await send_json(send, 413, f"request body over the {self.max_bytes:,}-byte limit")
        try:
            body = await asyncio.wait_for(self._read(receive), self.timeout_s)
        except OverflowError:
            return await send_json(send, 413, f"request body over the {self.max_bytes:,}-byte limit")
        except TimeoutError:
            return await send_json(send, 408, f"request body not received within {self.timeout_s:g} s")
        except ConnectionAbortedError:
            return None  # the client left: nobody to answer
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: only http.disconnect can come

        await self.app(scope, replay, send)

    async def _read(self, receive) -> bytes:
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ConnectionAbortedError
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                raise OverflowError
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)
