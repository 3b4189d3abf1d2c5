"""Convert a Keras model to deployment files: SavedModel, TFLite (float32 or int8) and ONNX.

Every file takes float32 ``image`` (batch, 28, 28) in [0, 1], white ink on black, centred (the int8
model takes int8) and returns the named outputs in :data:`OUTPUTS`: ``probabilities`` (batch, 10),
``logits`` (batch, 10) before the softmax, and ``digit_score`` (batch,), the belief that it is a digit at all.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from ._tf import import_tf
from .errors import ConfigError
from .fileio import atomic_replace_dir, atomic_write_bytes
from .presets import IMAGE_SIZE, INT8_CALIBRATION_SIZE, OUTPUTS  # OUTPUTS sorted, as tf.function flattens

INPUT_NAME = "image"


def named_outputs(model):
    """A function image -> {"digit_score", "logits", "probabilities"} over ``model``'s weights.

    ``digit_score`` is (batch,). A model with no digit head (the tutorial's wrapped network) scores every
    image 1: it cannot tell. Models saved before the output contract (a softmax inside the last Dense
    layer) have no ``logits`` layer; their log-probabilities stand in, which the softmax maps back to the
    same probabilities.
    """
    import keras

    tf = import_tf()
    names = {layer.name for layer in model.layers}
    if "logits" in names:
        heads = {name: model.get_layer(name).output for name in OUTPUTS if name in names}
        both = keras.Model(model.input, heads)

        def fn(image):  # (batch, 28, 28) -> (batch,), (batch, 10), (batch, 10)
            out = both(image, training=False)
            probs = out["probabilities"]
            score = tf.reshape(out["digit_score"], [-1]) if "digit_score" in out else tf.ones_like(probs[:, 0])
            return {"digit_score": score, "logits": out["logits"], "probabilities": probs}
    else:
        def fn(image):
            probs = model(image, training=False)
            return {"digit_score": tf.ones_like(probs[:, 0]), "logits": tf.math.log(tf.maximum(probs, 1e-12)),
                    "probabilities": probs}
    return fn


def input_spec():
    tf = import_tf()
    return tf.TensorSpec([None, IMAGE_SIZE, IMAGE_SIZE], tf.float32, name=INPUT_NAME)


def export_savedmodel(model, out: Path) -> Path:
    """``out/1/``: the versioned layout TensorFlow Serving loads as is, signature ``serving_default``
    taking ``image`` and returning ``digit_score``, ``logits`` and ``probabilities``."""
    import keras

    def write(tmp: Path) -> None:
        # Keras's ExportArchive tracks the model's variables; a bare tf.function over a Keras 3 model
        # converts to a TFLite file without its weights.
        archive = keras.export.ExportArchive()
        archive.track(model)
        archive.add_endpoint(name="serving_default", fn=named_outputs(model), input_signature=[input_spec()])
        archive.write_out(str(tmp), verbose=False)

    out.mkdir(parents=True, exist_ok=True)
    return atomic_replace_dir(out / "1", write)


def export_tflite(model, out: Path, int8: bool = False, calibration: np.ndarray | None = None) -> Path:
    """``out/model.tflite``: float32, or full-integer with ``int8`` (then ``calibration`` images are needed)."""
    tf = import_tf()
    with tempfile.TemporaryDirectory() as tmp:
        # Through a SavedModel: the converter then freezes every weight (from a bare function it may not).
        saved = export_savedmodel(model, Path(tmp))
        converter = tf.lite.TFLiteConverter.from_saved_model(str(saved), signature_keys=["serving_default"])
        data = _convert(converter, int8, calibration)
    out.mkdir(parents=True, exist_ok=True)
    return atomic_write_bytes(out / "model.tflite", data)


def calibration_images(n: int = INT8_CALIBRATION_SIZE, data_dir=None, cache_dir=None) -> np.ndarray:
    """``n`` MNIST training images, a fixed sample, for int8 calibration (never test images)."""
    from .data import load_mnist

    (x_train, _), _ = load_mnist(data_dir, cache_dir)
    return x_train[np.random.default_rng(0).choice(len(x_train), n, replace=False)]


def export_tflite_int8(model, out: Path, data_dir=None, cache_dir=None,
                       calibration_size: int = INT8_CALIBRATION_SIZE) -> Path:
    """Full-integer TFLite, calibrated on ``calibration_size`` MNIST training images."""
    calibration = calibration_images(calibration_size, data_dir, cache_dir)
    return export_tflite(model, out, int8=True, calibration=calibration)


def _convert(converter, int8: bool, calibration: np.ndarray | None) -> bytes:
    tf = import_tf()
    if int8:
        if calibration is None:
            raise ConfigError("int8 quantization needs calibration images")
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
    """``out/model.onnx`` through tf2onnx, with the graph's input and outputs named clearly."""
    import onnx
    import tf2onnx

    tf = import_tf()
    fn = tf.function(named_outputs(model))
    proto, _ = tf2onnx.convert.from_function(fn, input_signature=(input_spec(),), opset=17)
    # tf2onnx names outputs "Identity:0", "Identity_1:0"...; they come in the dict's sorted key order.
    renames = {o.name: name for o, name in zip(proto.graph.output, OUTPUTS)}
    for node in proto.graph.node:
        node.output[:] = [renames.get(o, o) for o in node.output]
        node.input[:] = [renames.get(i, i) for i in node.input]
    for o in proto.graph.output:
        o.name = renames[o.name]
    onnx.checker.check_model(proto)
    out.mkdir(parents=True, exist_ok=True)
    return atomic_write_bytes(out / "model.onnx", proto.SerializeToString())


CONVERTERS = {"savedmodel": export_savedmodel, "tflite": export_tflite, "tflite-int8": export_tflite_int8,
              "onnx": export_onnx}
