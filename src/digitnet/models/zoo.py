"""The model registry: every architecture takes (batch, 28, 28) floats in [0, 1] (white ink on black,
MNIST-style) and returns (batch, 10) softmax probabilities."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import keras
import numpy as np

from .layers import FusedBatchNorm

L = keras.layers
ARCHS = ("tutorial", "mlp", "cnn")


def _inputs() -> keras.KerasTensor:
    return keras.Input((28, 28), name="image")  # (batch, 28, 28) in [0, 1]


def cnn(width: int = 32, seed: int = 0, name: str | None = None) -> keras.Model:
    """Three 3x3 convolutions (width, 2*width, 4*width) with fused batch norm and ReLU, max-pooling,
    global average pooling and one dense layer: 95k parameters at width 32.

    Valid padding throughout: it is faster than "same" on CPU and loses nothing on centred digits.
    """
    init = keras.initializers.HeNormal
    x_in = _inputs()
    x = L.Reshape((28, 28, 1))(x_in)  # (batch, 28, 28, 1)
    for i, filters in enumerate((width, 2 * width, 4 * width)):
        x = L.Conv2D(filters, 3, use_bias=False, kernel_initializer=init(seed + i), name=f"conv{i + 1}")(x)
        if i < 2:
            # Pool before normalizing: BN and ReLU then touch 4x fewer activations, the main CPU cost here.
            x = L.MaxPooling2D()(x)  # 26 -> 13, 11 -> 5
        x = FusedBatchNorm(name=f"bn{i + 1}")(x)
        x = L.ReLU()(x)
    x = L.GlobalAveragePooling2D()(x)  # (batch, 4 * width)
    out = L.Dense(10, activation="softmax", kernel_initializer=keras.initializers.GlorotUniform(seed + 9),
                  name="probabilities")(x)
    return keras.Model(x_in, out, name=name or f"cnn{width}")


def mlp(hidden: Sequence[int] = (800, 800), dropout: float = 0.2, l2: float = 0.0, seed: int = 0) -> keras.Model:
    """A modern MLP: dense ReLU layers with dropout (and optional L2), softmax output."""
    reg = keras.regularizers.L2(l2) if l2 else None
    x_in = _inputs()
    x = L.Flatten()(x_in)  # (batch, 784)
    for i, units in enumerate(hidden):
        x = L.Dense(units, activation="relu", kernel_regularizer=reg,
                    kernel_initializer=keras.initializers.HeNormal(seed + i), name=f"dense{i + 1}")(x)
        if dropout:
            x = L.Dropout(dropout, seed=seed + 100 + i)(x)
    out = L.Dense(10, activation="softmax", name="probabilities")(x)
    return keras.Model(x_in, out, name="mlp")


def tutorial(parameters: dict | None = None, layout: dict | None = None, seed: int = 1) -> keras.Model:
    """The tutorial's MLP (ReLU hidden layers, softmax output) as a Keras model on [0, 1] inputs.

    Give ``parameters`` from :func:`digitnet.train_parameters` (which take raw 0-255 pixels) to wrap a
    trained network: the x255 is folded back into ``W1``. Otherwise the weights come from
    :func:`digitnet.initialize_parameters` with ``layout`` (default: the tutorial's).
    """
    from .tutorial import TUTORIAL_LAYOUT, initialize_parameters

    if parameters is None:
        layout = layout or TUTORIAL_LAYOUT
        parameters = {k: v.numpy() for k, v in initialize_parameters(layout, seed=seed).items()}
    else:
        parameters = dict(parameters, W1=np.asarray(parameters["W1"]) * 255.0)  # raw pixels -> [0, 1]
    n = len(parameters) // 2
    x_in = _inputs()
    x = L.Flatten()(x_in)  # (batch, 784)
    for i in range(1, n + 1):
        W, b = np.asarray(parameters[f"W{i}"]), np.asarray(parameters[f"b{i}"])
        dense = L.Dense(W.shape[0], activation="softmax" if i == n else "relu",
                        name="probabilities" if i == n else f"dense{i}")
        x = dense(x)
        dense.set_weights([W.T, b.reshape(-1)])  # tutorial W is [current, previous]; Keras is [in, out]
    return keras.Model(x_in, x, name="tutorial")


def ensemble(members: Sequence[keras.Model]) -> keras.Model:
    """One model that averages the probabilities of ``members`` (which need unique names)."""
    names = [m.name for m in members]
    if len(set(names)) != len(names):
        raise ValueError(f"ensemble members need unique names, got {names}")
    x_in = _inputs()
    outs = [m(x_in) for m in members]
    return keras.Model(x_in, L.Average(name="probabilities")(outs), name=f"ensemble{len(members)}")


BUILDERS: dict[str, Callable[..., keras.Model]] = {"tutorial": tutorial, "mlp": mlp, "cnn": cnn}


def build(arch: str, **kwargs) -> keras.Model:
    """Build an architecture from the registry by name."""
    if arch not in BUILDERS:
        raise ValueError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHS)}")
    return BUILDERS[arch](**kwargs)
