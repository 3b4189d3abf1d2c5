"""The model registry: every architecture maps (batch, 28, 28) floats in [0, 1] to digit probabilities and a score.

The output contract: a model returns a dict, ``probabilities`` (batch, 10) and ``digit_score`` (batch, 1),
its belief that the image is a digit at all. The probabilities come from a linear layer named ``logits``,
a ``Rescaling`` named ``temperature`` (1/T, fitted on validation data after training; 1 until then) and a
``Softmax`` named ``probabilities``; the digit score from a linear ``digit_logit`` and a sigmoid. The raw
logits stay reachable (saliency, calibration), the calibration travels inside the graph to every backend
and export, and every export keeps the output names. Training uses :func:`training_view`: both linear
heads side by side, (batch, 11), for :class:`~digitnet.models.layers.DigitLoss`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import keras
import numpy as np

from ..errors import ConfigError
from ..presets import ARCHS, IMAGE_SIZE, NUM_CLASSES, SCORE_GRADIENT
from .layers import FusedBatchNorm, GradientScale

L = keras.layers


def _inputs() -> keras.KerasTensor:
    return keras.Input((IMAGE_SIZE, IMAGE_SIZE), name="image")  # (batch, 28, 28) in [0, 1]


def _saturate(x: keras.KerasTensor) -> keras.KerasTensor:
    """x 1.15, clipped at 1: the cores of every stroke saturate, as in MNIST, whatever made the image
    (an MNIST scan, a photo through ``preprocessing.to_mnist``, a canvas), so all reach the network alike."""
    return L.ReLU(max_value=1.0, name="clip")(L.Rescaling(1.15, name="saturate")(x))


def _calibrated_softmax(logits: keras.KerasTensor) -> keras.KerasTensor:
    """logits / T, then the softmax (the output contract above)."""
    return L.Softmax(name="probabilities")(L.Rescaling(1.0, name="temperature")(logits))  # (batch, 10)


def _finish(x_in, logits: keras.KerasTensor, digit_logit: keras.KerasTensor | None, name: str) -> keras.Model:
    """The shipped model from its two linear heads (a model with no digit head returns probabilities only)."""
    outputs = {"probabilities": _calibrated_softmax(logits)}
    if digit_logit is not None:
        outputs["digit_score"] = L.Activation("sigmoid", name="digit_score")(digit_logit)  # (batch, 1)
    return keras.Model(x_in, outputs, name=name)


def _heads(x, seed: int, initializer=None, score_input=None) -> tuple[keras.KerasTensor, keras.KerasTensor]:
    """The shared ending: linear digit logits (batch, 10) and a linear digit-or-not logit (batch, 1), the
    latter on ``score_input`` if given (the same features through a layer), else on ``x``."""
    logits = L.Dense(NUM_CLASSES, kernel_initializer=initializer or "glorot_uniform", name="logits")(x)
    digit = L.Dense(1, kernel_initializer=keras.initializers.GlorotUniform(seed + 11), name="digit_logit")
    return logits, digit(x if score_input is None else score_input)


def has_digit_head(model: keras.Model) -> bool:
    return any(layer.name == "digit_logit" for layer in model.layers)


def training_view(model: keras.Model) -> keras.Model:
    """The same network (shared weights) returning both linear heads side by side, (batch, 11)."""
    heads = [model.get_layer("logits").output, model.get_layer("digit_logit").output]
    return keras.Model(model.input, L.Concatenate(name="heads")(heads), name=model.name)


def shipped_view(model: keras.Model) -> keras.Model:
    """The model of the output contract over a training view's (or any model's) layers, temperature 1."""
    digit = model.get_layer("digit_logit").output if has_digit_head(model) else None
    return _finish(model.input, model.get_layer("logits").output, digit, model.name)


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


def cnn(width: int = 32, seed: int = 0, name: str | None = None, score_gradient: float = SCORE_GRADIENT
        ) -> keras.Model:
    """Three convolutions, 5x5 then two 3x3 (width, 2*width, 8*width), with fused batch norm and ReLU,
    max-pooling, global average pooling and the two linear heads: 171k parameters at width 32.

    Padding is valid throughout: every map is as small as it can be and no pooling drops a row or a column.
    The digit-score head sends only ``score_gradient`` of its gradient into the shared layers (see GradientScale).
    """
    init = keras.initializers.HeNormal
    x_in = _inputs()
    x = L.Reshape((IMAGE_SIZE, IMAGE_SIZE, 1))(_saturate(x_in))  # (batch, 28, 28, 1)
    # A 5x5 first convolution sees the whole image and gives the same 24x24 maps as cutting off the outer pixel
    # ring before a 3x3 one did: over 10 seeds, +0.041 points on validation by writer, for 1.02-1.04x the
    # training step (docs/PERFORMANCE.md).
    # The third convolution is the cheapest place for capacity (its output is 3x3). With the quarter gradient,
    # 8*width gave +0.1 points of validation accuracy over 5 seeds and rejected more non-digits, for 1.05-1.09x
    # the time (docs/PERFORMANCE.md).
    for i, filters in enumerate((width, 2 * width, 8 * width)):
        x = L.Conv2D(filters, 5 if i == 0 else 3, use_bias=False, kernel_initializer=init(seed + i),
                     name=f"conv{i + 1}")(x)  # (batch, 24, 24, width), (10, 10, 2 * width), (3, 3, 8 * width)
        if i < 2:
            # Pool before normalizing: BN and ReLU then touch 4x fewer activations, the main CPU cost here.
            x = L.MaxPooling2D()(x)  # 24 -> 12, 10 -> 5
        x = FusedBatchNorm(name=f"bn{i + 1}")(x)
        x = L.ReLU()(x)
    x = L.GlobalAveragePooling2D()(x)  # (batch, 8 * width)
    score_input = GradientScale(score_gradient, name="score_gradient")(x)
    return _finish(x_in, *_heads(x, seed, keras.initializers.GlorotUniform(seed + 9), score_input),
                   name or f"cnn{width}")


def mlp(hidden: Sequence[int] = (800, 800), dropout: float = 0.2, l2: float = 0.0, seed: int = 0) -> keras.Model:
    """A modern MLP: dense ReLU layers with dropout (and optional L2), then the logits and softmax."""
    reg = keras.regularizers.L2(l2) if l2 else None
    x_in = _inputs()
    x = L.Flatten()(_saturate(x_in))  # (batch, 784)
    for i, units in enumerate(hidden):
        x = L.Dense(units, activation="relu", kernel_regularizer=reg,
                    kernel_initializer=keras.initializers.HeNormal(seed + i), name=f"dense{i + 1}")(x)
        if dropout:
            x = L.Dropout(dropout, seed=seed + 100 + i)(x)
    return _finish(x_in, *_heads(x, seed), "mlp")


def tutorial(parameters: dict | None = None, layout: dict | None = None, seed: int = 1) -> keras.Model:
    """The tutorial's MLP (ReLU hidden layers, softmax output) as a Keras model on [0, 1] inputs.

    Give ``parameters`` from :func:`digitnet.train_parameters` (which take raw 0-255 pixels) to wrap a
    trained network: the x255 is folded back into ``W1``; that network has no digit head. Otherwise the
    weights come from :func:`digitnet.initialize_parameters` with ``layout`` (default: the tutorial's),
    plus a digit head, ready to train.
    """
    from .tutorial import TUTORIAL_LAYOUT, initialize_parameters

    trained = parameters is not None
    if not trained:
        layout = layout or TUTORIAL_LAYOUT
        parameters = {k: v.numpy() for k, v in initialize_parameters(layout, seed=seed).items()}
    else:
        parameters = dict(parameters, W1=np.asarray(parameters["W1"]) * 255.0)  # raw pixels -> [0, 1]
    n = len(parameters) // 2
    x_in = _inputs()
    x = L.Flatten()(x_in if trained else _saturate(x_in))  # (batch, 784); a wrapped network keeps its inputs
    hidden = x
    for i in range(1, n + 1):
        W, b = np.asarray(parameters[f"W{i}"]), np.asarray(parameters[f"b{i}"])
        dense = L.Dense(W.shape[0], activation=None if i == n else "relu", name="logits" if i == n else f"dense{i}")
        hidden, x = x, dense(x)
        dense.set_weights([W.T, b.reshape(-1)])  # tutorial W is [current, previous]; Keras is [in, out]
    digit = None if trained else L.Dense(1, kernel_initializer=keras.initializers.GlorotUniform(seed + 11),
                                         name="digit_logit")(hidden)
    return _finish(x_in, x, digit, "tutorial")


def ensemble(members: Sequence[keras.Model]) -> keras.Model:
    """One model that averages the logits (and the digit logits) of ``members`` (which need unique names).

    Averaging logits (a normalized geometric mean of the probabilities) keeps the output contract: the
    ensemble's ``logits`` layer is still linear in its members' logits.
    """
    names = [m.name for m in members]
    if len(set(names)) != len(names):
        raise ConfigError(f"ensemble members need unique names, got {names}")
    x_in = _inputs()
    heads = [keras.Model(m.input, [m.get_layer("logits").output, m.get_layer("digit_logit").output],
                         name=m.name)(x_in) for m in members]
    logits = L.Average(name="logits")([h[0] for h in heads])  # (batch, 10)
    digit = L.Average(name="digit_logit")([h[1] for h in heads])  # (batch, 1)
    return _finish(x_in, logits, digit, f"ensemble{len(members)}")


BUILDERS: dict[str, Callable[..., keras.Model]] = {"tutorial": tutorial, "mlp": mlp, "cnn": cnn}


def build(arch: str, **kwargs) -> keras.Model:
    """Build an architecture from the registry by name."""
    if arch not in BUILDERS:
        raise ConfigError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHS)}")
    return BUILDERS[arch](**kwargs)
