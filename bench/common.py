"""Helpers shared by the benchmark scripts: timing, percentiles, photos of digits, the tests' load generator."""

from __future__ import annotations

import io
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def timed(fn) -> float:
    """Seconds one call of ``fn()`` takes."""
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def run_child(args: list[str], what: str, timeout_s: float = 1800.0, env: dict | None = None
              ) -> subprocess.CompletedProcess:
    """Run a benchmark's child process to completion, its output captured; ``RuntimeError`` naming ``what``
    if it fails or is still running after ``timeout_s`` (the default covers a 15-minute ``best`` run)."""
    try:
        proc = subprocess.run(args, capture_output=True, text=True, env=env, timeout=timeout_s)
    except subprocess.TimeoutExpired as e:  # run() has killed it
        raise RuntimeError(f"{what} was still running after {timeout_s:.0f} s and was stopped") from e
    if proc.returncode != 0:
        raise RuntimeError(f"{what} failed:\n{proc.stderr[-3000:]}")
    return proc


def percentiles(seconds: list[float]) -> tuple[float, float]:
    """p50 and p99 of durations in seconds, in milliseconds."""
    a = np.asarray(seconds) * 1000
    return float(np.percentile(a, 50)), float(np.percentile(a, 99))


def load_generator():
    """``tests/loadgen.py``: the same bounded loopback load the serving tests apply (benchmarks may use
    test helpers; tests never import from bench/)."""
    sys.path.insert(0, str(ROOT / "tests"))
    import loadgen

    return loadgen


def photo(digit: np.ndarray, rng, colour: bool = False) -> bytes:
    """A 1000x1000 JPEG 'photo': ink on paper with a lighting gradient and noise; grey (dark ink on grey
    paper) or colour (blue ink on cream paper)."""
    from PIL import Image

    ink = np.asarray(Image.fromarray(digit).resize((600, 600), Image.Resampling.BICUBIC), np.float32) / 255
    light = np.full((1000, 1000), 1.0, np.float32) - np.linspace(0, 0.35, 1000)[None, :]
    paper = np.array([0.95, 0.9, 0.75] if colour else [0.85, 0.85, 0.85], np.float32)
    pen = np.array([0.15, 0.2, 0.6] if colour else [0.15, 0.15, 0.15], np.float32)
    alpha = np.zeros((1000, 1000, 1), np.float32)
    alpha[200:800, 250:850, 0] = ink.clip(0, 1)
    page = (paper * (1 - alpha) + pen * alpha) * light[..., None]
    page += rng.normal(0, 0.03, page.shape[:2])[..., None]
    buf = io.BytesIO()
    Image.fromarray((page.clip(0, 1) * 255).astype(np.uint8), "RGB").save(buf, format="JPEG", quality=85)
    return buf.getvalue()
