"""Saliency sanity checks in one table: the shipped method against alternatives and a map that copies the input.

    python bench/saliency.py                       # the shipped model, MNIST test digits (reporting)
    python bench/saliency.py --split validation    # for choosing a method: validation digits only

Columns (see ``tests/sanity.py``): the mean Spearman correlation over ink pixels between the maps of the
model and of the same architecture re-initialized (lower is better; the test asserts < 0.5), and the
deletion ratios against random ink pixels and random pixels anywhere (higher is better; >= 1.3 and >= 3).
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from common import ROOT

sys.path.insert(0, str(ROOT / "tests"))
import sanity  # noqa: E402  (the tests' measures: one definition for tests and bench)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None, help="model directory or .keras file (default: the shipped model)")
    p.add_argument("--split", choices=("test", "validation"), default="test", help="(default: test)")
    p.add_argument("--randomization", type=int, default=100, help="digits for model randomization (default: 100)")
    p.add_argument("--deletion", type=int, default=200, help="digits for deletion (default: 200)")
    args = p.parse_args()

    import keras

    from digitnet.data import load_mnist
    from digitnet.explain import Explainer, to_saliency
    from digitnet.inference import Predictor, shipped_model_path
    from digitnet.training import split_validation

    (x_train, y_train), (x_test, y_test) = load_mnist()
    x, _ = (x_test, y_test) if args.split == "test" else split_validation(x_train, y_train)[1]
    model = Predictor.load(args.model or shipped_model_path(), backend="tf").model
    random_model = keras.models.clone_model(model)  # same architecture, freshly initialized weights
    trained, rand = Explainer(model), Explainer(random_model)

    def proba(v):
        return np.asarray(model.predict_on_batch(v)["probabilities"])

    n = max(args.randomization, args.deletion)
    xs = x[:n].astype(np.float32) / 255
    pred = proba(xs).argmax(1)
    t0 = time.perf_counter()
    ig, ig_random = trained.attributions(xs, pred), rand.attributions(xs, pred)
    seconds = (time.perf_counter() - t0) / (2 * n)
    grads = {e: e.attributions(xs, pred) / np.where(xs > 0, xs, 1) for e in (trained, rand)}  # IG / x: mean gradient
    methods = {
        "integrated gradients, positive part (shipped)": (to_saliency(ig), to_saliency(ig_random)),
        "integrated gradients, absolute value": (to_saliency(np.abs(ig)), to_saliency(np.abs(ig_random))),
        "path-mean gradient, positive part": (to_saliency(grads[trained]), to_saliency(grads[rand])),
        "the input itself (a map that ignores the model)": (to_saliency(xs), to_saliency(xs)),
    }
    k, m = args.randomization, args.deletion
    print(f"model {model.name}, {args.split} digits ({k} for randomization, {m} for deletion), "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {seconds * 1000:.1f} ms per map (one class)\n")
    print("| method | randomization: mean Spearman (< 0.5) | deletion vs random ink (>= 1.3) | "
          "deletion vs random pixels (>= 3) |\n|---|---|---|---|")
    for name, (maps, random_maps) in methods.items():
        rho = sanity.randomization(maps[:k], random_maps[:k], x[:k])
        d = sanity.deletion(proba, x[:m], maps[:m])
        print(f"| {name} | {rho:.3f} | {d['vs_ink']:.2f}x | {d['vs_random']:.2f}x |")

    # What an explanation adds to a reading, in the same run: one MNIST-form digit, median of 30 calls.
    from common import percentiles

    reader = Predictor.load(args.model or shipped_model_path())  # the default backend, as the server runs it
    image = x[0]
    reader.predict_mnist_image(image, explain=True)  # warm: converts/loads, traces the gradient function
    rows = []
    for label, kwargs in (("read (tflite)", {}), ("read + explain, all 10 classes", {"explain": True})):
        times = []
        for _ in range(30):
            t = time.perf_counter()
            reader.predict_mnist_image(image, **kwargs)
            times.append(time.perf_counter() - t)
        rows.append((label, *percentiles(times)))
    print("\n| one digit | p50 ms | p99 ms |\n|---|---|---|")
    for label, p50, p99 in rows:
        print(f"| {label} | {p50:.1f} | {p99:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
