"""The learning routes: ``/api/samples`` (the user's corrections) and ``/api/personalize`` (the job).

Both sit under the token when one is set, and answer 403 on a server listening beyond loopback without
one (``check_learning``). The store is ``$DIGITNET_HOME/samples`` (``digitnet.samples``); the job runs as
a ``digitnet personalize`` process, one at a time across processes (``digitnet.versions``), and every
``serve`` process of the default model swaps its result in (``swap.py``).
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse

from .. import config, versions
from ..errors import ImageError, ImageTooLargeError, InputError, SampleCapError
from ..samples import SampleStore, check_label
from .deps import ApiError, ServerState, check_learning, check_token, state
from .routes import PREDICT_BODY, read_upload
from .schemas import PersonalizeOut, SampleOut, SamplesOut, errors

State = Annotated[ServerState, Depends(state)]
api = APIRouter(prefix="/api", dependencies=[Depends(check_token), Depends(check_learning)])
_jobs: list[subprocess.Popen] = []  # reaped by their own threads; kept so a job is never a zombie
_start = threading.Lock()


@api.post("/samples", summary="Save a corrected digit as a sample of your handwriting", status_code=201,
          response_model=SampleOut, openapi_extra=PREDICT_BODY,
          responses={200: {"model": SampleOut, "description": "already stored (same image, same label)"},
                     **errors(400, 401, 403, 409, 413, 415, 422, 503, 504)},
          description="The same image forms as `/api/predict`, plus `label` (0-9) as a form field or JSON key. "
                      "`pixels` (the `normalized` image of the answer being corrected) are stored as they are; "
                      "an uploaded image is read like `/api/predict`, and with several marks needs `index` "
                      "(0-based, reading order). The 28x28 image the model saw is stored, never the upload.")
async def add_sample(request: Request, response: Response, s: State):
    deadline = time.monotonic() + s.limits.timeout_s
    up = await read_upload(request)
    fields = up.fields or {}
    try:
        label = check_label(fields.get("label"))
    except InputError as e:
        raise ApiError(422, str(e)) from None
    image = up.pixels if up.pixels is not None else \
        await s.gate.run(_mark, s, up.data, fields.get("index"), deadline, deadline=deadline)
    try:
        sid, new = SampleStore().add(image, label)
    except SampleCapError as e:
        raise ApiError(409, str(e), code="sample_cap") from None
    except InputError as e:
        raise ApiError(422, str(e)) from None
    response.status_code = 201 if new else 200
    return {"id": sid, "label": label}


def _mark(s: ServerState, data: bytes, index, deadline: float):
    """The normalized 28x28 of one mark of an uploaded image (``index`` in reading order, needed with several)."""
    from ..preprocessing import segment

    try:
        seg = segment(data, max_pixels=s.limits.max_pixels, deadline=deadline)
    except ImageTooLargeError as e:
        raise ApiError(413, str(e)) from None
    except ImageError as e:
        raise ApiError(400, str(e)) from None
    if not seg.digits:
        raise ApiError(422, f"no digit in the image ({seg.reason})")
    if index is None:
        if len(seg.digits) > 1:
            raise ApiError(422, f"the image holds {len(seg.digits)} marks: give 'index' (0-{len(seg.digits) - 1}, "
                                "in reading order) to say which one the label is for")
        index = 0
    try:
        index = int(index)
    except (TypeError, ValueError):
        raise ApiError(422, f"index must be a whole number, got {index!r}") from None
    if not 0 <= index < len(seg.digits):
        raise ApiError(422, f"index {index} is out of range: the image holds {len(seg.digits)} marks")
    return seg.digits[index].image


@api.get("/samples", summary="Your samples: counts per digit and ids", response_model=SamplesOut,
         responses=errors(401, 403))
async def list_samples():
    store = SampleStore()
    counts = store.counts()
    return {"counts": counts, "total": sum(counts.values()), "samples": store.list()}


@api.delete("/samples/{sample_id}", summary="Delete one sample", status_code=204, responses=errors(401, 403, 404, 422))
async def delete_sample(sample_id: str):
    try:
        found = SampleStore().delete(sample_id)
    except InputError as e:
        raise ApiError(422, str(e)) from None
    if not found:
        raise ApiError(404, f"no sample {sample_id}")
    return Response(status_code=204)


@api.delete("/samples", summary="Delete every sample", responses=errors(401, 403))
async def delete_samples():
    return {"deleted": SampleStore().clear()}


@api.post("/personalize", summary="Start fine-tuning the default model on your samples", status_code=202,
          response_model=PersonalizeOut, responses=errors(401, 403, 409))
async def start_personalize():
    with _start:  # one start at a time in this process; the job's own lock covers other processes
        if versions.is_locked() or any(p.poll() is None for p in _jobs):
            raise ApiError(409, "a personalization job is already running", code="busy")
        versions.write_status(state="starting", progress=0.0, before=None, after=None, version=None, error=None,
                              message="starting")
        proc = subprocess.Popen([sys.executable, "-m", "digitnet", "--quiet", "personalize"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
        _jobs.append(proc)
        threading.Thread(target=_reap, args=(proc, config.home()), daemon=True).start()
    return JSONResponse(versions.read_status(), status_code=202)


def _reap(proc: subprocess.Popen, home) -> None:
    """Wait for the job; if it failed before it could say why (bad samples, no data), say it for it."""
    _, err = proc.communicate()
    _jobs.remove(proc)
    if proc.returncode != 0 and versions.read_status(home)["state"] in ("starting", "running", "failed"):
        lines = [line for line in (err or b"").decode(errors="replace").splitlines() if line.startswith("digitnet:")]
        message = lines[-1].removeprefix("digitnet: error: ") if lines else f"exit status {proc.returncode}"
        versions.write_status(home, state="failed", error=message)


@api.get("/personalize", summary="The personalization job's state", response_model=PersonalizeOut,
         responses=errors(401, 403))
async def personalize_status():
    return versions.read_status()
