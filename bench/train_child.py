"""One training run for bench/train_speed.py, in its own process: prints a JSON line per epoch, then one at the end.

    python bench/train_child.py '{"run": "fast", "arch": "cnn", "preset": "fast", "seed": 0, "out": "/tmp/x"}'

``run`` "reference" trains our rewrite of keras-io's ``mnist_convnet``; anything else trains a digitnet
preset. After each epoch the test set is scored; that evaluation is timed and reported, so the parent
can subtract it from every time it reports.
"""

from __future__ import annotations

import json
import sys
import time

T0 = time.time()  # the process's own start, as near as a script can get


class Clock:
    """Reports each epoch's test accuracy at the time the epoch ended, minus the evaluations so far."""

    def __init__(self):
        self.eval_seconds = 0.0

    def report(self, epoch: int, accuracy: float, t_end: float) -> None:
        print(json.dumps({"epoch": epoch, "test_accuracy": accuracy, "t": t_end - T0 - self.eval_seconds}),
              flush=True)
        self.eval_seconds += time.time() - t_end


def reference(x_train, y_train, x_test, y_test, clock: Clock, seed: int) -> tuple[float, float]:
    """keras-io examples/vision/mnist_convnet.py, rewritten: the same model, batch 128, Adam, 15 epochs,
    validation_split=0.1. Returns (final accuracy, when fit started)."""
    import keras
    from keras import layers

    # Seeded (the example is not): its accuracy curve, and so the epoch that first reaches 99.0%, is the same in
    # every run; unseeded, that epoch moved its time to 99.0% from 69 to 95 s within 20 minutes.
    keras.utils.set_random_seed(seed)

    x = (x_train.astype("float32") / 255)[..., None]  # (60000, 28, 28, 1)
    xt = (x_test.astype("float32") / 255)[..., None]
    y = keras.utils.to_categorical(y_train, 10)
    model = keras.Sequential([
        keras.Input(shape=(28, 28, 1)),
        layers.Conv2D(32, kernel_size=(3, 3), activation="relu"), layers.MaxPooling2D(pool_size=(2, 2)),
        layers.Conv2D(64, kernel_size=(3, 3), activation="relu"), layers.MaxPooling2D(pool_size=(2, 2)),
        layers.Flatten(), layers.Dropout(0.5), layers.Dense(10, activation="softmax"),
    ])
    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    fit_start = time.time() - T0
    acc = 0.0
    for epoch in range(15):
        model.fit(x, y, batch_size=128, initial_epoch=epoch, epochs=epoch + 1, validation_split=0.1, verbose=0)
        t_end = time.time()
        acc = float((model.predict(xt, batch_size=1000, verbose=0).argmax(1) == y_test).mean())
        clock.report(epoch + 1, acc, t_end)
    return acc, fit_start


def digitnet_preset(args: dict, x_test, y_test, clock: Clock) -> float:
    """A digitnet preset through ``train()``, scored after each epoch on the Keras model itself."""
    from digitnet.inference import Predictor
    from digitnet.presets import make_config
    from digitnet.training import train

    def hook(epoch, model):
        t_end = time.time()
        acc = float((Predictor(model, backend="tf").predict(x_test) == y_test).mean())
        clock.report(epoch, acc, t_end)

    metrics = train(make_config(args["arch"], args["preset"], seed=args["seed"]), args["out"], on_epoch_end=hook)
    return metrics["test"]["accuracy"]


def forward_flops(model) -> int:
    """Multiply-adds x 2 of one image's forward pass through the convolutions and dense layers (the rest,
    batch norm, pooling and activations, is a few percent)."""
    import keras

    def walk(m):  # the layers, inside nested models too (an ensemble's members)
        for layer in m.layers:
            yield from walk(layer) if hasattr(layer, "layers") else [layer]

    flops = 0
    for layer in walk(model):
        if isinstance(layer, keras.layers.Conv2D):
            _, h, w, c_out = layer.output.shape
            kh, kw = layer.kernel_size
            flops += 2 * h * w * kh * kw * layer.input.shape[-1] * c_out
        elif isinstance(layer, keras.layers.Dense):
            flops += 2 * layer.input.shape[-1] * layer.units
    return flops


def peak_flops(n: int = 2048, repeat: int = 10) -> float:
    """The machine's float32 FLOP/s on a large matmul, through the same TensorFlow (best of ``repeat``)."""
    import tensorflow as tf

    a = tf.random.normal((n, n))
    matmul = tf.function(lambda a: tf.linalg.matmul(a, a))
    matmul(a).numpy()
    best = min(_timed(lambda: matmul(a).numpy()) for _ in range(repeat))
    return 2 * n**3 / best


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def breakdown(args: dict) -> dict:
    """Where one preset's whole process spends its time: imports, then train()'s own phases and epochs,
    plus the achieved training FLOP/s against a large matmul's in the same process."""
    imports_start = time.time()
    import keras  # noqa: F401  (timed: the imports are a phase)

    from digitnet.presets import make_config
    from digitnet.training import train

    imports = time.time() - imports_start
    cfg = make_config(args["arch"], args["preset"], seed=args["seed"])
    metrics = train(cfg, args["out"])
    trained = time.time()
    from digitnet.models.saving import load_model

    flops = 3 * forward_flops(load_model(f"{args['out']}/model.keras"))  # training: forward and twice it back
    images = (metrics["dataset"]["train"] // cfg.batch_size) * cfg.batch_size  # per epoch, all full batches
    return {"process_start_to_imports": imports_start - T0, "imports": imports,
            "phases": metrics["training"]["phases"], "history": metrics["training"]["history"][0],
            "train_flops_per_epoch": flops * images, "peak_flops": peak_flops(),
            "accuracy": metrics["test"]["accuracy"], "wall": trained - T0,
            "bench_seconds": time.time() - trained}  # the FLOP counts: not part of the run


def main() -> int:
    args = json.loads(sys.argv[1])
    if args.get("breakdown"):
        print(json.dumps(breakdown(args)), flush=True)
        return 0
    from digitnet.data import load_mnist

    (x_train, y_train), (x_test, y_test) = load_mnist()
    clock = Clock()
    if args["run"] == "reference":
        final, fit_start = reference(x_train, y_train, x_test, y_test, clock, args["seed"])
    else:
        final, fit_start = digitnet_preset(args, x_test, y_test, clock), 0.0
    print(json.dumps({"final": final, "fit_start": fit_start, "eval_seconds": clock.eval_seconds}), flush=True)
    return 0


if __name__ == "__main__":
    status = main()
    import gc

    gc.freeze()  # exit as the `digitnet` command does (cli.entry): no final walk of TensorFlow's objects
    sys.exit(status)
