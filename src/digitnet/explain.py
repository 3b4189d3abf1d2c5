"""Why the network answered: integrated-gradients saliency and layer activations of a Keras model.

Saliency is integrated gradients (Sundararajan et al., 2017) of one class's *logit* (not its softmax
probability, which saturates) along the straight path from a black image to the input, with
:data:`~digitnet.presets.IG_STEPS` midpoint steps. Its positive part, normalized to sum 1, is the map:
the pixels whose ink raised that class's logit. The sanity checks of Adebayo et al. (2018), model
randomization and deletion, are tests (``tests/test_explain.py``); their figures are in
``docs/PERFORMANCE.md``.

Activations are read per block, in order: each convolution block's output (after its pooling, batch
norm and ReLU), then the dense head (the pooled features, the hidden dense layers, the logits). An
ensemble explains its averaged logits and shows its first member's activations.
"""

from __future__ import annotations

import re

import numpy as np

from ._tf import import_tf
from .errors import InputError
from .presets import IG_STEPS, IMAGE_SIZE, NUM_CLASSES

METHOD = "integrated_gradients"
_CHUNK = 1024  # interpolated images per gradient call: bounds memory for any batch


class Explainer:
    """Saliency and activations for one Keras model of the output contract (see ``models.zoo``)."""

    def __init__(self, model, steps: int = IG_STEPS):
        import keras

        tf = import_tf()
        self.model, self.steps = model, steps
        self._logits = keras.Model(model.input, model.get_layer("logits").output)  # (batch, 10)
        layers = activation_layers(model)
        self._layers = keras.Model(_input_of(model, layers), [layer.output for layer in layers])
        self.names = [name for name, _ in _named(layers)]
        alphas = tf.constant((np.arange(steps) + 0.5) / steps, tf.float32)  # midpoints of the path 0 -> x
        spec = tf.TensorSpec([None, IMAGE_SIZE, IMAGE_SIZE], tf.float32)

        @tf.function(input_signature=[spec, tf.TensorSpec([None], tf.int32)])
        def attribute(x, targets):  # (k, 28, 28), (k,) -> (k, 28, 28)
            path = alphas[None, :, None, None] * x[:, None]  # (k, steps, 28, 28)
            path = tf.reshape(path, [-1, IMAGE_SIZE, IMAGE_SIZE])  # (k * steps, 28, 28)
            with tf.GradientTape() as tape:
                tape.watch(path)
                logits = self._logits(path, training=False)  # (k*steps, 10)
                total = tf.reduce_sum(tf.gather(logits, tf.repeat(targets, steps), batch_dims=1))  # target logits
            grads = tf.reshape(tape.gradient(total, path), [-1, steps, IMAGE_SIZE, IMAGE_SIZE])
            return x * tf.reduce_mean(grads, axis=1)  # (k, 28, 28): sums to logit(x) - logit(black)

        self._attribute = attribute

    def attributions(self, x: np.ndarray, targets) -> np.ndarray:
        """Signed integrated gradients, float32 (n, 28, 28), of each image's ``targets`` logit."""
        x = np.asarray(x, np.float32)
        targets = np.broadcast_to(np.asarray(targets, np.int32), (len(x),))
        per = max(1, _CHUNK // self.steps)
        parts = [self._attribute(x[i : i + per], targets[i : i + per]).numpy() for i in range(0, len(x), per)]
        return np.concatenate(parts) if parts else np.zeros((0, IMAGE_SIZE, IMAGE_SIZE), np.float32)

    def saliency(self, x: np.ndarray, targets) -> np.ndarray:
        """Saliency maps, float32 (n, 28, 28), non-negative, each summing to 1 (see the module docstring)."""
        return to_saliency(self.attributions(x, targets))

    def layer_outputs(self, x: np.ndarray, batch: int = 500) -> dict[str, np.ndarray]:
        """The shown layers' activations for a batch of float (n, 28, 28) images: name -> (n, ...)."""
        x = np.asarray(x, np.float32)
        parts = []
        for i in range(0, len(x), batch):
            outs = self._layers(x[i : i + batch], training=False)
            parts.append([v.numpy() for v in (outs if isinstance(outs, (list, tuple)) else [outs])])
        return {name: np.concatenate([p[k] for p in parts]) for k, name in enumerate(self.names)}

    def activations(self, image: np.ndarray) -> list[dict]:
        """One image's activations: ``[{"name", "shape", "values"}]``, blocks first, then the dense head."""
        outs = self.layer_outputs(np.asarray(image, np.float32)[None])
        return [{"name": name, "shape": list(v.shape[1:]), "values": v[0]} for name, v in outs.items()]

    def explain(self, image: np.ndarray, target: int | None = None, all_classes: bool = False) -> dict:
        """The explanation of one MNIST-form image, float32 (28, 28) in [0, 1] (see ``Predictor.explain``)."""
        probs = self.model(image[None], training=False)["probabilities"].numpy()[0]  # (10,)
        if target is None:
            target = int(probs.argmax())
        elif not (isinstance(target, (int, np.integer)) and 0 <= target < NUM_CLASSES):
            raise InputError(f"target must be a digit 0-9, got {target!r}")
        out = {"probabilities": probs.astype(np.float32), "target": int(target), "method": METHOD, "image": image}
        if all_classes:  # one gradient call for all ten: the page switches classes without asking again
            maps = self.saliency(np.repeat(image[None], NUM_CLASSES, 0), np.arange(NUM_CLASSES))
            out["saliency"], out["saliency_by_class"] = maps[target], maps
        else:
            out["saliency"] = self.saliency(image[None], [target])[0]
        out["activations"] = self.activations(image)
        return out


def to_saliency(attributions: np.ndarray) -> np.ndarray:
    """Positive attributions (n, 28, 28), normalized per image to sum 1 (uniform where there are none)."""
    pos = np.maximum(attributions, 0).astype(np.float32)
    total = pos.sum(axis=(1, 2), keepdims=True)
    uniform = np.float32(1.0 / (IMAGE_SIZE * IMAGE_SIZE))
    return np.where(total > 0, pos / np.where(total > 0, total, 1), uniform).astype(np.float32)


# ------------------------------------------------------------------------------------------ layers


def activation_layers(model) -> list:
    """The layers whose outputs are shown, in order: each convolution block's last layer (the first
    activation after its convolution), then the global pooling, the hidden dense layers and ``logits``.
    An ensemble shows its first member's (the first nested model)."""
    import keras

    nested = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    own = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    if nested and not own:
        return activation_layers(nested[0])
    out, in_block = [], False
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            in_block = True
        elif in_block and isinstance(layer, keras.layers.ReLU):  # the block's output
            out.append(layer)
            in_block = False
        elif isinstance(layer, keras.layers.GlobalAveragePooling2D) or (
                isinstance(layer, keras.layers.Dense) and layer.name != "digit_logit"):
            out.append(layer)
    return out


def _named(layers: list) -> list[tuple[str, object]]:
    """Readable names: block1, block2, ... for convolution blocks, "features" for the pooling, the
    Dense layers' own names (dense1, ..., logits)."""
    import keras

    named, block = [], 0
    for layer in layers:
        if isinstance(layer, keras.layers.ReLU):
            block += 1
            named.append((f"block{block}", layer))
        elif isinstance(layer, keras.layers.GlobalAveragePooling2D):
            named.append(("features", layer))
        else:
            named.append((re.sub(r"_\d+$", "", layer.name), layer))
    return named


def _input_of(model, layers: list):
    """The input tensor the activation layers hang from: the model's, or its first member's."""
    import keras

    for layer in model.layers:
        if isinstance(layer, keras.Model) and layers and layers[0] in layer.layers:
            return layer.input
    return model.input


def features(model, x: np.ndarray, batch: int = 1000) -> np.ndarray:
    """The penultimate features (what the ``logits`` layer reads), float32 (n, d), for MNIST-form images."""
    import keras

    head = keras.Model(model.input, model.get_layer("logits").input)
    x = np.asarray(x, np.float32)
    if x.dtype == np.uint8 or x.max() > 1:
        raise InputError("features() takes float images in [0, 1]; divide uint8 pixels by 255")
    return np.concatenate([head(x[i : i + batch], training=False).numpy() for i in range(0, len(x), batch)])


# ----------------------------------------------------------------------------------------- drawing


def feature_grid(values: np.ndarray, cell_gap: int = 1) -> np.ndarray:
    """A layer's activations as one uint8 image: feature maps (h, w, c) tiled in a near-square grid,
    a vector (d,) as a grid of cells; scaled from 0 (or the layer's lowest value) to its highest."""
    v = np.asarray(values, np.float32)
    if v.ndim == 1:
        v, cell_gap = v.reshape(1, 1, -1), 0  # a vector: cells side by side
    h, w, c = v.shape
    cols = int(np.ceil(np.sqrt(c * h / w)))  # near-square overall
    rows = -(-c // cols)
    grid = np.zeros((rows * (h + cell_gap) - cell_gap, cols * (w + cell_gap) - cell_gap), np.float32)
    for k in range(c):
        r, q = divmod(k, cols)
        grid[r * (h + cell_gap) : r * (h + cell_gap) + h, q * (w + cell_gap) : q * (w + cell_gap) + w] = v[..., k]
    low, peak = min(0.0, float(v.min())), float(v.max())  # logits can be negative: then min -> black
    if peak <= low:
        return np.zeros(grid.shape, np.uint8)
    return np.round((grid - low) / (peak - low) * 255).astype(np.uint8)
