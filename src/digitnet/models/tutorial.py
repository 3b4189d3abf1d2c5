"""The tutorial's five functions, on TensorFlow 2 (no sessions, placeholders or ``tf.compat.v1``).

Names, argument order, defaults and data conventions are the tutorial's: ``layout`` is
``{"l0": 784, "l1": 100, ..., "ln": 10}``; ``parameters`` holds exactly ``W1, b1, ..., Wn, bn`` with
``W`` of shape [current, previous] and ``b`` of shape [current, 1]; features are raw 0-255 pixels of
shape (n, 784); labels are one-hot (n, 10).

Fixes to the tutorial, each a documented default (the literal recipe stays available):

1. Layer loop: the tutorial's ``initialize_parameters`` stops one layer early, so the output layer
   never gets weights. Here every layer ``l1 .. ln`` gets its ``W`` and ``b``.
2. Unstable recipe: raw 0-255 pixels with a sigmoid output and squared error at Adam 0.005 often
   gets stuck near 10% accuracy. By default training sees pixels scaled to [0, 1] and a softmax
   output with cross-entropy; afterwards the 1/255 is folded into ``W1``, so the returned parameters
   still take raw pixels and hold no extra keys. ``cost="mse", scale_inputs=False`` is the tutorial's
   literal recipe.
"""

from __future__ import annotations

import warnings

import numpy as np

from .._tf import import_tf
from ..errors import InputError
from ..presets import TUTORIAL_LAYOUT  # noqa: F401  (the tutorial's network, importable from here too)

tf = import_tf()

COSTS = ("cross_entropy", "mse")
OUTPUTS = ("softmax", "sigmoid")
_EPS = 1e-7  # probabilities are clipped to [eps, 1 - eps] before the log


def _layer_count(layout: dict) -> int:
    """Validate a layout and return n, the number of weight layers (``l1 .. ln``)."""
    if not isinstance(layout, dict):
        raise TypeError(f"layout must be a dict like {{'l0': 784, 'l1': 100, 'l2': 10}}, got {type(layout)}")
    if "l0" not in layout:
        raise InputError(f"layout needs 'l0' (the input size), got keys {sorted(layout)}")
    n = len(layout) - 1
    expected = [f"l{i}" for i in range(n + 1)]
    if n < 1 or sorted(layout, key=str) != sorted(expected):
        raise InputError(f"layout keys must be exactly {expected} (consecutive from l0), got {sorted(layout)}")
    for key in expected:
        size = layout[key]
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
            raise InputError(f"layout[{key!r}] must be a positive integer, got {size!r}")
    return n


def _parameter_count(parameters: dict) -> int:
    """Validate ``parameters`` (``W1, b1, ..., Wn, bn``) and return n."""
    n = len(parameters) // 2
    expected = {f"{p}{i}" for i in range(1, n + 1) for p in "Wb"}
    if n < 1 or set(parameters) != expected:
        raise InputError(f"parameters must hold exactly W1, b1, ..., Wn, bn; got {sorted(parameters)}")
    return n


def _check_features(X, parameters: dict, name: str = "X") -> np.ndarray | tf.Tensor:
    """Features as float32 (n, features); clear errors for wrong width or non-finite values."""
    if isinstance(X, tf.Tensor):
        X = tf.cast(X, tf.float32)
        width = X.shape[-1]
    else:
        X = np.asarray(X, dtype=np.float32)
        width = X.shape[-1] if X.ndim else None
        if X.ndim != 2:
            raise InputError(f"{name} must have shape (n, features), got {X.shape}")
        if not np.isfinite(X).all():
            raise InputError(f"{name} contains NaN or infinite values")
    expected = int(parameters["W1"].shape[1])
    if width is not None and width != expected:
        raise InputError(f"{name} has {width} features per row but W1 expects {expected}")
    return X


def initialize_parameters(layout: dict, *, seed: int = 1) -> dict:
    """Create ``W1, b1, ..., Wn, bn`` for every layer of ``layout``.

    Arguments:
        layout (dict): layer sizes, ``{"l0": inputs, "l1": ..., "ln": outputs}``, any number of layers
        seed (int, keyword-only): seed of the Glorot (Xavier) uniform initializer, 1 as in the tutorial

    Returns:
        parameters (dict): ``tf.Variable`` weights W of shape [current, previous] (Glorot uniform)
        and biases b of shape [current, 1] (zeros).

    Unlike the tutorial, whose loop stopped one layer early, the output layer gets weights too.
    """
    n = _layer_count(layout)
    parameters = {}
    for i in range(1, n + 1):
        shape = [int(layout[f"l{i}"]), int(layout[f"l{i - 1}"])]
        # A different but reproducible seed per layer, so layers do not start as copies of each other.
        init = tf.keras.initializers.GlorotUniform(seed=seed * 1000 + i)
        parameters[f"W{i}"] = tf.Variable(init(shape, dtype=tf.float32), name=f"W{i}")
        parameters[f"b{i}"] = tf.Variable(tf.zeros([shape[0], 1], tf.float32), name=f"b{i}")
    return parameters


def _logits(X, parameters: dict, n: int) -> tf.Tensor:
    A = tf.cast(X, tf.float32)  # (batch, l0)
    for i in range(1, n + 1):
        Z = tf.matmul(A, parameters[f"W{i}"], transpose_b=True) + tf.transpose(parameters[f"b{i}"])
        A = Z if i == n else tf.nn.relu(Z)  # (batch, l_i)
    return A


def forward_propagation(X, parameters: dict, *, output: str = "softmax") -> tf.Tensor:
    """Run the network: ReLU on the hidden layers, then the output activation.

    Arguments:
        X (float array): features, shape (n, l0)
        parameters (dict): W and b of every layer (tf.Variable or NumPy arrays)
        output (str, keyword-only): "softmax" (default) or "sigmoid" (the tutorial's literal choice)

    Returns:
        A_output (tf.Tensor): float32 activations of the output layer, shape (n, ln)
    """
    if output not in OUTPUTS:
        raise InputError(f"output must be one of {OUTPUTS}, got {output!r}")
    n = _parameter_count(parameters)
    Z = _logits(_check_features(X, parameters), parameters, n)
    return tf.nn.softmax(Z) if output == "softmax" else tf.nn.sigmoid(Z)


def calculate_cost(A_output, y, parameters: dict, *, cost: str = "cross_entropy") -> tf.Tensor:
    """The mean cost of a batch.

    Arguments:
        A_output (tf.Tensor): output activations, shape (n, classes)
        y (float array): one-hot labels, shape (n, classes)
        parameters (dict): W and b (unused, kept for the tutorial's signature; room for regularization)
        cost (str, keyword-only): "cross_entropy" (default): mean over the batch of -sum(y * log(A));
            "mse": the tutorial's mean squared difference over every entry

    Returns:
        cost (tf.Tensor): a float32 scalar
    """
    A = tf.cast(A_output, tf.float32)
    y = tf.cast(y, tf.float32)
    if A.shape.rank != 2 or y.shape.rank != 2 or A.shape[-1] != y.shape[-1]:
        raise InputError(f"A_output and y must both be (n, classes); got {A.shape} and {y.shape}")
    if cost == "cross_entropy":
        return tf.reduce_mean(-tf.reduce_sum(y * tf.math.log(tf.clip_by_value(A, _EPS, 1 - _EPS)), axis=1))
    if cost == "mse":
        return tf.reduce_mean(tf.math.squared_difference(A, y))
    raise InputError(f"cost must be one of {COSTS}, got {cost!r}")


def _accuracy(X, y, parameters: dict, batch: int = 10000) -> float:
    n = _parameter_count(parameters)
    hits = 0
    for start in range(0, len(X), batch):
        Z = _logits(X[start : start + batch], parameters, n)
        hits += int(tf.reduce_sum(tf.cast(tf.argmax(Z, 1) == tf.argmax(y[start : start + batch], 1), tf.int32)))
    return hits / len(X)


def train_parameters(
    X_train,
    y_train,
    X_test,
    y_test,
    layout,
    learning_rate=0.005,
    epochs=20,
    batch_size=1000,
    *,
    seed: int = 1,
    cost: str = "cross_entropy",
    scale_inputs: bool = True,
    verbose: bool = True,
) -> dict:
    """Train the network with Adam on full mini-batches, in order, as the tutorial did.

    Arguments:
        X_train, X_test (float array): features (n, l0), raw 0-255 pixels as the tutorial used
        y_train, y_test (float array): one-hot labels (n, ln)
        layout (dict): layer sizes, see :func:`initialize_parameters`
        learning_rate, epochs, batch_size: the tutorial's defaults, 0.005, 20 and 1000
        seed (keyword-only): initializer seed (default 1)
        cost (keyword-only): "cross_entropy" with a softmax output (default), or "mse" with the
            tutorial's sigmoid output
        scale_inputs (keyword-only): train on X / 255 and fold the 1/255 into W1 afterwards (default
            True), so the result still takes raw pixels; False trains on X as given
        verbose (keyword-only): print the tutorial's lines (default True)

    Prints ``Cost after epoch k: <sum of the epoch's batch costs>`` for k = 1..epochs, then the
    accuracy on the training and the test set.

    Returns:
        parameters (dict): trained ``W1, b1, ..., Wn, bn`` as float32 NumPy arrays
    """
    if cost not in COSTS:
        raise InputError(f"cost must be one of {COSTS}, got {cost!r}")
    if batch_size < 1 or epochs < 0:
        raise InputError(f"batch_size must be >= 1 and epochs >= 0, got {batch_size} and {epochs}")
    n = _layer_count(layout)
    parameters = initialize_parameters(layout, seed=seed)
    X_train = _check_features(X_train, parameters, "X_train")
    X_test = _check_features(X_test, parameters, "X_test")
    y_train = np.asarray(y_train, dtype=np.float32)
    y_test = np.asarray(y_test, dtype=np.float32)
    for name, X, y in (("train", X_train, y_train), ("test", X_test, y_test)):
        if y.ndim != 2 or y.shape != (len(X), layout[f"l{n}"]):
            raise InputError(f"y_{name} must be one-hot of shape {(len(X), layout[f'l{n}'])}, got {y.shape}")
    m = len(X_train)
    if m < batch_size:
        raise InputError(f"batch_size {batch_size} is larger than the {m} training rows")
    scale = 1.0 / 255.0 if scale_inputs else 1.0
    if scale_inputs and X_train.max() <= 1.0:
        warnings.warn("scale_inputs=True expects raw 0-255 pixels, but X_train is already in [0, 1]",
                      stacklevel=2)
    output = "softmax" if cost == "cross_entropy" else "sigmoid"
    variables = [parameters[f"{p}{i}"] for i in range(1, n + 1) for p in "Wb"]
    step = _adam_step(variables, learning_rate)

    @tf.function(reduce_retracing=True)
    def train_step(X, y):  # (batch, l0), (batch, ln)
        with tf.GradientTape() as tape:
            batch_cost = calculate_cost(forward_propagation(X * scale, parameters, output=output), y,
                                        parameters, cost=cost)
        step(tape.gradient(batch_cost, variables))
        return batch_cost

    for epoch in range(epochs):
        epoch_cost = 0.0
        for b in range(m // batch_size):  # the tutorial's batching: in order, remainder dropped
            sl = slice(b * batch_size, (b + 1) * batch_size)
            epoch_cost += float(train_step(X_train[sl], y_train[sl]))
        if verbose:
            print(f"Cost after epoch {epoch + 1}: {epoch_cost}", flush=True)

    trained = {k: v.numpy() for k, v in parameters.items()}
    trained["W1"] = trained["W1"] * np.float32(scale)  # fold the input scaling into the first layer
    if verbose:
        print("Training complete!")
        print(f"Accuracy on the training set: {_accuracy(X_train, y_train, trained) * 100} %")
        print(f"Accuracy on the test set: {_accuracy(X_test, y_test, trained) * 100} %", flush=True)
    return trained


def _adam_step(variables: list, learning_rate: float, beta1=0.9, beta2=0.999, epsilon=1e-8):
    """Adam as TF1's ``AdamOptimizer`` computed it (epsilon added after the bias-corrected rate)."""
    m = [tf.Variable(tf.zeros_like(v), trainable=False) for v in variables]
    v2 = [tf.Variable(tf.zeros_like(v), trainable=False) for v in variables]
    t = tf.Variable(0.0, trainable=False)

    def step(grads):
        t.assign_add(1.0)
        lr_t = learning_rate * tf.sqrt(1 - beta2**t) / (1 - beta1**t)
        for var, g, m_i, v_i in zip(variables, grads, m, v2):
            m_i.assign(beta1 * m_i + (1 - beta1) * g)
            v_i.assign(beta2 * v_i + (1 - beta2) * tf.square(g))
            var.assign_sub(lr_t * m_i / (tf.sqrt(v_i) + epsilon))

    return step


def predict(X_predict, parameters: dict) -> np.ndarray:
    """Predict labels.

    Arguments:
        X_predict (float array): one feature vector (l0,) or a batch (n, l0), raw 0-255 pixels
        parameters (dict): trained W and b, as returned by :func:`train_parameters`

    Returns:
        prediction (int64 array): labels, shape (n,) (shape (1,) for one vector, as in the tutorial)
    """
    n = _parameter_count(parameters)
    X = np.asarray(X_predict, dtype=np.float32)
    if X.ndim == 1:
        X = X.reshape(1, -1)
    X = _check_features(X, parameters, "X_predict")
    if len(X) == 0:
        return np.zeros((0,), dtype=np.int64)
    return tf.argmax(_logits(X, parameters, n), axis=1).numpy().astype(np.int64)


__all__ = ["initialize_parameters", "forward_propagation", "calculate_cost", "train_parameters", "predict"]
