"""Inference speed: single-image latency, batch throughput, preprocessing, decode and CLI cold start.

Every figure is measured in this one run next to its reference (Keras ``model.predict`` on the same
model), so the ratios hold on a shared, noisy machine.

    python bench/inference_speed.py [--model DIR] [--repeat 2000]
"""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from common import percentiles, photo, timed  # bench/ is on the path when this script runs


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="model directory or .keras file (default: the default model)")
    p.add_argument("--repeat", type=int, default=2000, help="single-image calls to time (default: 2000)")
    p.add_argument("--backend", help="Predictor backend (default: digitnet's default)")
    args = p.parse_args()

    from PIL import Image

    from digitnet.data import load_mnist
    from digitnet.inference import Predictor
    from digitnet.preprocessing import ink_map, segment, working

    (_, _), (x_test, _) = load_mnist()
    predictor = Predictor.load(args.model, **({"backend": args.backend} if args.backend else {}))
    model = predictor.model
    rows = []

    # Single image, preprocessing excluded.
    one = x_test[:1]
    for _ in range(50):
        predictor.predict_proba(one)
    ours = []
    for i in range(args.repeat):
        t = time.perf_counter()
        predictor.predict_proba(x_test[i % 10000 : i % 10000 + 1])
        ours.append(time.perf_counter() - t)
    x1 = x_test[:1].astype(np.float32) / 255
    for _ in range(5):
        model.predict(x1, verbose=0)
    keras_single = []
    for _ in range(100):
        t = time.perf_counter()
        model.predict(x1, verbose=0)
        keras_single.append(time.perf_counter() - t)
    (p50, p99), (k50, k99) = percentiles(ours), percentiles(keras_single)
    rows.append(("single image latency p50 / p99 (ms)", f"{p50:.3f} / {p99:.3f}", f"{k50:.1f} / {k99:.1f}",
                 f"{k50 / p50:.0f}x faster (p50)"))

    # Batch throughput on the 10k test set.
    xf = x_test.astype(np.float32) / 255
    predictor.predict_proba(x_test)
    model.predict(xf, batch_size=1024, verbose=0)
    best_ours = min(timed(lambda: predictor.predict_proba(x_test)) for _ in range(3))
    best_keras = min(timed(lambda: model.predict(xf, batch_size=1024, verbose=0)) for _ in range(3))
    rows.append(("10k test set throughput (img/s)", f"{10000 / best_ours:,.0f}", f"{10000 / best_keras:,.0f}",
                 f"{best_keras / best_ours:.2f}x"))

    # Preprocessing of a 1000x1000 photo, decode reported on its own.
    rng = np.random.default_rng(0)
    for kind in ("grey", "colour"):
        jpg = photo(x_test[0], rng, colour=kind == "colour")
        decode_t, prep_t, ink_t = [], [], []
        for _ in range(30):
            t = time.perf_counter()
            im = Image.open(io.BytesIO(jpg))
            im.load()  # the decode: Pillow's JPEG decoder
            decode_t.append(time.perf_counter() - t)
            t = time.perf_counter()
            seg = segment(im)  # everything after the decode: shrink, ink map, segmentation, normalization
            prep_t.append(time.perf_counter() - t)
            pixels, _, _ = working(im)
            t = time.perf_counter()
            ink_map(pixels)
            ink_t.append(time.perf_counter() - t)
        digits = len(seg.digits)
        rows.append((f"1000x1000 {kind} JPEG decode (ms, p50)", f"{percentiles(decode_t)[0]:.1f}", "", ""))
        rows.append((f"1000x1000 {kind} photo preprocessing, excl. decode (ms, p50)", f"{percentiles(prep_t)[0]:.1f}",
                     "", f"ink map {percentiles(ink_t)[0]:.1f}; {digits} digit found"))

    # CLI cold start: a fresh process reading one PNG.
    with tempfile.TemporaryDirectory() as tmp:
        from PIL import Image

        png = Path(tmp) / "one.png"
        Image.fromarray(255 - x_test[0]).resize((112, 112)).save(png)
        cmd = [sys.executable, "-m", "digitnet", "predict", str(png)] + (["--model", args.model] if args.model else [])
        times = []
        for _ in range(3):
            t = time.perf_counter()
            subprocess.run(cmd, capture_output=True, check=True)
            times.append(time.perf_counter() - t)
    rows.append(("CLI cold start: digitnet predict one.png (s, best of 3)", f"{min(times):.2f}", "", ""))

    print(f"model: {predictor.path}, backend: {predictor.backend}")
    print(f"| measure | digitnet Predictor ({predictor.backend}) | Keras model.predict | ratio |")
    print("|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
