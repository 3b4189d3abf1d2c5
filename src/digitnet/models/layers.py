"""Custom Keras layers and the training loss, registered so checkpoints load with ``safe_mode=True`` with digitnet."""

from __future__ import annotations

import keras

from .._tf import import_tf

tf = import_tf()


@keras.saving.register_keras_serializable(package="digitnet")
class FusedBatchNorm(keras.layers.Layer):
    """Batch normalization over the last axis of NHWC images through TensorFlow's fused kernel.

    Keras 3's ``BatchNormalization`` computes the moments with separate ops on CPU; the fused kernel
    does normalization and moments in one pass, about 30% faster per epoch here, at equal accuracy.
    """

    def __init__(self, momentum: float = 0.9, epsilon: float = 1e-3, **kwargs):
        super().__init__(**kwargs)
        self.momentum = momentum
        self.epsilon = epsilon

    def build(self, input_shape):
        c = input_shape[-1]
        self.gamma = self.add_weight(shape=(c,), initializer="ones", name="gamma")
        self.beta = self.add_weight(shape=(c,), initializer="zeros", name="beta")
        # "mean" aggregation lets replicas of a MirroredStrategy update the moving statistics.
        self.moving_mean = self.add_weight(shape=(c,), initializer="zeros", name="moving_mean",
                                           trainable=False, aggregation="mean")
        self.moving_variance = self.add_weight(shape=(c,), initializer="ones", name="moving_variance",
                                               trainable=False, aggregation="mean")

    def call(self, x, training=False):  # x: (batch, h, w, c)
        if training:
            empty = tf.constant([], tf.float32)
            y, mean, var, *_ = tf.raw_ops.FusedBatchNormV3(
                x=x, scale=self.gamma, offset=self.beta, mean=empty, variance=empty,
                epsilon=self.epsilon, exponential_avg_factor=1.0, data_format="NHWC", is_training=True)
            m = self.momentum
            self.moving_mean.assign(self.moving_mean * m + mean * (1 - m))
            self.moving_variance.assign(self.moving_variance * m + var * (1 - m))
            return y
        y, *_ = tf.raw_ops.FusedBatchNormV3(
            x=x, scale=self.gamma, offset=self.beta, mean=self.moving_mean, variance=self.moving_variance,
            epsilon=self.epsilon, exponential_avg_factor=1.0, data_format="NHWC", is_training=False)
        return y

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "epsilon": self.epsilon}


@keras.saving.register_keras_serializable(package="digitnet")
class GradientScale(keras.layers.Layer):
    """The identity going forward; going back, the gradient times ``scale``.

    Between the CNN's pooled features and its digit-score head at 0.25: the digit-or-not loss still shapes
    the shared convolutions (rejection and the segmenter lean on that), but a quarter as hard, which gives
    the digits back most of the validation accuracy the non-digits cost (docs/PERFORMANCE.md).
    """

    def __init__(self, scale: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.scale = scale

    def call(self, x):
        return keras.ops.stop_gradient(x) * (1.0 - self.scale) + x * self.scale

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "scale": self.scale}


@keras.saving.register_keras_serializable(package="digitnet")
class DigitLoss(keras.losses.Loss):
    """The loss on a training view's (batch, 11) heads: cross-entropy on the 10 digit logits for digits
    only, plus a weighted binary cross-entropy on the digit logit (is it a digit at all?) for every image.

    ``y_true`` is (batch, 11): the one-hot digit (all zeros for a non-digit), then 1 for a digit, 0 for not.
    """

    def __init__(self, label_smoothing: float = 0.0, score_weight: float = 0.5, **kwargs):
        super().__init__(**kwargs)
        self.label_smoothing = label_smoothing
        self.score_weight = score_weight

    def call(self, y_true, y_pred):
        is_digit = y_true[:, 10]  # (batch,)
        target = y_true[:, :10] * (1 - self.label_smoothing) + self.label_smoothing / 10
        ce = keras.ops.categorical_crossentropy(target, y_pred[:, :10], from_logits=True)
        bce = keras.ops.binary_crossentropy(y_true[:, 10:], y_pred[:, 10:], from_logits=True)[:, 0]
        return is_digit * ce + self.score_weight * bce

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing, "score_weight": self.score_weight}


@keras.saving.register_keras_serializable(package="digitnet")
def accuracy(y_true, y_pred):
    """Per image: a digit read as the right digit, or a non-digit scored under 0.5."""
    is_digit = y_true[:, 10] > 0.5
    right_digit = keras.ops.argmax(y_pred[:, :10], axis=1) == keras.ops.argmax(y_true[:, :10], axis=1)
    return keras.ops.cast(keras.ops.where(is_digit, right_digit & (y_pred[:, 10] > 0), y_pred[:, 10] <= 0), "float32")


# Our layers' plain-Keras equivalents at inference: the class, and its config beyond name/trainable/dtype.
_KERAS_EQUIVALENT = {
    "digitnet>FusedBatchNorm": ("BatchNormalization",
                                lambda c: {"axis": -1, "momentum": c["momentum"], "epsilon": c["epsilon"]}),
    "digitnet>GradientScale": ("Identity", lambda c: {}),
}


def portable_config(config):
    """A model config with every FusedBatchNorm swapped for Keras's own BatchNormalization, and every
    GradientScale for Keras's Identity.

    Both pairs compute the same thing at inference, and the batch norms hold (gamma, beta, moving_mean,
    moving_variance) in that order, so the weights carry over unchanged and saved models load with plain Keras.
    """
    if isinstance(config, list):
        return [portable_config(c) for c in config]
    if not isinstance(config, dict):
        return config
    keras_layer = _KERAS_EQUIVALENT.get(config.get("registered_name"))
    if keras_layer is not None:
        class_name, extra = keras_layer
        c = config["config"]
        return {**config, "module": "keras.layers", "class_name": class_name, "registered_name": None,
                "config": {"name": c["name"], "trainable": c.get("trainable", True), "dtype": c.get("dtype"),
                           **extra(c)}}
    return {k: portable_config(v) for k, v in config.items()}
