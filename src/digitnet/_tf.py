"""Import TensorFlow quietly: its C++ start-up chatter goes nowhere near stdout."""

from __future__ import annotations

import os


def import_tf():
    # Must be set before TensorFlow is first imported to silence oneDNN/CPU-feature notices.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")
    return tf
