"""ASGI middleware: the request-body cap (by header and by bytes received) and one JSON log line per request."""

from __future__ import annotations

import json
import logging
import time

from .deps import ApiError

log = logging.getLogger("digitnet.server")


class BodyLimit:
    """Refuse request bodies over the cap, by header or by bytes actually received."""

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            return await send_json(send, 413, f"request body over the {self.max_bytes:,}-byte limit")
        received = 0

        async def limited():
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                raise ApiError(413, f"request body over the {self.max_bytes:,}-byte limit")
            return message

        try:
            await self.app(scope, limited, send)
        except ApiError as e:
            await send_json(send, e.status, e.message)


async def send_json(send, status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def log_requests(request, call_next):
    """One JSON line per request on the ``digitnet.server`` logger: method, path, status, milliseconds."""
    t0 = time.perf_counter()
    response = await call_next(request)
    log.info(json.dumps({"method": request.method, "path": request.url.path, "status": response.status_code,
                         "ms": round((time.perf_counter() - t0) * 1000, 2)}))
    return response
