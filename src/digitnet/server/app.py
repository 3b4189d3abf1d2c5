"""``create_app(predictor)``: assemble the app from the routes, the shared state, the error handlers, the middleware.

Uploads stay in memory and are dropped after the response. Every bad input gets ``{"error": message}``
with a 4xx status; a 500 is a bug. Work runs in a bounded pool; when the wait queue is full the API
answers 503 with ``Retry-After`` instead of growing memory.
"""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from .._version import __version__
from ..inference import Predictor
from ..presets import Limits
from . import learn, routes
from .deps import ApiError, Gate, ServerState
from .middleware import BodyLimit, HostCheck, RequestLog

log = logging.getLogger("digitnet.server")


def create_app(predictor: Predictor, *, token: str | None = None, cors_origin: str | None = None,
               limits: Limits | None = None, allowed_hosts: list[str] | None = None, learning: bool = True,
               watch: bool = False) -> FastAPI:
    """Build the app around an already loaded :class:`Predictor` (tests inject their own).

    ``allowed_hosts`` (default: any) are the Host header values accepted, against DNS rebinding.
    ``learning`` allows the samples and personalize endpoints (``serve`` turns them off beyond loopback
    without a token: 403). ``watch`` swaps in new personal versions of the default model (``swap.py``).
    """
    from starlette.formparsers import MultiPartParser

    from .swap import ModelWatcher, version_label

    limits = limits or Limits()
    gate = Gate(limits.workers, limits.max_queue)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if watcher is not None:
            watcher.start()
        yield
        if watcher is not None:
            watcher.stop()
        gate.pool.shutdown(wait=False, cancel_futures=True)  # work still running stops at its deadline
    # Keep multipart uploads in memory up to the body cap (Starlette spools files over 1 MB to disk); the
    # body is already held in memory by BodyLimit, so this adds no new exposure. Class-wide, only raised.
    MultiPartParser.spool_max_size = max(MultiPartParser.spool_max_size, limits.max_upload_bytes)
    app = FastAPI(title="digitnet", version=__version__, summary="Handwritten digit recognition", lifespan=lifespan,
                  description="Read the digits in an image: drawings, scans or photos, any size, polarity or colour.")
    if getattr(predictor, "version", None) is None:  # tests inject stand-ins that lack it
        predictor.version = version_label(getattr(predictor, "path", None))
    state = app.state.digitnet = ServerState(predictor, limits, gate, token, learning)
    watcher = app.state.watcher = ModelWatcher(state, predictor.backend) if watch else None
    _add_error_handlers(app)
    app.include_router(routes.pages)
    app.include_router(routes.api)
    app.include_router(learn.api)
    app.mount("/static", StaticFiles(directory=str(routes.STATIC)), name="static")
    if cors_origin:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=[cors_origin], allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type"])
    app.add_middleware(BodyLimit, max_bytes=limits.max_upload_bytes, timeout_s=limits.request_timeout_s)
    if allowed_hosts is not None:
        app.add_middleware(HostCheck, allowed=allowed_hosts)
    app.add_middleware(RequestLog)  # added last: the outermost, so it logs every answer, refusals included
    return app


def _add_error_handlers(app: FastAPI) -> None:
    """Every error becomes ``{"error": message}`` (plus ``"code"``) with its status."""

    @app.exception_handler(ApiError)
    async def api_error(request, e: ApiError):
        return JSONResponse(e.body(), e.status, headers=e.headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request, e: StarletteHTTPException):
        return JSONResponse({"error": str(e.detail)}, e.status_code, headers=getattr(e, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request, e: RequestValidationError):
        first = e.errors()[0] if e.errors() else {}
        where = ".".join(str(x) for x in first.get("loc", ()) if x != "body")
        return JSONResponse({"error": f"invalid request: {where} {first.get('msg', '')}".strip()}, 422)

    @app.exception_handler(Exception)
    async def bug(request: Request, e: Exception):  # a 500 is a bug: say so, log the traceback
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse({"error": "internal error (a bug in digitnet; please report it)"}, 500)
