"""Data sets: IDX/npz parsing, verified fetching, MNIST and the tutorial's split; generated non-digits and captures."""

from .fetch import ChecksumError, DatasetSpec, DataUnavailableError, FileSpec, fetch_dataset
from .idx import read_idx, read_npz, write_idx
from .mnist import MNIST, load_dataset, load_mnist, load_tutorial_split, read_dir

__all__ = [
    "MNIST",
    "ChecksumError",
    "DataUnavailableError",
    "DatasetSpec",
    "FileSpec",
    "fetch_dataset",
    "load_dataset",
    "load_mnist",
    "load_tutorial_split",
    "read_dir",
    "read_idx",
    "read_npz",
    "write_idx",
]
