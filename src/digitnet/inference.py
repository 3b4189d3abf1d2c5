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
BACKENDS = ("tflite", "onnx", "tf", "tflite-int8")
DEFAULT_BACKEND = "tflite"  # 16x lower single-image latency than tf; see docs/PERFORMANCE.md
DEFAULT_MIN_CONFIDENCE = 0.5  # used only when a model carries no calibrated value
TTA_ANGLES = (-6.0, 6.0)  # test-time augmentation: small rotations inside the training range (+-10 deg)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")


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
    """A loaded model with a fast prediction function on one of four runtimes (``backend``).

    Inputs to :meth:`predict_proba` are images already in MNIST form: white ink on black, centred,
    shaped (n, 28, 28), (n, 784) or one (28, 28). uint8 means 0-255; floats must lie in [0, 1].
    """

    def __init__(self, model=None, info: dict | None = None, path: Path | None = None, backend: str = "tf"):
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
        if model is None and path is None:
            raise ValueError("a Predictor needs a Keras model or the path of one")
        self._model = model
        self.info = info or {}
        self.path = path
        self.backend = backend
        if backend == "tf":
            from ._tf import import_tf

            tf = import_tf()
            model = self.model
            # A fixed signature: one trace, reused for every batch size (no retracing, no model.predict).
            fn = tf.function(lambda x: model(x, training=False),
                             input_signature=[tf.TensorSpec([None, 28, 28], tf.float32)])
            self._run = lambda x: fn(tf.constant(x)).numpy()
        else:
            self._run = _exported_runner(self, backend).predict_proba

    @property
    def model(self):
        """The Keras model, loaded on first use (the onnx and tflite backends run without it)."""
        if self._model is None:
            self._model = _load_keras(self.path)
        return self._model

    @property
    def name(self) -> str:
        return self.info.get("model", {}).get("name") or self.model.name

    @property
    def parameters(self) -> int:
        return int(self.info.get("model", {}).get("parameters") or self.model.count_params())

    @classmethod
    def load(cls, path: str | os.PathLike | None = None, backend: str = DEFAULT_BACKEND) -> Predictor:
        """Load a model directory or ``.keras`` file (default: the default model) to run on ``backend``:
        "tflite" (the LiteRT interpreter), "onnx" (ONNX Runtime), "tf" (a traced tf.function) or
        "tflite-int8" (full-integer TFLite, calibrated on 500 MNIST training images: twice the batch
        throughput, probabilities in steps of 1/256).

        All but "tf" convert the model once and cache the result by the model file's sha256 in
        ``$DIGITNET_HOME/cache``; once cached, loading needs neither TensorFlow nor Keras.
        """
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
        file = resolve_model_path(path)
        info = {}
        metrics = file.with_name("metrics.json")
        if metrics.is_file():
            try:
                info = json.loads(metrics.read_text())
            except json.JSONDecodeError:
                log.warning("ignoring unreadable %s", metrics)
        model = None if backend != "tf" and _cache_path(file, backend).is_file() else _load_keras(file)
        return cls(model, info, file, backend)

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

    def predict_proba(self, x, tta: bool = False) -> np.ndarray:
        """(n, 10) float32 class probabilities. With ``tta``, the average over the image and copies
        rotated by :data:`TTA_ANGLES` (three times the work)."""
        x = self.to_mnist_batch(x)
        if len(x) == 0:
            return np.zeros((0, 10), np.float32)
        views = [x]
        if tta:
            from scipy import ndimage

            views += [ndimage.rotate(x, angle, axes=(2, 1), reshape=False, order=1) for angle in TTA_ANGLES]
        probs = [np.concatenate([self._run(v[i : i + CHUNK]) for i in range(0, len(v), CHUNK)]) for v in views]
        return np.mean(probs, axis=0, dtype=np.float32) if tta else probs[0]

    def warm_up(self) -> None:
        """Trace the prediction function now, so that the first real request is not the slow one."""
        self.predict_proba(np.zeros((1, 28, 28), np.uint8))

    def predict(self, x) -> np.ndarray:
        """(n,) int64 labels."""
        return self.predict_proba(x).argmax(axis=1).astype(np.int64)

    @property
    def min_confidence(self) -> float:
        """The calibrated low-confidence threshold stored with the model (see ``calibrate``)."""
        return float(self.info.get("calibration", {}).get("min_confidence", DEFAULT_MIN_CONFIDENCE))

    def predict_image(self, image, *, single: bool = False, top_k: int | None = None,
                      min_confidence: float | None = None, file: str | None = None,
                      with_normalized: bool = False, max_pixels: int | None = None) -> dict:
        """Read the digits in a real image: a path, bytes, a file object, a PIL image or an array.

        Returns ``{"file", "digits", "reason", "predictions", "error"}`` (see the README). "No digit"
        is an answer (``digits`` is None and ``reason`` says why). Bad input raises
        :class:`digitnet.preprocessing.ImageError`.
        """
        from .preprocessing import segment

        if top_k is not None and not 1 <= top_k <= 10:
            raise ValueError(f"top_k must be between 1 and 10, got {top_k}")
        threshold = self.min_confidence if min_confidence is None else float(min_confidence)
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"min_confidence must lie in [0, 1], got {threshold}")
        seg = segment(image, single=single, max_pixels=max_pixels)
        result = {"file": file, "digits": None, "reason": seg.reason, "predictions": [], "error": None}
        if not seg.digits:
            return result
        batch = np.stack([d.image for d in seg.digits])  # (n, 28, 28) uint8
        probs = self.predict_proba(batch)
        lines: dict[int, str] = {}
        for d, p in zip(seg.digits, probs):
            pred = _prediction(p, d.box, threshold, top_k, d.image if with_normalized else None)
            result["predictions"].append(pred)
            lines[d.line] = lines.get(d.line, "") + str(pred["digit"])
        result["digits"] = "\n".join(lines[k] for k in sorted(lines))
        return result

    def predict_mnist_image(self, image: np.ndarray, *, top_k: int | None = None, file: str | None = None,
                            with_normalized: bool = False) -> dict:
        """The result object for one image already in MNIST form (uint8 (28, 28), white on black),
        with no segmentation; an all-black image is "blank image"."""
        image = np.asarray(image)
        if image.shape != (28, 28) or image.dtype != np.uint8:
            raise ValueError(f"expected a uint8 (28, 28) MNIST image, got {image.dtype} {image.shape}")
        if not image.any():
            return {"file": file, "digits": None, "reason": "blank image", "predictions": [], "error": None}
        p = self.predict_proba(image)[0]
        pred = _prediction(p, (0, 0, 28, 28), self.min_confidence, top_k, image if with_normalized else None)
        return {"file": file, "digits": str(pred["digit"]), "reason": None, "predictions": [pred], "error": None}


def _prediction(p: np.ndarray, box, threshold: float, top_k: int | None, normalized: np.ndarray | None) -> dict:
    """One digit's entry in a result object."""
    label = int(p.argmax())
    pred = {"digit": label, "probability": round(float(p[label]), 6),
            "probabilities": [round(float(v), 6) for v in p], "box": [int(v) for v in box],
            "low_confidence": bool(p[label] < threshold)}
    if top_k:
        pred["top_k"] = [[int(i), round(float(p[i]), 6)] for i in np.argsort(-p)[:top_k]]
    if normalized is not None:
        pred["normalized"] = png_base64(normalized)
    return pred


def _load_keras(file: Path):
    import keras

    from .models import layers  # noqa: F401  (registers digitnet's layers for safe_mode loading)

    try:
        return keras.models.load_model(file, safe_mode=True, compile=False)
    except Exception as e:  # Keras raises many types for damaged archives
        raise ValueError(f"cannot load model {file}: {e}") from e


def _cache_path(file: Path, backend: str) -> Path:
    from .data.fetch import sha256_file

    suffix = {"onnx": ".onnx", "tflite": ".tflite", "tflite-int8": "-int8.tflite"}[backend]
    return config.home() / "cache" / backend / f"{sha256_file(file)[:16]}{suffix}"


def _exported_runner(predictor: Predictor, backend: str):
    """An ONNX Runtime or LiteRT runner, converted from the Keras model once and cached."""
    import tempfile

    from . import export

    convert = {"onnx": export.export_onnx, "tflite": export.export_tflite,
               "tflite-int8": export.export_tflite_int8}[backend]
    if predictor.path is None:  # an in-memory model: nothing to cache it by
        tmp = Path(tempfile.mkdtemp(prefix="digitnet-"))
        return export.runner(backend, convert(predictor.model, tmp))
    target = _cache_path(predictor.path, backend)
    if not target.is_file():
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=target.parent) as tmp:  # same filesystem: atomic rename
                os.replace(convert(predictor.model, Path(tmp)), target)
        except PermissionError as e:  # a read-only home: convert for this process only
            log.warning("cannot cache the %s model in %s (%s); converting without a cache", backend,
                        target.parent, e)
            return export.runner(backend, convert(predictor.model, Path(tempfile.mkdtemp(prefix="digitnet-"))))
    return export.runner(backend, target)


def png_base64(image: np.ndarray) -> str:
    """A uint8 (28, 28) image as a base64 PNG string."""
    import base64
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def error_result(file: str | None, message: str) -> dict:
    """The result object for an input that could not be read."""
    return {"file": file, "digits": None, "reason": None, "predictions": [], "error": message}


def calibrate(probs: np.ndarray, labels: np.ndarray, max_flagged_correct: float = 0.01) -> dict:
    """Pick ``min_confidence`` on validation data: the highest threshold that flags at most
    ``max_flagged_correct`` of the correct answers; report what share of the errors it flags."""
    conf, correct = probs.max(axis=1), probs.argmax(axis=1) == labels
    best = 0.0
    for t in np.round(np.arange(0.30, 0.995, 0.01), 2):
        if correct.any() and (correct & (conf < t)).sum() / correct.sum() <= max_flagged_correct:
            best = float(t)
    wrong = ~correct
    return {"min_confidence": best, "flagged_correct": float((correct & (conf < best)).sum() / max(correct.sum(), 1)),
            "flagged_errors": float((wrong & (conf < best)).sum() / max(wrong.sum(), 1)),
            "n": int(len(labels)), "rule": f"highest threshold flagging <= {max_flagged_correct:.0%} of correct "
                                           "validation answers"}


def expand_inputs(inputs: list[str]) -> list[str]:
    """Files as given, folders recursively (image files only, sorted), and "-" for stdin."""
    out = []
    for item in inputs:
        p = Path(item)
        if item != "-" and p.is_dir():
            out.extend(str(f) for f in sorted(p.rglob("*")) if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
        else:
            out.append(item)
    return out
