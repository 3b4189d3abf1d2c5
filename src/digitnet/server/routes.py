"""The HTTP routes: ``/api/predict``, ``/api/explain``, ``/api/predict/batch``, ``/api/model``, ``/healthz``, the page.

Routes parse requests and format answers; the work is ``Predictor``'s, run through the state's gate.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import time
from dataclasses import dataclass
from importlib import resources
from typing import Annotated

import numpy as np
from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, JSONResponse
from starlette.exceptions import HTTPException

from ..errors import DeadlineExceeded, ImageError, ImageTooLargeError, ModelOutputError
from ..inference import Predictor
from ..presets import IMAGE_SIZE, NUM_CLASSES, PIXELS
from ..results import Reading
from .deps import ApiError, ServerState, check_token, state
from .schemas import BATCH_BODY, PREDICT_BODY, HealthOut, ModelOut, ReadingOut, errors

State = Annotated[ServerState, Depends(state)]  # the dependency every route takes
STATIC = resources.files("digitnet") / "server" / "static"

pages = APIRouter()
api = APIRouter(prefix="/api", dependencies=[Depends(check_token)])


@pages.get("/", include_in_schema=False)
async def page():
    return FileResponse(str(STATIC / "index.html"), media_type="text/html")


@pages.get("/healthz", summary="Liveness check", response_model=HealthOut)
async def healthz(s: State):
    return {"status": "ok", "pid": os.getpid(), "model_version": s.predictor.version}


@api.get("/model", summary="The loaded model", response_model=ModelOut, responses=errors(401))
async def model_info(s: State):
    p = s.predictor
    return {"name": p.name, "version": p.version, "file": str(p.path) if p.path else None,
            "accuracy": p.info.get("test", {}).get("accuracy"), "trained_at": p.info.get("model", {}).get("trained_at"),
            "parameters": p.parameters, "classes": [str(i) for i in range(NUM_CLASSES)],
            "min_confidence": p.min_confidence, "min_digit_score": p.min_digit_score, "backend": p.backend}


@dataclass(frozen=True)
class ReadOptions:
    """The query parameters every reading takes."""

    single: bool = False
    top_k: int | None = None
    min_digit_score: float | None = None  # None: the model's calibrated threshold


def read_options(single: bool = False, top_k: int | None = None, min_digit_score: float | None = None) -> ReadOptions:
    """``?single=&top_k=&min_digit_score=``, checked."""
    if top_k is not None and not 1 <= top_k <= NUM_CLASSES:
        raise ApiError(422, "top_k must be between 1 and 10")
    if min_digit_score is not None and not 0 <= min_digit_score <= 1:
        raise ApiError(422, "min_digit_score must lie in [0, 1] (0 turns rejection off)")
    return ReadOptions(single, top_k, min_digit_score)


Options = Annotated[ReadOptions, Depends(read_options)]


@api.post("/predict", summary="Read the digits in one image", response_model=None, openapi_extra=PREDICT_BODY,
          responses={200: {"model": ReadingOut}, **errors(400, 401, 408, 413, 415, 422, 503, 504)},
          description="Multipart upload (field `file`), or JSON `{\"pixels\": 28x28 or 784 numbers 0-255, "
                      "MNIST polarity}` or `{\"image\": base64, optionally a data: URL}`.")
async def predict(request: Request, s: State, opts: Options) -> JSONResponse:
    return await _read_one(request, s, opts)


@api.post("/explain", summary="Read the digits in one image and show why", response_model=None,
          openapi_extra=PREDICT_BODY,
          responses={200: {"model": ReadingOut}, **errors(400, 401, 408, 413, 415, 422, 503, 504)},
          description="The same inputs and answer as `/api/predict`; each prediction also carries an "
                      "`explanation`: integrated-gradients saliency of its digit and of every class, and each "
                      "layer's activations as a PNG grid. About 60 ms more per digit on 2 cores.")
async def explain(request: Request, s: State, opts: Options) -> JSONResponse:
    return await _read_one(request, s, opts, explain=True)


@dataclass
class Upload:
    """One request's image: raw bytes (a file or base64) or MNIST-form pixels, plus the other fields."""

    data: bytes | None = None
    name: str | None = None
    pixels: np.ndarray | None = None  # uint8 (28, 28), MNIST polarity
    fields: dict | None = None  # the other form fields or JSON keys


async def read_upload(request: Request) -> Upload:
    """The image of a request in any of the three body forms (multipart ``file``, JSON ``pixels`` or ``image``)."""
    ctype = _content_type(request)
    if ctype == "multipart/form-data":
        form = await _form(request, max_files=1)
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise ApiError(422, "multipart request needs an image in the field 'file'")
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        return Upload(data=await upload.read(), name=upload.filename, fields=fields)
    if ctype == "application/json":
        body = await _json_body(request)
        if "pixels" in body:
            return Upload(pixels=np.round(_pixels(body["pixels"])).astype(np.uint8), fields=body)
        if "image" in body:
            return Upload(data=_b64(body["image"]), fields=body)
        raise ApiError(422, "JSON body needs 'pixels' (28x28 or 784 numbers) or 'image' (base64)")
    raise ApiError(415, f"unsupported content type {ctype or 'none'!r}: send multipart/form-data or "
                        "application/json")


async def _read_one(request: Request, s: ServerState, opts: ReadOptions, explain: bool = False) -> JSONResponse:
    """One image from any of the three body forms, read through the gate (and explained, when asked)."""
    deadline = time.monotonic() + s.limits.timeout_s  # one deadline for the whole request
    p = s.predictor  # taken once: a live swap during the request does not change who answers it
    up = await read_upload(request)
    if up.pixels is not None:
        reading = await s.gate.run(_read_mnist, p, up.pixels, opts, explain, deadline=deadline)
    else:
        reading = await s.gate.run(_read_bytes, p, s, up.data, up.name, opts, deadline, explain, deadline=deadline)
    return JSONResponse(reading.to_dict(), headers=version_header(p))


def version_header(p) -> dict:
    """``X-Digitnet-Model-Version``: the model that answered."""
    return {"X-Digitnet-Model-Version": str(p.version)}


@api.post("/predict/batch", summary="Read several images (multipart, field `file`)", response_model=None,
          openapi_extra=BATCH_BODY,
          responses={200: {"model": list[ReadingOut]}, **errors(400, 401, 408, 413, 415, 422, 503, 504)})
async def predict_batch(request: Request, s: State, opts: Options) -> JSONResponse:
    deadline = time.monotonic() + s.limits.timeout_s  # one deadline for the whole batch, not one per file
    if _content_type(request) != "multipart/form-data":
        raise ApiError(415, "send the images as multipart/form-data, each in a field 'file'")
    p = s.predictor  # taken once: a live swap during the request does not change who answers it
    form = await _form(request, max_files=s.limits.max_batch, what="batch")
    uploads = [f for f in form.getlist("file") if not isinstance(f, str)]
    if not uploads:
        raise ApiError(422, "no images: send each in a multipart field 'file'")
    out, size = [], 0
    for upload in uploads:  # one bad file gets its own error; the others are still read
        if size > s.limits.max_response_bytes:  # the answer is big enough: the rest are named, not read
            out.append(Reading.failed(upload.filename, f"not read: the batch answer reached its "
                                                       f"{s.limits.max_response_bytes:,}-byte cap; send fewer files"
                                      ).to_dict())
            continue
        data = await upload.read()
        try:
            reading = await s.gate.run(_read_bytes, p, s, data, upload.filename, opts, deadline, deadline=deadline)
        except ApiError as e:
            if e.status in (503, 504):
                raise
            reading = Reading.failed(upload.filename, e.message)
        out.append(reading.to_dict())
        size += len(json.dumps(out[-1]))
    return JSONResponse(out, headers=version_header(p))


# ------------------------------------------------------------------------------- work (in the pool)


def _read_bytes(p: Predictor, s: ServerState, data: bytes, name: str | None, opts: ReadOptions, deadline: float,
                explain: bool = False) -> Reading:
    try:
        return p.predict_image(data, single=opts.single, top_k=opts.top_k,
                                         min_digit_score=opts.min_digit_score, file=name, with_normalized=True,
                                         max_pixels=s.limits.max_pixels, deadline=deadline, explain=explain)
    except ImageTooLargeError as e:
        raise ApiError(413, str(e)) from None
    except ImageError as e:
        raise ApiError(400, str(e)) from None
    except DeadlineExceeded:
        raise ApiError(504, "prediction did not finish before the request's deadline") from None
    except ModelOutputError as e:  # the server's fault, not the client's: say so
        raise ApiError(500, str(e)) from None


def _read_mnist(p: Predictor, image: np.ndarray, opts: ReadOptions, explain: bool = False) -> Reading:
    try:
        return p.predict_mnist_image(image, top_k=opts.top_k, with_normalized=True,
                                               min_digit_score=opts.min_digit_score, explain=explain)
    except ModelOutputError as e:
        raise ApiError(500, str(e)) from None


# ------------------------------------------------------------------------------------------ parsing


def _content_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def _form(request: Request, max_files: int, what: str = "request"):
    """The multipart form, its errors in our words (Starlette's would say one more file than the limit)."""
    try:
        return await request.form(max_files=max_files)
    except HTTPException as e:
        if "Too many files" in str(e.detail):
            raise ApiError(413, f"at most {max_files} image{'s' if max_files > 1 else ''} per {what}") from None
        raise ApiError(400, f"malformed multipart body: {e.detail}") from None


async def _json_body(request: Request) -> dict:
    try:
        body = json.loads(await request.body())
    except (ValueError, UnicodeDecodeError) as e:  # ValueError: bad JSON, or an integer of thousands of digits
        raise ApiError(400, f"invalid JSON: {e}") from None
    except RecursionError:
        raise ApiError(400, "invalid JSON: nested too deeply") from None
    if not isinstance(body, dict):
        raise ApiError(422, "JSON body must be an object")
    return body


def _pixels(value) -> np.ndarray:
    try:
        a = np.asarray(value, dtype=np.float64)
    except (ValueError, TypeError, OverflowError, RecursionError):
        raise ApiError(422, "pixels must be 28x28 nested lists or 784 numbers") from None
    if a.shape == (PIXELS,):
        a = a.reshape(IMAGE_SIZE, IMAGE_SIZE)
    if a.shape != (IMAGE_SIZE, IMAGE_SIZE):
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
