"""Export a trained model for deployment, and prove each export equivalent on the MNIST test set.

| format      | written                   | runtime that verifies it          |
|-------------|---------------------------|-----------------------------------|
| savedmodel  | DIR/1/ (TF Serving layout)| tf.saved_model.load               |
| tflite      | DIR/model.tflite (float32)| LiteRT / tf.lite interpreter      |
| tflite-int8 | DIR/model.tflite (int8)   | LiteRT / tf.lite interpreter      |
| onnx        | DIR/model.onnx            | onnxruntime                       |

Float formats take float32 ``image`` (batch, 28, 28) in [0, 1], white ink on black, centred (what
``Predictor.predict_proba`` takes) and return float32 ``probabilities`` (batch, 10). The int8 model
takes and returns int8, with its quantization parameters stored in the model and in MODEL_CARD.md.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from ._tf import import_tf

FORMATS = ("savedmodel", "tflite", "tflite-int8", "onnx")
INPUT_NAME, OUTPUT_NAME = "image", "probabilities"


def export_savedmodel(model, out: Path) -> Path:
    """``out/1/``: the versioned layout TensorFlow Serving loads as is, signature ``serving_default``
    taking ``image`` and returning ``probabilities``."""
    import keras

    tf = import_tf()
    target = out / "1"

    def write(tmp: Path) -> None:
        # Keras's ExportArchive tracks the model's variables; a bare tf.function over a Keras 3 model
        # converts to a TFLite file without its weights.
        archive = keras.export.ExportArchive()
        archive.track(model)
        archive.add_endpoint(
            name="serving_default",
            fn=lambda image: {OUTPUT_NAME: model(image, training=False)},  # (batch, 28, 28) -> (batch, 10)
            input_signature=[tf.TensorSpec([None, 28, 28], tf.float32, name=INPUT_NAME)],
        )
        archive.write_out(str(tmp), verbose=False)

    _replace_dir(target, write)
    return target


def export_tflite(model, out: Path, int8: bool = False, calibration: np.ndarray | None = None) -> Path:
    tf = import_tf()
    with tempfile.TemporaryDirectory() as tmp:
        # Through a SavedModel: the converter then freezes every weight (from a bare function it may not).
        saved = export_savedmodel(model, Path(tmp))
        converter = tf.lite.TFLiteConverter.from_saved_model(str(saved), signature_keys=["serving_default"])
        data = _convert(converter, int8, calibration)
    path = out / "model.tflite"
    _atomic_bytes(path, data)
    return path


def calibration_images(n: int = 500, data_dir=None, cache_dir=None) -> np.ndarray:
    """``n`` MNIST training images, a fixed sample, for int8 calibration (never test images)."""
    from .data import load_mnist

    (x_train, _), _ = load_mnist(data_dir, cache_dir)
    return x_train[np.random.default_rng(0).choice(len(x_train), n, replace=False)]


def export_tflite_int8(model, out: Path) -> Path:
    """Full-integer TFLite, calibrated on 500 MNIST training images."""
    return export_tflite(model, out, int8=True, calibration=calibration_images())


def _convert(converter, int8: bool, calibration: np.ndarray | None) -> bytes:
    tf = import_tf()
    if int8:
        if calibration is None:
            raise ValueError("int8 quantization needs calibration images")
        samples = calibration.astype(np.float32) / 255.0 if calibration.dtype == np.uint8 else calibration

        def representative():
            for i in range(len(samples)):
                yield [samples[i : i + 1]]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    return converter.convert()


def export_onnx(model, out: Path) -> Path:
    """``out/model.onnx`` through tf2onnx, with the graph's input and output named clearly."""
    import onnx
    import tf2onnx

    tf = import_tf()
    spec = (tf.TensorSpec([None, 28, 28], tf.float32, name=INPUT_NAME),)
    fn = tf.function(lambda image: model(image, training=False))  # (batch, 28, 28) -> (batch, 10)
    proto, _ = tf2onnx.convert.from_function(fn, input_signature=spec, opset=17)
    old = proto.graph.output[0].name
    for node in proto.graph.node:  # rename tf2onnx's "Identity:0" and the like to "probabilities"
        node.output[:] = [OUTPUT_NAME if o == old else o for o in node.output]
        node.input[:] = [OUTPUT_NAME if i == old else i for i in node.input]
    proto.graph.output[0].name = OUTPUT_NAME
    onnx.checker.check_model(proto)
    path = out / "model.onnx"
    _atomic_bytes(path, proto.SerializeToString())
    return path


def _atomic_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _replace_dir(target: Path, write) -> None:
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}-"))
    try:
        shutil.rmtree(tmp)
        write(tmp)
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


# -------------------------------------------------------------------------------------- runtimes


class Runner:
    """Runs an export with its own runtime: ``predict_proba`` of float32 (n, 28, 28) in [0, 1]."""

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class SavedModelRunner(Runner):
    def __init__(self, path: Path):
        tf = import_tf()
        self.fn = tf.saved_model.load(str(path)).signatures["serving_default"]
        self.tf = tf

    def predict_proba(self, x):
        return np.concatenate([self.fn(**{INPUT_NAME: self.tf.constant(x[i : i + 2048])})[OUTPUT_NAME].numpy()
                               for i in range(0, len(x), 2048)])


def tflite_interpreter(path: Path):
    """LiteRT's interpreter where it is installed, else TensorFlow's own ``tf.lite.Interpreter``."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        Interpreter = import_tf().lite.Interpreter  # noqa: N806
    return Interpreter(model_path=str(path), num_threads=os.cpu_count())


class TFLiteRunner(Runner):
    """The interpreter is not thread-safe: calls are serialized (each takes well under a millisecond)."""

    def __init__(self, path: Path):
        import threading

        self.lock = threading.Lock()
        self.interp = tflite_interpreter(path)
        self.inp = self.interp.get_input_details()[0]
        self.out = self.interp.get_output_details()[0]
        self.batch = 0

    @property
    def quantization(self) -> dict:
        (si, zi), (so, zo) = self.inp["quantization"], self.out["quantization"]
        return {"input": {"dtype": np.dtype(self.inp["dtype"]).name, "scale": float(si), "zero_point": int(zi)},
                "output": {"dtype": np.dtype(self.out["dtype"]).name, "scale": float(so), "zero_point": int(zo)}}

    def predict_proba(self, x, batch: int = 256):
        with self.lock:
            return self._predict(x, batch)

    def _predict(self, x, batch: int):
        out = []
        for i in range(0, len(x), batch):
            chunk = x[i : i + batch]
            if len(chunk) != self.batch:
                self.interp.resize_tensor_input(self.inp["index"], [len(chunk), 28, 28])
                self.interp.allocate_tensors()
                self.batch = len(chunk)
            if self.inp["dtype"] == np.int8:
                scale, zero = self.inp["quantization"]
                chunk = np.clip(np.round(chunk / scale + zero), -128, 127).astype(np.int8)
            self.interp.set_tensor(self.inp["index"], chunk)
            self.interp.invoke()
            y = self.interp.get_tensor(self.out["index"])
            if self.out["dtype"] == np.int8:
                scale, zero = self.out["quantization"]
                y = (y.astype(np.float32) - zero) * scale
            out.append(y.copy())
        return np.concatenate(out)


class OnnxRunner(Runner):
    def __init__(self, path: Path):
        import onnxruntime as ort

        self.session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    def predict_proba(self, x):
        return self.session.run([OUTPUT_NAME], {INPUT_NAME: x.astype(np.float32)})[0]


def runner(fmt: str, path: Path) -> Runner:
    return {"savedmodel": SavedModelRunner, "tflite": TFLiteRunner, "tflite-int8": TFLiteRunner,
            "onnx": OnnxRunner}[fmt](path)


# ------------------------------------------------------------------------------------------ export


def export(model_path, fmt: str, out, *, data_dir=None, cache_dir=None, calibration_size: int = 500) -> dict:
    """Export the model at ``model_path`` to ``out`` in ``fmt``, verify it on the MNIST test set against
    the Keras model, write ``out/MODEL_CARD.md``, and return the verification figures."""
    from .data import load_mnist
    from .inference import Predictor

    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    predictor = Predictor.load(model_path, backend="tf")  # the Keras model itself is the reference
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    _, (x_test, y_test) = load_mnist(data_dir, cache_dir)
    t0 = time.perf_counter()
    if fmt == "savedmodel":
        path = export_savedmodel(predictor.model, out)
    elif fmt == "onnx":
        path = export_onnx(predictor.model, out)
    else:
        calib = calibration_images(calibration_size, data_dir, cache_dir) if fmt == "tflite-int8" else None
        path = export_tflite(predictor.model, out, int8=fmt == "tflite-int8", calibration=calib)
    seconds = time.perf_counter() - t0

    xf = x_test.astype(np.float32) / 255.0
    reference = predictor.predict_proba(x_test)
    run = runner(fmt, path)
    probs = run.predict_proba(xf)
    size = sum(f.stat().st_size for f in (path.rglob("*") if path.is_dir() else [path]) if f.is_file())
    figures = {
        "format": fmt, "path": str(path), "bytes": size, "export_seconds": round(seconds, 2),
        "test_accuracy": float((probs.argmax(1) == y_test).mean()),
        "keras_test_accuracy": float((reference.argmax(1) == y_test).mean()),
        "argmax_agreement": float((probs.argmax(1) == reference.argmax(1)).mean()),
        "max_abs_diff": float(np.abs(probs - reference).max()),
        "n": int(len(y_test)),
    }
    if fmt == "tflite-int8":
        figures["quantization"] = run.quantization
    _write_card(out, predictor, figures)
    return figures


def _write_card(out: Path, predictor, f: dict) -> None:
    info = predictor.info
    trained = info.get("model", {}).get("trained_at", "unknown")
    ds = info.get("dataset", {})
    data = (f"Trained on {ds['name']}: {ds['train']:,} training images, {ds['validation']:,} held out for "
            f"validation (model selection); its test images were never used to choose anything."
            if {"name", "train", "validation"} <= set(ds) else "Training data: not recorded with this model.")
    int8 = f["format"] == "tflite-int8"
    quant = ""
    if "quantization" in f:
        q = f["quantization"]
        quant = (f"\n## Quantization\n\n| tensor | dtype | scale | zero point |\n|---|---|---|---|\n"
                 f"| input `{INPUT_NAME}` | {q['input']['dtype']} | {q['input']['scale']:.8g} | "
                 f"{q['input']['zero_point']} |\n| output `{OUTPUT_NAME}` | {q['output']['dtype']} | "
                 f"{q['output']['scale']:.8g} | {q['output']['zero_point']} |\n\n"
                 + ("real = scale × (int8 − zero point). Calibrated on 500 training images.\n" if int8 else ""))
    io = ("int8 (batch, 28, 28): quantize pixel/255 with the input parameters below" if int8
          else "float32 (batch, 28, 28) in [0, 1]")
    card = f"""# Model card: digitnet {predictor.model.name} ({f['format']})

## Model
- Source: `{predictor.path}`, trained {trained}; {predictor.model.count_params():,} parameters.
- Export: `{Path(f['path']).name}` ({f['bytes']:,} bytes), written by `digitnet export --format {f['format']}`.

## Input and output
- Input `{INPUT_NAME}`: {io}. MNIST form: white ink on black, the digit scaled into a 20×20 box and
  centred by mass in 28×28. Real photos and drawings must go through `digitnet.preprocessing` first
  (`Predictor.predict_image` does this).
- Output `{OUTPUT_NAME}`: {"int8" if int8 else "float32"} (batch, 10), the probability of each digit 0-9.

## Data
{data} MNIST is by Yann LeCun and Corinna Cortes (CC BY-SA 3.0). The accuracy below is measured on the
10,000 MNIST test images.

## Accuracy, measured on this export
| | value |
|---|---|
| test accuracy of the export | {f['test_accuracy'] * 100:.2f}% |
| test accuracy of the Keras model | {f['keras_test_accuracy'] * 100:.2f}% |
| argmax agreement with Keras | {f['argmax_agreement'] * 100:.2f}% |
| max abs. difference in probabilities | {f['max_abs_diff']:.2e} |
{quant}
## Intended use
Reading single handwritten digits, or digits segmented from a number, in forms, drawings and demos.

## Known limits
- MNIST-style digits only: Western Arabic numerals 0-9, one per input; no letters, no other scripts.
- It expects the MNIST input form above; raw camera frames give wrong answers without preprocessing.
- Trained with label smoothing: the top probability of a clear digit is about 0.9, not 1.0. Use the
  calibrated threshold (`min_confidence` in metrics.json) rather than a fixed 0.99.
- MNIST writers are American census staff and students; other handwriting styles may score lower.
"""
    _atomic_bytes(out / "MODEL_CARD.md", card.encode())
