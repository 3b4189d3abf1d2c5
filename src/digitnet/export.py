"""Export a trained model for deployment, prove the export equivalent on the MNIST test set, write its model card.

| format      | written                   | runtime that verifies it          |
|-------------|---------------------------|-----------------------------------|
| savedmodel  | DIR/1/ (TF Serving layout)| tf.saved_model.load               |
| tflite      | DIR/model.tflite (float32)| LiteRT / tf.lite interpreter      |
| tflite-int8 | DIR/model.tflite (int8)   | LiteRT / tf.lite interpreter      |
| onnx        | DIR/model.onnx            | onnxruntime                       |

The conversion itself lives in ``digitnet.conversion`` and the runtimes in ``digitnet.runtimes``; this
module sits on top of both and of :class:`~digitnet.inference.Predictor`, the reference.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from . import conversion
from .conversion import INPUT_NAME
from .errors import ConfigError
from .fileio import atomic_write_text
from .inference import Predictor
from .presets import FORMATS, INT8_CALIBRATION_SIZE
from .runtimes import open_file

OUTPUT_NAME = "probabilities"


def export(model_path, fmt: str, out, *, data_dir=None, cache_dir=None,
           calibration_size: int = INT8_CALIBRATION_SIZE) -> dict:
    """Export the model at ``model_path`` to ``out`` in ``fmt``, verify it on the MNIST test set against
    the Keras model, write ``out/MODEL_CARD.md``, and return the verification figures."""
    from .data import load_mnist

    if fmt not in FORMATS:
        raise ConfigError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    predictor = Predictor.load(model_path, backend="tf")  # the Keras model itself is the reference
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    _, (x_test, y_test) = load_mnist(data_dir, cache_dir)
    t0 = time.perf_counter()
    if fmt == "tflite-int8":
        path = conversion.export_tflite_int8(predictor.model, out, data_dir, cache_dir, calibration_size)
    else:
        path = conversion.CONVERTERS[fmt](predictor.model, out)
    seconds = time.perf_counter() - t0

    expected = predictor.run(x_test, ("digit_score", OUTPUT_NAME))
    reference = expected[OUTPUT_NAME]
    run = open_file(fmt, path)
    got = run.run(x_test.astype(np.float32) / 255.0, ("digit_score", OUTPUT_NAME))
    probs = got[OUTPUT_NAME]
    size = sum(f.stat().st_size for f in (path.rglob("*") if path.is_dir() else [path]) if f.is_file())
    figures = {
        "format": fmt, "path": str(path), "bytes": size, "export_seconds": round(seconds, 2),
        "test_accuracy": float((probs.argmax(1) == y_test).mean()),
        "keras_test_accuracy": float((reference.argmax(1) == y_test).mean()),
        "argmax_agreement": float((probs.argmax(1) == reference.argmax(1)).mean()),
        "max_abs_diff": float(np.abs(probs - reference).max()),
        "digit_score_max_abs_diff": float(np.abs(got["digit_score"] - expected["digit_score"]).max()),
        # Whether the export rejects ("not a digit") exactly the test images the Keras model rejects.
        "rejection_agreement": float(((got["digit_score"] < predictor.min_digit_score)
                                      == (expected["digit_score"] < predictor.min_digit_score)).mean()),
        "n": int(len(y_test)),
    }
    if fmt == "tflite-int8":
        figures["quantization"] = run.quantization
        figures["calibration_size"] = calibration_size
    _write_card(out, predictor, figures)
    return figures


def _tensor_label(key: str) -> str:
    """A row label for a key of ``TFLiteRunner.quantization``."""
    return {"input": f"input `{INPUT_NAME}`", "output": f"output `{OUTPUT_NAME}`"}.get(key, f"output `{key}`")


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
        quant = ("\n## Quantization\n\n| tensor | dtype | scale | zero point |\n|---|---|---|---|\n"
                 + "".join(f"| {_tensor_label(name)} | {t['dtype']} | {t['scale']:.8g} | {t['zero_point']} |\n"
                           for name, t in q.items())
                 + f"\nreal = scale × (int8 − zero point). Calibrated on {f['calibration_size']:,} training "
                   "images.\n")
    min_digit_score = info.get("calibration", {}).get("min_digit_score", "0 (not calibrated: nothing is rejected)")
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
- Output `logits`: {"int8" if int8 else "float32"} (batch, 10), the raw logits, before the
  temperature and the softmax (for logit-based scores).
- Output `digit_score`: {"int8" if int8 else "float32"} (batch,), the model's belief in [0, 1] that the
  image is a digit at all. Under {min_digit_score} (`calibration.min_digit_score` in metrics.json: the
  highest threshold that rejects at most 0.3% of MNIST validation digits) the mark is "not a digit".

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
| max abs. difference in digit scores | {f['digit_score_max_abs_diff']:.2e} |
| same "not a digit" decision as Keras | {f['rejection_agreement'] * 100:.2f}% |
{quant}
## Intended use
Reading single handwritten digits, or digits segmented from a number, in forms, drawings and demos.

## Known limits
- MNIST-style digits only: Western Arabic numerals 0-9, one per input; no other scripts. Letters,
  symbols and doodles mostly score under the digit-score threshold (rates per kind in the project's
  docs/PERFORMANCE.md), but the score is learned from procedural non-digits and is not a guarantee.
- It expects the MNIST input form above; raw camera frames give wrong answers without preprocessing.
- Probabilities are calibrated on MNIST validation digits by a temperature inside the model (training
  with label smoothing leaves them underconfident otherwise); `logits` are before that temperature.
  Calibration holds for MNIST-like input; on other handwriting, treat them as scores. Flag doubtful
  answers with the calibrated threshold (`min_confidence` in metrics.json), not a fixed 0.99.
- MNIST writers are American census staff and students; other handwriting styles may score lower.
"""
    atomic_write_text(out / "MODEL_CARD.md", card)
