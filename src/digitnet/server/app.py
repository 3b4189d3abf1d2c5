"""FastAPI app: ``/api/predict``, ``/api/predict/batch``, ``/api/model``, ``/healthz`` and the drawing page.

Uploads stay in memory and are dropped after the response. Every bad input gets ``{"error": message}``
with a 4xx status; a 500 is a bug. Work runs in a bounded pool; when the wait queue is full the API
answers 503 with ``Retry-After`` instead of growing memory.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import json
import logging
import time
from dataclasses import dataclass
from importlib import resources

import numpy as np
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..inference import Predictor
from ..preprocessing import ImageError, ImageTooLargeError

log = logging.getLogger("digitnet.server")


@dataclass(frozen=True)
class Limits:
    max_upload_bytes: int = 5 * 1024 * 1024  # per request body
    max_pixels: int = 25_000_000  # decoded image size
    max_batch: int = 64  # files per batch request
    workers: int = 2  # predictions running at once
    max_queue: int = 128  # requests waiting for a worker before 503
    timeout_s: float = 30.0  # per request, waiting included


class ApiError(Exception):
    def __init__(self, status: int, message: str, headers: dict | None = None):
        self.status, self.message, self.headers = status, message, headers


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


class BodyLimit:
    """ASGI middleware: refuse request bodies over the cap, by header or by bytes actually received."""

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            return await _send_json(send, 413, f"request body over the {self.max_bytes:,}-byte limit")
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
            await _send_json(send, e.status, e.message)


async def _send_json(send, status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def create_app(predictor: Predictor, *, token: str | None = None, cors_origin: str | None = None,
               limits: Limits = Limits()) -> FastAPI:
    """Build the app around an already loaded :class:`Predictor` (tests inject their own)."""
    app = FastAPI(title="digitnet", version=_version(), summary="Handwritten digit recognition",
                  description="Read the digits in an image: drawings, scans or photos, any size, polarity or colour.")
    gate = Gate(limits.workers, limits.max_queue)
    static = resources.files("digitnet") / "server" / "static"

    def check_token(request: Request) -> None:
        if token is None:
            return
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            raise ApiError(401, "missing or invalid token (send Authorization: Bearer <token>)")

    api = [Depends(check_token)]

    @app.middleware("http")
    async def log_requests(request: Request, call_next):
        t0 = time.perf_counter()
        response = await call_next(request)
        log.info(json.dumps({"method": request.method, "path": request.url.path, "status": response.status_code,
                             "ms": round((time.perf_counter() - t0) * 1000, 2)}))
        return response

    @app.exception_handler(ApiError)
    async def api_error(request, e: ApiError):
        return JSONResponse({"error": e.message}, e.status, headers=e.headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request, e: StarletteHTTPException):
        return JSONResponse({"error": str(e.detail)}, e.status_code, headers=getattr(e, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request, e: RequestValidationError):
        first = e.errors()[0] if e.errors() else {}
        where = ".".join(str(x) for x in first.get("loc", ()) if x != "body")
        return JSONResponse({"error": f"invalid request: {where} {first.get('msg', '')}".strip()}, 422)

    @app.exception_handler(Exception)
    async def bug(request, e: Exception):  # a 500 is a bug: say so, log the traceback
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse({"error": "internal error (a bug in digitnet; please report it)"}, 500)

    def predict_bytes(data: bytes, name: str | None, single: bool, top_k: int | None) -> dict:
        try:
            return predictor.predict_image(data, single=single, top_k=top_k, file=name, with_normalized=True,
                                           max_pixels=limits.max_pixels)
        except ImageTooLargeError as e:
            raise ApiError(413, str(e)) from None
        except ImageError as e:
            raise ApiError(400, str(e)) from None

    def predict_pixels(pixels: np.ndarray, top_k: int | None) -> dict:
        image = np.round(pixels).astype(np.uint8)  # (28, 28), MNIST polarity
        return predictor.predict_mnist_image(image, top_k=top_k, with_normalized=True)

    def options(single: bool, top_k: int | None) -> tuple[bool, int | None]:
        if top_k is not None and not 1 <= top_k <= 10:
            raise ApiError(422, "top_k must be between 1 and 10")
        return single, top_k

    @app.get("/", include_in_schema=False)
    async def page():
        return FileResponse(str(static / "index.html"), media_type="text/html")

    @app.get("/healthz", summary="Liveness check")
    async def healthz():
        return {"status": "ok"}

    @app.get("/api/model", dependencies=api, summary="The loaded model")
    async def model_info():
        info = predictor.info
        return {"name": predictor.name, "file": str(predictor.path) if predictor.path else None,
                "accuracy": info.get("test", {}).get("accuracy"), "trained_at": info.get("model", {}).get("trained_at"),
                "parameters": predictor.parameters, "classes": [str(i) for i in range(10)],
                "min_confidence": predictor.min_confidence, "backend": predictor.backend}

    @app.post("/api/predict", dependencies=api, summary="Read the digits in one image",
              description="Multipart upload (field `file`), or JSON `{\"pixels\": 28x28 or 784 numbers 0-255, "
                          "MNIST polarity}` or `{\"image\": base64, optionally a data: URL}`.")
    async def predict(request: Request, single: bool = False, top_k: int | None = None):
        single, top_k = options(single, top_k)
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype == "multipart/form-data":
            form = await request.form(max_files=1)
            upload = form.get("file")
            if upload is None or isinstance(upload, str):
                raise ApiError(422, "multipart request needs an image in the field 'file'")
            data = await upload.read()
            return await gate.run(predict_bytes, data, upload.filename, single, top_k, timeout=limits.timeout_s)
        if ctype == "application/json":
            body = await _json_body(request)
            if "pixels" in body:
                return await gate.run(predict_pixels, _pixels(body["pixels"]), top_k, timeout=limits.timeout_s)
            if "image" in body:
                data = _b64(body["image"])
                return await gate.run(predict_bytes, data, None, single, top_k, timeout=limits.timeout_s)
            raise ApiError(422, "JSON body needs 'pixels' (28x28 or 784 numbers) or 'image' (base64)")
        raise ApiError(415, f"unsupported content type {ctype or 'none'!r}: send multipart/form-data or "
                            "application/json")

    @app.post("/api/predict/batch", dependencies=api, summary="Read several images (multipart, field `file`)")
    async def predict_batch(request: Request, single: bool = False, top_k: int | None = None):
        single, top_k = options(single, top_k)
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype != "multipart/form-data":
            raise ApiError(415, "send the images as multipart/form-data, each in a field 'file'")
        form = await request.form(max_files=limits.max_batch + 1)
        uploads = [f for f in form.getlist("file") if not isinstance(f, str)]
        if not uploads:
            raise ApiError(422, "no images: send each in a multipart field 'file'")
        if len(uploads) > limits.max_batch:
            raise ApiError(413, f"at most {limits.max_batch} images per batch, got {len(uploads)}")
        out = []
        for upload in uploads:  # one bad file gets its own error; the others are still read
            data = await upload.read()
            try:
                out.append(await gate.run(predict_bytes, data, upload.filename, single, top_k,
                                          timeout=limits.timeout_s))
            except ApiError as e:
                if e.status in (503, 504):
                    raise
                out.append({"file": upload.filename, "digits": None, "reason": None, "predictions": [],
                            "error": e.message})
        return out

    app.mount("/static", StaticFiles(directory=str(static)), name="static")
    if cors_origin:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=[cors_origin], allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type"])
    app.add_middleware(BodyLimit, max_bytes=limits.max_upload_bytes)
    return app


async def _json_body(request: Request) -> dict:
    try:
        body = json.loads(await request.body())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ApiError(400, f"invalid JSON: {e}") from None
    if not isinstance(body, dict):
        raise ApiError(422, "JSON body must be an object")
    return body


def _pixels(value) -> np.ndarray:
    try:
        a = np.asarray(value, dtype=np.float64)
    except (ValueError, TypeError):
        raise ApiError(422, "pixels must be 28x28 nested lists or 784 numbers") from None
    if a.shape == (784,):
        a = a.reshape(28, 28)
    if a.shape != (28, 28):
        raise ApiError(422, f"pixels must be 28x28 nested lists or 784 numbers, got shape {list(a.shape)}")
    if not np.isfinite(a).all():
        raise ApiError(422, "pixels contain NaN or infinite values")
    if a.min() < 0 or a.max() > 255:
        raise ApiError(422, "pixels must lie in 0-255")
    return a


def _b64(value) -> bytes:
    if not isinstance(value, str) or not value:
        raise ApiError(422, "image must be a non-empty base64 string")
    if value.startswith("data:"):
        value = value.split(",", 1)[-1]
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(400, "image is not valid base64") from None


def _version() -> str:
    from .. import __version__

    return __version__
