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


def reference(x_train, y_train, x_test, y_test, clock: Clock) -> tuple[float, float]:
    """keras-io examples/vision/mnist_convnet.py, rewritten: the same model, batch 128, Adam, 15 epochs,
    validation_split=0.1. Returns (final accuracy, when fit started)."""
    import keras
    from keras import layers

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


def main() -> int:
    args = json.loads(sys.argv[1])
    from digitnet.data import load_mnist

    (x_train, y_train), (x_test, y_test) = load_mnist()
    clock = Clock()
    if args["run"] == "reference":
        final, fit_start = reference(x_train, y_train, x_test, y_test, clock)
    else:
        final, fit_start = digitnet_preset(args, x_test, y_test, clock), 0.0
    print(json.dumps({"final": final, "fit_start": fit_start, "eval_seconds": clock.eval_seconds}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
