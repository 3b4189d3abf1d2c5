"""Inference backends on the same model: the TF Predictor, ONNX Runtime and the TFLite interpreter.

    python bench/backends.py [--model DIR]

Prints single-image latency (p50/p99) and 10k-batch throughput for each, measured in this one run.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="model directory or .keras file (default: the default model)")
    p.add_argument("--repeat", type=int, default=2000, help="single-image calls (default: 2000)")
    args = p.parse_args()

    from digitnet.data import load_mnist
    from digitnet.export import OnnxRunner, TFLiteRunner, export_onnx, export_tflite
    from digitnet.inference import Predictor

    (_, _), (x_test, _) = load_mnist()
    xf = x_test.astype(np.float32) / 255
    predictor = Predictor.load(args.model)
    with tempfile.TemporaryDirectory() as tmp:
        runners = {
            "tf (Predictor)": predictor.predict_proba,
            "onnxruntime": OnnxRunner(export_onnx(predictor.model, Path(tmp))).predict_proba,
            "tflite": TFLiteRunner(export_tflite(predictor.model, Path(tmp))).predict_proba,
        }
        rows = []
        for name, fn in runners.items():
            for _ in range(50):
                fn(xf[:1])
            lat = []
            for i in range(args.repeat):
                t = time.perf_counter()
                fn(xf[i % 10000 : i % 10000 + 1])
                lat.append(time.perf_counter() - t)
            fn(xf)
            best = min(_timed(lambda fn=fn: fn(xf)) for _ in range(3))
            ms = np.array(lat) * 1000
            rows.append((name, np.percentile(ms, 50), np.percentile(ms, 99), 10000 / best))
    base = rows[0]
    print(f"model: {predictor.path}")
    print("| backend | single p50 ms | single p99 ms | 10k batch img/s | throughput vs tf |")
    print("|---|---|---|---|---|")
    for name, p50, p99, tput in rows:
        print(f"| {name} | {p50:.3f} | {p99:.3f} | {tput:,.0f} | {tput / base[3]:.2f}x |")
    return 0


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


if __name__ == "__main__":
    sys.exit(main())
