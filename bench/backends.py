"""Inference backends on the same model: TensorFlow, ONNX Runtime, TFLite and int8 TFLite, each through
``Predictor.load(..., backend=...)`` (the conversions are cached in $DIGITNET_HOME/cache).

    python bench/backends.py [--model DIR]

Prints single-image latency (p50/p99) and 10k-batch throughput for each, measured in this one run.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="model directory or .keras file (default: the default model)")
    p.add_argument("--repeat", type=int, default=2000, help="single-image calls (default: 2000)")
    args = p.parse_args()

    from common import timed  # bench/ is on the path when this script runs
    from digitnet.data import load_mnist
    from digitnet.inference import Predictor
    from digitnet.presets import BACKENDS

    (_, _), (x_test, y_test) = load_mnist()
    xf = x_test.astype(np.float32) / 255
    predictors = {b: Predictor.load(args.model, backend=b) for b in ("tf", *(b for b in BACKENDS if b != "tf"))}
    model = predictors["tf"].model
    model.predict(xf, batch_size=1024, verbose=0)
    keras_tput = 10000 / min(timed(lambda: model.predict(xf, batch_size=1024, verbose=0)) for _ in range(3))
    rows = []
    for name, p in predictors.items():
        fn = p.predict_proba
        for _ in range(50):
            fn(xf[:1])
        lat = []
        for i in range(args.repeat):
            t = time.perf_counter()
            fn(xf[i % 10000 : i % 10000 + 1])
            lat.append(time.perf_counter() - t)
        fn(xf)
        best = min(timed(lambda fn=fn: fn(xf)) for _ in range(3))
        ms = np.array(lat) * 1000
        acc = float((fn(xf).argmax(1) == y_test).mean())
        rows.append((name, np.percentile(ms, 50), np.percentile(ms, 99), 10000 / best, acc))
    print(f"model: {predictors['tf'].path}; Keras model.predict(batch_size=1024): {keras_tput:,.0f} img/s")
    print("| backend | single p50 ms | single p99 ms | 10k batch img/s | vs model.predict | test accuracy |")
    print("|---|---|---|---|---|---|")
    for name, p50, p99, tput, acc in rows:
        print(f"| {name} | {p50:.3f} | {p99:.3f} | {tput:,.0f} | {tput / keras_tput:.2f}x | {acc * 100:.2f}% |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
