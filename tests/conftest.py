"""Shared fixtures. Unit tests make their own small data; `mnist` is the real thing, loaded once."""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="session")
def mnist():
    """Real MNIST through the verified loader (cache or any source): ((x_train, y_train), (x_test, y_test))."""
    from digitnet.data import load_mnist

    return load_mnist()


@pytest.fixture
def tiny_digits():
    """A small fake digit set: (images uint8 (n, 28, 28), labels uint8 (n,))."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(12, 28, 28), dtype=np.uint8)
    labels = (np.arange(12) % 10).astype(np.uint8)
    return images, labels


@pytest.fixture(scope="session")
def predictor():
    """The shipped default model, loaded once and reused by the real-world, server and export tests."""
    from digitnet.inference import Predictor, shipped_model_path

    return Predictor.load(shipped_model_path())
