"""One inference path, shared by the CLI, the server and the exports: :class:`Predictor`."""

from __future__ import annotations

import json
import logging
import os
from importlib import resources
from pathlib import Path

import numpy as np

from . import config

log = logging.getLogger(__name__)

CHUNK = 2048  # images per graph call: bounds memory on large batches


def shipped_model_path() -> Path:
    """The default model's weights shipped inside the package."""
    return Path(str(resources.files("digitnet") / "weights" / "default.keras"))


def resolve_model_path(path: str | os.PathLike | None) -> Path:
    """A ``.keras`` file from a model directory, a file, or (``None``) the default model.

    ``None`` means ``$DIGITNET_HOME/models/default/model.keras`` when it exists, else the shipped weights.
    """
    if path is None:
        trained = config.default_model_dir() / "model.keras"
        return trained if trained.is_file() else shipped_model_path()
    path = Path(path).expanduser()
    if path.is_dir():
        path = path / "model.keras"
    if not path.is_file():
        raise FileNotFoundError(f"no model at {path} (expected a model directory or a .keras file)")
    return path


class Predictor:
    """A loaded model with a fast, fixed-signature prediction function.

    Inputs to :meth:`predict_proba` are images already in MNIST form: white ink on black, centred,
    shaped (n, 28, 28), (n, 784) or one (28, 28). uint8 means 0-255; floats must lie in [0, 1].
    """

    def __init__(self, model, info: dict | None = None, path: Path | None = None):
        from ._tf import import_tf

        tf = import_tf()
        self.model = model
        self.info = info or {}
        self.path = path
        # A fixed signature: one trace, reused for every batch size (no retracing, no model.predict).
        self._fn = tf.function(lambda x: model(x, training=False),
                               input_signature=[tf.TensorSpec([None, 28, 28], tf.float32)])
        self._tf = tf

    @classmethod
    def load(cls, path: str | os.PathLike | None = None) -> Predictor:
        """Load a model directory or ``.keras`` file; with no argument, the default model."""
        import keras

        from .models import layers  # noqa: F401  (registers digitnet's layers for safe_mode loading)

        file = resolve_model_path(path)
        try:
            model = keras.models.load_model(file, safe_mode=True, compile=False)
        except Exception as e:  # Keras raises many types for damaged archives
            raise ValueError(f"cannot load model {file}: {e}") from e
        info = {}
        metrics = file.with_name("metrics.json")
        if metrics.is_file():
            try:
                info = json.loads(metrics.read_text())
            except json.JSONDecodeError:
                log.warning("ignoring unreadable %s", metrics)
        return cls(model, info, file)

    @staticmethod
    def to_mnist_batch(x) -> np.ndarray:
        """Validate and convert input to float32 (n, 28, 28) in [0, 1]."""
        x = np.asarray(x)
        if x.dtype == object or not (np.issubdtype(x.dtype, np.number) or x.dtype == bool):
            raise ValueError(f"images must be a numeric array, got dtype {x.dtype}")
        if x.shape == (28, 28) or x.shape == (784,):
            x = x[None]
        if x.ndim == 2 and x.shape[1] == 784:
            x = x.reshape(-1, 28, 28)
        if x.ndim != 3 or x.shape[1:] != (28, 28):
            raise ValueError(f"images must have shape (n, 28, 28), (n, 784) or (28, 28); got {x.shape}")
        if x.dtype == np.uint8:
            return x.astype(np.float32) / 255.0
        x = x.astype(np.float32)
        if not np.isfinite(x).all():
            raise ValueError("images contain NaN or infinite values")
        if x.size and (x.min() < 0.0 or x.max() > 1.0):
            raise ValueError(f"float images must lie in [0, 1] (uint8 for 0-255); got [{x.min():g}, {x.max():g}]")
        return x

    def predict_proba(self, x) -> np.ndarray:
        """(n, 10) float32 class probabilities."""
        x = self.to_mnist_batch(x)
        if len(x) == 0:
            return np.zeros((0, 10), np.float32)
        out = [self._fn(self._tf.constant(x[i : i + CHUNK])).numpy() for i in range(0, len(x), CHUNK)]
        return np.concatenate(out)

    def predict(self, x) -> np.ndarray:
        """(n,) int64 labels."""
        return self.predict_proba(x).argmax(axis=1).astype(np.int64)
