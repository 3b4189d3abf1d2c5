"""Helpers shared by the benchmark scripts: timing, percentiles, and the test suite's load generator."""

from __future__ import annotations

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
