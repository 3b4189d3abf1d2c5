"""Inference runtimes behind one interface: ``Runner.run(batch) -> {"digit_score", "logits", "probabilities"}``.

One runner class per backend: Keras (a traced ``tf.function``), LiteRT/TFLite (float32 or int8), ONNX
Runtime, and a loaded SavedModel (used to verify exports). Every runner takes float32 (n, 28, 28) in
[0, 1], works in chunks of :data:`~digitnet.presets.CHUNK` images, and returns float32 arrays by name.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import threading
from pathlib import Path

import numpy as np

from . import config
from .errors import ConfigError
from .fileio import atomic_write_text, sha256_file
from .presets import BACKENDS, CHUNK, IMAGE_SIZE, OUTPUTS

log = logging.getLogger(__name__)


class Runner:
    """Runs a model on float32 (n, 28, 28) images in [0, 1]; returns its named outputs (see ``OUTPUTS``)."""

    def run(self, batch: np.ndarray, names: tuple[str, ...] = OUTPUTS) -> dict[str, np.ndarray]:
        """The named outputs for ``batch``; ask only for the ``names`` you need (a runtime may skip the rest)."""
        if len(batch) <= CHUNK:  # the common case (one image, one request): no copies
            return self._run(batch, names)
        parts = [self._run(batch[i : i + CHUNK], names) for i in range(0, len(batch), CHUNK)]
        return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}

    def _run(self, chunk: np.ndarray, names: tuple[str, ...]) -> dict[str, np.ndarray]:  # at most CHUNK images
        raise NotImplementedError


class KerasRunner(Runner):
    """The Keras model itself, traced once with a fixed signature (no retracing, no ``model.predict``)."""

    def __init__(self, model):
        from ._tf import import_tf
        from .conversion import input_spec, named_outputs

        self.tf = import_tf()
        self.fn = self.tf.function(named_outputs(model), input_signature=[input_spec()])

    def _run(self, chunk, names):
        return {k: v.numpy() for k, v in self.fn(self.tf.constant(chunk)).items() if k in names}


class SavedModelRunner(Runner):
    """An exported SavedModel's ``serving_default`` signature."""

    def __init__(self, path: Path):
        from ._tf import import_tf

        self.tf = import_tf()
        self.fn = self.tf.saved_model.load(str(path)).signatures["serving_default"]

    def _run(self, chunk, names):
        return {k: v.numpy() for k, v in self.fn(image=self.tf.constant(chunk)).items() if k in names}


def tflite_interpreter(content: bytes):
    """LiteRT's interpreter where it is installed, else TensorFlow's own ``tf.lite.Interpreter``."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        from ._tf import import_tf

        Interpreter = import_tf().lite.Interpreter  # noqa: N806
    return Interpreter(model_content=content, num_threads=os.cpu_count())


class TFLiteRunner(Runner):
    """A ``.tflite`` file, float32 or full-integer. The interpreter is not thread-safe: calls are
    serialized (each takes well under a millisecond)."""

    def __init__(self, path: Path):
        self.lock = threading.Lock()
        self.interp = tflite_interpreter(Path(path).read_bytes())  # in memory: the file may go away
        sig = self.interp.get_signature_runner("serving_default")
        # Tensor indices by signature name, used on the interpreter directly: no re-allocation per call.
        self.inp = sig.get_input_details()["image"]
        self.outs = sig.get_output_details()
        self.batch = 0

    @property
    def quantization(self) -> dict:
        def q(d):
            scale, zero = d["quantization"]
            return {"dtype": np.dtype(d["dtype"]).name, "scale": float(scale), "zero_point": int(zero)}

        # "output" is the probabilities, the export's main output; every other output by its own name.
        return {"input": q(self.inp), "output": q(self.outs["probabilities"]),
                **{name: q(d) for name, d in self.outs.items() if name != "probabilities"}}

    def _run(self, chunk, names):
        with self.lock:
            if len(chunk) != self.batch:
                self.interp.resize_tensor_input(self.inp["index"], [len(chunk), IMAGE_SIZE, IMAGE_SIZE])
                self.interp.allocate_tensors()
                self.batch = len(chunk)
            if self.inp["dtype"] == np.int8:
                scale, zero = self.inp["quantization"]
                chunk = np.clip(np.round(chunk / scale + zero), -128, 127).astype(np.int8)
            self.interp.set_tensor(self.inp["index"], chunk)
            self.interp.invoke()
            out = {}
            for name in names:
                d = self.outs[name]
                y = self.interp.get_tensor(d["index"])
                if d["dtype"] == np.int8:
                    scale, zero = d["quantization"]
                    y = (y.astype(np.float32) - zero) * scale
                out[name] = y.copy()
            return out


class OnnxRunner(Runner):
    """A ``.onnx`` file on ONNX Runtime's CPU provider."""

    def __init__(self, path: Path):
        import onnxruntime as ort

        self.session = ort.InferenceSession(Path(path).read_bytes(), providers=["CPUExecutionProvider"])

    def _run(self, chunk, names):
        return dict(zip(names, self.session.run(list(names), {"image": chunk.astype(np.float32)})))


FILE_RUNNERS = {"savedmodel": SavedModelRunner, "tflite": TFLiteRunner, "tflite-int8": TFLiteRunner,
                "onnx": OnnxRunner}
CONVERSION_VERSION = 2  # bumped when what a conversion outputs changes: 2 added digit_score
CACHE_SUFFIX = {"onnx": ".onnx", "tflite": ".tflite", "tflite-int8": "-int8.tflite"}


def open_file(fmt: str, path: Path) -> Runner:
    """A runner for an exported file or folder in format ``fmt`` (see ``digitnet.presets.FORMATS``)."""
    return FILE_RUNNERS[fmt](path)


def cache_path(file: Path, backend: str) -> Path:
    """Where the conversion of the model ``file`` for ``backend`` is cached: by the file's sha256."""
    name = f"{sha256_file(file)[:16]}-v{CONVERSION_VERSION}{CACHE_SUFFIX[backend]}"
    return config.home() / "cache" / backend / name


def _digest_path(target: Path) -> Path:
    return target.with_name(target.name + ".sha256")  # the cached file's own hash, written after it


def _open_cached(backend: str, target: Path) -> Runner | None:
    """The cached conversion if it is intact and loads; else None (and it is removed, with a warning)."""
    if not target.is_file():
        return None
    try:
        digest = _digest_path(target)
        if not digest.is_file() or digest.read_text().strip() != sha256_file(target):
            raise ValueError("sha256 mismatch or no recorded sha256")
        return open_file(backend, target)
    except Exception as e:  # a flipped byte, a truncated file, a runtime that refuses it
        log.warning("the cached %s model %s is damaged (%s); converting it again", backend, target, e)
        for path in (target, _digest_path(target)):
            with contextlib.suppress(OSError):  # a read-only cache: the next step converts without it
                path.unlink(missing_ok=True)
        return None


def open_runner(backend: str, model_loader, file: Path | None = None) -> Runner:
    """A runner for ``backend``. ``model_loader()`` returns the Keras model; it is called only when a
    conversion is needed or the backend is "tf". A converted model is cached by ``file``'s sha256 in
    ``$DIGITNET_HOME/cache``, with its own sha256 beside it, checked on every load (an in-memory model,
    ``file=None``, or a home that cannot be written, is converted for this process only)."""
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if backend == "tf":
        return KerasRunner(model_loader())
    from .conversion import CONVERTERS

    convert = CONVERTERS[backend]
    if file is not None:
        target = cache_path(file, backend)
        runner = _open_cached(backend, target)
        if runner is not None:
            return runner
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=target.parent) as tmp:  # same filesystem: atomic rename
                os.replace(convert(model_loader(), Path(tmp)), target)
            atomic_write_text(_digest_path(target), sha256_file(target) + "\n")
            return open_file(backend, target)
        except OSError as e:  # a read-only or full home (EACCES, EROFS, ENOSPC): convert for this process only
            log.warning("cannot cache the %s model in %s (%s); converting without a cache", backend,
                        target.parent, e)
    with tempfile.TemporaryDirectory(prefix="digitnet-") as tmp:  # runners read the file into memory
        return open_file(backend, convert(model_loader(), Path(tmp)))
