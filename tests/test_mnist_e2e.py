"""End to end on real MNIST, fetched through the loader."""

import numpy as np
import pytest

from digitnet.data import load_tutorial_split

pytestmark = pytest.mark.slow


def test_load_mnist_canonical(mnist):
    (x_train, y_train), (x_test, y_test) = mnist
    assert x_train.dtype == np.uint8 and x_train.shape == (60000, 28, 28)
    assert y_train.dtype == np.uint8 and y_train.shape == (60000,)
    assert x_test.shape == (10000, 28, 28) and y_test.shape == (10000,)
    assert list(y_train[:5]) == [5, 0, 4, 1, 9]
    assert np.bincount(y_test).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.fixture(scope="module")
def split(mnist):
    return load_tutorial_split()


def test_tutorial_split_matches_the_tutorial(split):
    X_train, X_test, y_train, y_test = split
    assert (X_train.shape, X_test.shape, y_train.shape, y_test.shape) == \
        ((56000, 784), (14000, 784), (56000, 10), (14000, 10))
    assert X_train.dtype == np.float32 and X_train.max() == 255.0 and X_train.min() == 0.0
    labels = y_test.argmax(axis=1)
    assert list(labels[:3]) == [1, 8, 8] and list(labels[-3:]) == [0, 8, 4]  # as the tutorial printed
    assert list(y_test[2]).index(1) == 8
    np.testing.assert_array_equal(y_train.sum(axis=1), 1)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_tutorial_session_reaches_96_5(split, seed, capsys):
    from digitnet import predict, train_parameters

    X_train, X_test, y_train, y_test = split
    layout = {"l0": 784, "l1": 100, "l2": 100, "l3": 60, "l4": 10}
    parameters = train_parameters(X_train, y_train, X_test, y_test, layout, seed=seed)
    out = capsys.readouterr().out
    assert out.count("Cost after epoch") == 20 and "Cost after epoch 20: " in out
    accuracy = float((predict(X_test, parameters) == y_test.argmax(axis=1)).mean())
    print(f"seed {seed}: test accuracy {accuracy:.4f}")
    assert f"Accuracy on the test set: {accuracy * 100}" in out
    assert accuracy >= 0.965
    assert predict(X_test[2], parameters)[0] == 8


def test_the_shipped_writer_ids_split_real_mnist_by_writer(mnist):
    from digitnet.data.mnist import STUDENTS, mnist_writers, split_validation
    from digitnet.presets import VAL_SIZE

    (x_train, y_train), _ = mnist
    writers = mnist_writers()  # QMNIST: 289 employees and 250 students wrote MNIST's training set
    assert writers.shape == (60000,) and len(set(writers[writers < STUDENTS])) == 289
    assert len(set(writers[writers >= STUDENTS])) == 250
    index = np.arange(60000)
    (tr, _), (va, _) = split_validation(index, y_train)  # the size every run and check uses
    # 131: the most digits of one writer
    assert VAL_SIZE <= len(va) <= VAL_SIZE + 2 * 131 and len(tr) + len(va) == 60000
    assert not set(writers[tr]) & set(writers[va])
    np.testing.assert_array_equal(split_validation(x_train, y_train)[1][0], x_train[va])
