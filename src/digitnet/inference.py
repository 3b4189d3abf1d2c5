"""One inference path, shared by the CLI, the server and the exports: :class:`Predictor`."""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path

import numpy as np

from .arrays import check_pixels
from .errors import ConfigError, InputError, ModelOutputError
from .models.saving import load_model, resolve_model_path, shipped_model_path
from .presets import (
    DEFAULT_BACKEND,
    DEFAULT_MIN_CONFIDENCE,
    DEFAULT_MIN_DIGIT_SCORE,
    IMAGE_SIZE,
    NUM_CLASSES,
    OUTPUTS,
    PIXELS,
    TTA_ANGLES,
)
from .results import NOT_A_DIGIT, DigitPrediction, Reading, Rejected
from .runtimes import open_runner

log = logging.getLogger(__name__)

__all__ = ["Predictor", "resolve_model_path", "shipped_model_path"]


class Predictor:
    """A loaded model with a fast prediction function on one of four runtimes (``backend``):
    "tflite" (the default: the LiteRT interpreter), "onnx" (ONNX Runtime), "tf" (a traced
    tf.function) or "tflite-int8" (full-integer TFLite: twice the batch throughput, probabilities in
    steps of 1/256).

    All but "tf" convert the model once; a model loaded from a file is cached by the file's sha256 in
    ``$DIGITNET_HOME/cache``, so that loading it again needs neither TensorFlow nor Keras.

    Inputs to :meth:`predict_proba` are images already in MNIST form: white ink on black, centred,
    shaped (n, 28, 28), (n, 784) or one (28, 28). uint8 means 0-255; floats must lie in [0, 1].
    """

    def __init__(self, model=None, info: dict | None = None, path: Path | None = None,
                 backend: str = DEFAULT_BACKEND):
        if model is None and path is None:
            raise ConfigError("a Predictor needs a Keras model or the path of one")
        self._model = model
        self.info = info or {}
        self.path = path
        self.backend = backend
        self.runner = open_runner(backend, lambda: self.model, path)  # checks the backend's name
        self._explainer = None
        self._explainer_lock = threading.Lock()
        self.version: str | None = None  # which model this is, for people (the server's live swap names it)

    @property
    def model(self):
        """The Keras model, loaded on first use (the onnx and tflite backends run without it)."""
        if self._model is None:
            self._model = load_model(self.path)
        return self._model

    @property
    def name(self) -> str:
        return self.info.get("model", {}).get("name") or self.model.name

    @property
    def parameters(self) -> int:
        return int(self.info.get("model", {}).get("parameters") or self.model.count_params())

    @classmethod
    def load(cls, path: str | os.PathLike | None = None, backend: str = DEFAULT_BACKEND) -> Predictor:
        """Load a model directory or ``.keras`` file (default: the default model) to run on ``backend``.

        Raises :class:`~digitnet.errors.ModelNotFoundError` when ``path`` names no model and
        :class:`~digitnet.errors.ModelLoadError` when the file is damaged.
        """
        file = resolve_model_path(path)
        info = {}
        metrics = file.with_name("metrics.json")
        if metrics.is_file():
            try:
                info = json.loads(metrics.read_text())
            except json.JSONDecodeError:
                log.warning("ignoring unreadable %s", metrics)
        # Other backends load the Keras model only if they must convert it (a damaged file then fails
        # there, just as clearly); with a cached conversion they never need Keras at all.
        model = load_model(file) if backend == "tf" else None
        return cls(model, info, file, backend)

    @staticmethod
    def to_mnist_batch(x) -> np.ndarray:
        """Validate and convert input to float32 (n, 28, 28) in [0, 1]."""
        x = np.asarray(x)
        if x.shape in ((IMAGE_SIZE, IMAGE_SIZE), (PIXELS,)):
            x = x[None]
        if x.ndim == 2 and x.shape[1] == PIXELS:
            x = x.reshape(-1, IMAGE_SIZE, IMAGE_SIZE)
        if x.ndim != 3 or x.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
            raise InputError(f"images must have shape (n, 28, 28), (n, 784) or (28, 28); got {x.shape}")
        return check_pixels(x)

    def run(self, x, names: tuple[str, ...] = OUTPUTS) -> dict[str, np.ndarray]:
        """The runtime's named outputs for MNIST-form images: ``logits`` and ``probabilities``, (n, 10),
        and ``digit_score``, (n,)."""
        x = self.to_mnist_batch(x)
        if len(x) == 0:
            return {name: np.zeros((0,) if name == "digit_score" else (0, NUM_CLASSES), np.float32) for name in names}
        out = self.runner.run(x, names)
        if not all(np.isfinite(v).all() for v in out.values()):  # never pass NaN on as an answer
            raise ModelOutputError(f"the model returned non-finite numbers ({self.backend} backend, "
                                   f"{self.path or 'in-memory model'}): its weights or their conversion are damaged")
        return out

    def predict_proba(self, x, tta: bool = False) -> np.ndarray:
        """(n, 10) float32 class probabilities. With ``tta``, the average over the image and copies
        rotated by :data:`~digitnet.presets.TTA_ANGLES` (three times the work)."""
        x = self.to_mnist_batch(x)
        if not tta:
            return self.run(x, ("probabilities",))["probabilities"]
        from scipy import ndimage

        views = [x] + [ndimage.rotate(x, angle, axes=(2, 1), reshape=False, order=1) for angle in TTA_ANGLES]
        return np.mean([self.run(v, ("probabilities",))["probabilities"] for v in views], axis=0, dtype=np.float32)

    def warm_up(self) -> None:
        """Trace the prediction function now, so that the first real request is not the slow one."""
        self.predict_proba(np.zeros((1, IMAGE_SIZE, IMAGE_SIZE), np.uint8))

    def predict(self, x) -> np.ndarray:
        """(n,) int64 labels."""
        return self.predict_proba(x).argmax(axis=1).astype(np.int64)

    @property
    def min_confidence(self) -> float:
        """The calibrated low-confidence threshold stored with the model (see ``evaluation.calibrate``)."""
        return float(self.info.get("calibration", {}).get("min_confidence", DEFAULT_MIN_CONFIDENCE))

    @property
    def min_digit_score(self) -> float:
        """The calibrated digit-score threshold stored with the model (see ``evaluation.digit_score_threshold``):
        a mark that scores under it is "not a digit". 0 (reject nothing) for a model calibrated without it."""
        return float(self.info.get("calibration", {}).get("min_digit_score", DEFAULT_MIN_DIGIT_SCORE))

    def check_options(self, top_k: int | None, min_confidence: float | None, min_digit_score: float | None
                 ) -> tuple[float, float]:
        """Check the reading options (raising InputError); the low-confidence and rejection thresholds to use."""
        if top_k is not None and not 1 <= top_k <= NUM_CLASSES:
            raise InputError(f"top_k must be between 1 and 10, got {top_k}")
        return (self._threshold("min_confidence", min_confidence, self.min_confidence),
                self._threshold("min_digit_score", min_digit_score, self.min_digit_score))

    @staticmethod
    def _threshold(name: str, value: float | None, default: float) -> float:
        value = default if value is None else float(value)
        if not 0.0 <= value <= 1.0:
            raise InputError(f"{name} must lie in [0, 1], got {value}")
        return value

    def explain(self, x, *, target: int | None = None, all_classes: bool = False) -> dict:
        """Why the model reads one MNIST-form image (uint8 (28, 28), or floats in [0, 1]) as it does.

        Returns ``probabilities`` (10,) float32, ``target`` (the class explained: ``target``, else the
        predicted one), ``method``, ``saliency`` float32 (28, 28), non-negative, summing to 1 (integrated
        gradients of the target's logit, see :mod:`digitnet.explain`), ``saliency_by_class`` (10, 28, 28)
        with ``all_classes``, ``activations``: ``[{"name", "shape", "values"}]`` for each convolution
        block, then the dense head, and ``image``, the float32 (28, 28) input explained. Needs the Keras
        model, loaded on first use whatever the backend.
        """
        image = self.to_mnist_batch(x)
        if len(image) != 1:
            raise InputError(f"explain takes one image, got {len(image)}")
        with self._explainer_lock:  # built once (it traces a function), then shared by every thread
            if self._explainer is None:
                from .explain import Explainer

                self._explainer = Explainer(self.model)
        return self._explainer.explain(image[0], target=target, all_classes=all_classes)

    def predict_image(self, image, *, single: bool = False, top_k: int | None = None,
                      min_confidence: float | None = None, min_digit_score: float | None = None,
                      file: str | None = None, with_normalized: bool = False, max_pixels: int | None = None,
                      deadline: float | None = None, explain: bool = False, target: int | None = None) -> Reading:
        """Read the digits in a real image: a path, bytes, a file object, a PIL image or an array.

        "No digit" is an answer (``digits`` is None and ``reason`` says why). Every mark found scores a
        digit score; one under ``min_digit_score`` (default: the model's calibrated threshold; 0 turns
        rejection off) is listed in ``rejected``, not read. Bad input raises
        :class:`~digitnet.errors.ImageError`. With a ``deadline`` (a ``time.monotonic()`` value) the work
        stops between stages once it has passed, raising :class:`~digitnet.errors.DeadlineExceeded`.
        With ``explain``, each digit read carries :meth:`explain`'s answer for every class (its
        ``target``: ``target``, else the digit read).
        """
        from .preprocessing import check_deadline, segment

        threshold, reject_under = self.check_options(top_k, min_confidence, min_digit_score)
        seg = segment(image, single=single, max_pixels=max_pixels, deadline=deadline)
        if not seg.digits:
            return Reading(file=file, reason=seg.reason)
        check_deadline(deadline)
        reading = self._read_marks(seg.digits, file, threshold, reject_under, top_k, with_normalized)
        if explain:
            self._explain_reading(reading, seg.digits, target, deadline)
        return reading

    def read_segmentations(self, items: list, *, top_k: int | None = None, min_confidence: float | None = None,
                           min_digit_score: float | None = None) -> list[Reading]:
        """The readings of many images already segmented, with one model call for all their marks.

        ``items`` holds ``(file, seg)`` pairs, ``seg`` a :class:`~digitnet.preprocessing.Segmentation`
        or, for a file that could not be read, the error message (a str). Options as for :meth:`predict_image`.
        """
        threshold, reject_under = self.check_options(top_k, min_confidence, min_digit_score)
        marks = [m for _, seg in items if not isinstance(seg, str) for m in seg.digits]
        out = self.run(np.stack([m.image for m in marks]) if marks else np.zeros((0, IMAGE_SIZE, IMAGE_SIZE), np.uint8),
                       ("digit_score", "probabilities"))
        readings, start = [], 0
        for file, seg in items:
            if isinstance(seg, str):
                readings.append(Reading.failed(file, seg))
            elif not seg.digits:
                readings.append(Reading(file=file, reason=seg.reason))
            else:
                part = {k: v[start:start + len(seg.digits)] for k, v in out.items()}
                readings.append(self._read_marks(seg.digits, file, threshold, reject_under, top_k, False, part))
                start += len(seg.digits)
        return readings

    def _read_marks(self, marks: list, file: str | None, threshold: float, reject_under: float,
                    top_k: int | None, with_normalized: bool, out: dict | None = None) -> Reading:
        """A digit per mark (each with ``image`` uint8 (28, 28), ``box`` and ``line``) scoring at least
        ``reject_under``, the others listed as rejected; one model call, unless its ``out`` is given."""
        if out is None:
            out = self.run(np.stack([m.image for m in marks]), ("digit_score", "probabilities"))  # (n, 28, 28) in
        result = Reading(file=file)
        lines: dict[int, str] = {}
        for m, p, score in zip(marks, out["probabilities"], out["digit_score"]):
            if score < reject_under:
                result.rejected.append(Rejected.of(m.box, score, m.image if with_normalized else None))
                continue
            pred = DigitPrediction.from_probabilities(p, m.box, threshold, top_k,
                                                      m.image if with_normalized else None, score)
            result.predictions.append(pred)
            lines[m.line] = lines.get(m.line, "") + str(pred.digit)
        if lines:
            result.digits = "\n".join(lines[k] for k in sorted(lines))
        else:
            result.reason = NOT_A_DIGIT
        return result

    def _explain_reading(self, reading: Reading, marks: list, target: int | None, deadline: float | None) -> None:
        """Attach an explanation (all classes) to each digit read, checking the deadline between digits."""
        from .preprocessing import check_deadline

        images = {tuple(m.box): m.image for m in marks}
        for pred in reading.predictions:
            check_deadline(deadline)
            pred.explanation = self.explain(images[tuple(pred.box)], target=target, all_classes=True)

    def predict_mnist_image(self, image: np.ndarray, *, top_k: int | None = None, file: str | None = None,
                            with_normalized: bool = False, min_digit_score: float | None = None,
                            explain: bool = False, target: int | None = None) -> Reading:
        """The reading of one image already in MNIST form (uint8 (28, 28), white on black), with no
        segmentation; an all-black image is "blank image", one scoring under ``min_digit_score`` "not a
        digit". ``explain`` and ``target`` as for :meth:`predict_image`."""
        from .preprocessing import Digit

        image = np.asarray(image)
        if image.shape != (IMAGE_SIZE, IMAGE_SIZE) or image.dtype != np.uint8:
            raise InputError(f"expected a uint8 (28, 28) MNIST image, got {image.dtype} {image.shape}")
        reject_under = self._threshold("min_digit_score", min_digit_score, self.min_digit_score)
        if not image.any():
            return Reading(file=file, reason="blank image")
        whole = Digit(image, (0, 0, IMAGE_SIZE, IMAGE_SIZE), line=0)  # the image is the one mark
        reading = self._read_marks([whole], file, self.min_confidence, reject_under, top_k, with_normalized)
        if explain:
            self._explain_reading(reading, [whole], target, None)
        return reading
