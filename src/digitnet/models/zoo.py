"""The model registry: every architecture maps (batch, 28, 28) floats in [0, 1] to (batch, 10) probabilities.

The output contract: every model ends in a linear layer named ``logits``, a ``Rescaling`` named
``temperature`` (1/T, fitted on validation data after training; 1 until then) and a ``Softmax`` named
``probabilities``. The raw logits stay reachable (logit-based scores, saliency), the calibration travels
inside the graph to every backend and export, and every export keeps the output name ``probabilities``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import keras
import numpy as np

from ..errors import ConfigError
from ..presets import ARCHS, IMAGE_SIZE, NUM_CLASSES
from .layers import FusedBatchNorm

L = keras.layers


def _inputs() -> keras.KerasTensor:
    return keras.Input((IMAGE_SIZE, IMAGE_SIZE), name="image")  # (batch, 28, 28) in [0, 1]


def _calibrated_softmax(logits: keras.KerasTensor) -> keras.KerasTensor:
    """logits / T, then the softmax: the end of every model (the output contract above)."""
    return L.Softmax(name="probabilities")(L.Rescaling(1.0, name="temperature")(logits))  # (batch, 10)


def _head(x, initializer=None) -> keras.KerasTensor:
    """The shared ending: linear logits, then the calibrated softmax."""
    return _calibrated_softmax(L.Dense(NUM_CLASSES, kernel_initializer=initializer or "glorot_uniform",
                                       name="logits")(x))


def temperature_of(model: keras.Model) -> float:
    """The temperature T a model divides its logits by (1.0 for models saved before it existed)."""
    names = {layer.name for layer in model.layers}
    return 1.0 / float(model.get_layer("temperature").scale) if "temperature" in names else 1.0


def with_temperature(model: keras.Model, temperature: float) -> keras.Model:
    """A copy of ``model`` (same weights, same layers) whose softmax divides the logits by ``temperature``."""
    if not temperature > 0:
        raise ConfigError(f"temperature must be positive, got {temperature}")
    config = model.get_config()
    layers = [c for c in config["layers"] if c["config"].get("name") == "temperature"]
    if len(layers) != 1:
        raise ConfigError(f"model {model.name!r} has no 'temperature' layer (saved before calibration existed)")
    layers[0]["config"]["scale"] = 1.0 / float(temperature)
    copy = keras.Model.from_config(config)
    copy.set_weights(model.get_weights())
    return copy


def logits_model(model: keras.Model) -> keras.Model:
    """The same network (shared weights) returning its (batch, 10) logits instead of probabilities."""
    return keras.Model(model.input, model.get_layer("logits").output, name=f"{model.name}_logits")


def cnn(width: int = 32, seed: int = 0, name: str | None = None) -> keras.Model:
    """Three 3x3 convolutions (width, 2*width, 4*width) with fused batch norm and ReLU, max-pooling,
    global average pooling and one dense layer: 95k parameters at width 32.

    Valid padding throughout: it is faster than "same" on CPU and loses nothing on centred digits.
    """
    init = keras.initializers.HeNormal
    x_in = _inputs()
    x = L.Reshape((IMAGE_SIZE, IMAGE_SIZE, 1))(x_in)  # (batch, 28, 28, 1)
    for i, filters in enumerate((width, 2 * width, 4 * width)):
        x = L.Conv2D(filters, 3, use_bias=False, kernel_initializer=init(seed + i), name=f"conv{i + 1}")(x)
        if i < 2:
            # Pool before normalizing: BN and ReLU then touch 4x fewer activations, the main CPU cost here.
            x = L.MaxPooling2D()(x)  # 26 -> 13, 11 -> 5
        x = FusedBatchNorm(name=f"bn{i + 1}")(x)
        x = L.ReLU()(x)
    x = L.GlobalAveragePooling2D()(x)  # (batch, 4 * width)
    out = _head(x, keras.initializers.GlorotUniform(seed + 9))
    return keras.Model(x_in, out, name=name or f"cnn{width}")


def mlp(hidden: Sequence[int] = (800, 800), dropout: float = 0.2, l2: float = 0.0, seed: int = 0) -> keras.Model:
    """A modern MLP: dense ReLU layers with dropout (and optional L2), then the logits and softmax."""
    reg = keras.regularizers.L2(l2) if l2 else None
    x_in = _inputs()
    x = L.Flatten()(x_in)  # (batch, 784)
    for i, units in enumerate(hidden):
        x = L.Dense(units, activation="relu", kernel_regularizer=reg,
                    kernel_initializer=keras.initializers.HeNormal(seed + i), name=f"dense{i + 1}")(x)
        if dropout:
            x = L.Dropout(dropout, seed=seed + 100 + i)(x)
    return keras.Model(x_in, _head(x), name="mlp")


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
        dense = L.Dense(W.shape[0], activation=None if i == n else "relu", name="logits" if i == n else f"dense{i}")
        x = dense(x)
        dense.set_weights([W.T, b.reshape(-1)])  # tutorial W is [current, previous]; Keras is [in, out]
    return keras.Model(x_in, _calibrated_softmax(x), name="tutorial")


def ensemble(members: Sequence[keras.Model]) -> keras.Model:
    """One model that averages the logits of ``members`` (which need unique names), then the softmax.

    Averaging logits (a normalized geometric mean of the probabilities) keeps the output contract: the
    ensemble's ``logits`` layer is still linear in its members' logits.
    """
    names = [m.name for m in members]
    if len(set(names)) != len(names):
        raise ConfigError(f"ensemble members need unique names, got {names}")
    x_in = _inputs()
    outs = [keras.Model(m.input, m.get_layer("logits").output, name=m.name)(x_in) for m in members]
    logits = L.Average(name="logits")(outs)  # (batch, 10)
    return keras.Model(x_in, _calibrated_softmax(logits), name=f"ensemble{len(members)}")


BUILDERS: dict[str, Callable[..., keras.Model]] = {"tutorial": tutorial, "mlp": mlp, "cnn": cnn}


def build(arch: str, **kwargs) -> keras.Model:
    """Build an architecture from the registry by name."""
    if arch not in BUILDERS:
        raise ConfigError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHS)}")
    return BUILDERS[arch](**kwargs)
