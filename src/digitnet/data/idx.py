"""Readers for the IDX format (LeCun's MNIST files, raw or gzipped) and Keras's ``mnist.npz``.

IDX layout: two zero bytes, a dtype code, the number of dimensions, one big-endian uint32 per
dimension, then the data in C order, big-endian. Every problem raises ``DataError`` (a ``ValueError``) naming the file.
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zipfile
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np

from ..errors import DataError

# IDX dtype code -> big-endian numpy dtype
_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODES = {dt.newbyteorder("="): code for code, dt in _DTYPES.items()}
_MAX_BYTES = 1 << 31  # no real IDX file is near this; refuse headers that claim more
_GZIP_MAGIC = b"\x1f\x8b"


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one IDX file, raw or gzipped (detected from its first bytes, not its name).

    Returns an array with the file's dtype in native byte order (uint8 for MNIST) and the shape
    its header gives, e.g. (60000, 28, 28) for training images.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            gz = f.read(2) == _GZIP_MAGIC
        if not gz:
            with open(path, "rb") as f:
                return _read_stream(f, path.name, file_size=os.fstat(f.fileno()).st_size)
        with gzip.open(path, "rb") as f:
            return _read_stream(f, path.name, file_size=None)
    except (EOFError, zlib.error, gzip.BadGzipFile) as e:
        raise DataError(f"{path.name}: corrupt gzip data ({e})") from e


def _read_stream(f: BinaryIO, name: str, file_size: int | None) -> np.ndarray:
    magic = f.read(4)
    if len(magic) < 4:
        raise DataError(f"{name}: too short for an IDX header ({len(magic)} bytes)")
    zero, code, ndim = struct.unpack(">HBB", magic)
    if zero != 0:
        raise DataError(f"{name}: bad magic number 0x{magic.hex()} (IDX files start with two zero bytes)")
    if code not in _DTYPES:
        raise DataError(f"{name}: unknown IDX dtype code 0x{code:02x}")
    if not 1 <= ndim <= 4:
        raise DataError(f"{name}: unsupported number of dimensions {ndim} (expected 1 to 4)")
    raw_dims = f.read(4 * ndim)
    if len(raw_dims) < 4 * ndim:
        raise DataError(f"{name}: truncated header (needs {ndim} dimensions)")
    shape = struct.unpack(f">{ndim}I", raw_dims)
    dtype = _DTYPES[code]
    expected = math.prod(shape) * dtype.itemsize  # Python ints: no overflow on hostile headers
    if expected > _MAX_BYTES:
        raise DataError(f"{name}: header claims {expected} bytes of data, more than any IDX file holds")
    header = 4 + 4 * ndim
    if file_size is not None and file_size != header + expected:
        raise DataError(
            f"{name}: file is {file_size} bytes but its header {shape} needs {header + expected}"
        )
    data = f.read(expected)
    if len(data) != expected:
        raise DataError(f"{name}: truncated: header {shape} needs {expected} data bytes, found {len(data)}")
    if f.read(1):
        raise DataError(f"{name}: trailing bytes after the {expected} data bytes its header {shape} needs")
    return np.frombuffer(data, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="), copy=False)


def write_idx(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write ``array`` as a raw (uncompressed) IDX file. Inverse of :func:`read_idx`."""
    array = np.asarray(array)
    code = _CODES.get(array.dtype.newbyteorder("="))
    if code is None:
        raise DataError(f"IDX cannot store dtype {array.dtype}")
    if not 1 <= array.ndim <= 4:
        raise DataError(f"IDX needs 1 to 4 dimensions, got {array.ndim}")
    with open(path, "wb") as f:
        f.write(struct.pack(">HBB", 0, code, array.ndim))
        f.write(struct.pack(f">{array.ndim}I", *array.shape))
        f.write(np.ascontiguousarray(array, dtype=_DTYPES[code]).tobytes())


def check_pair(images: np.ndarray, labels: np.ndarray, name: str) -> None:
    """Check that an images/labels pair is a digit data set: uint8 (n, h, w) and (n,) labels 0-9."""
    if images.dtype != np.uint8 or images.ndim != 3:
        raise DataError(f"{name}: images must be uint8 (n, height, width), got {images.dtype} {images.shape}")
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise DataError(f"{name}: labels must be uint8 (n,), got {labels.dtype} {labels.shape}")
    if len(images) != len(labels):
        raise DataError(f"{name}: {len(images)} images but {len(labels)} labels")
    if labels.size and labels.max() > 9:
        raise DataError(f"{name}: labels must lie in 0-9, found {int(labels.max())}")


def read_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read Keras's ``mnist.npz`` (keys x_train, y_train, x_test, y_test), never unpickling."""
    path = Path(path)
    keys = ("x_train", "y_train", "x_test", "y_test")
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in keys if k not in npz.files]
            if missing:
                raise DataError(f"{path.name}: missing arrays {missing} (has {npz.files})")
            arrays = {k: npz[k] for k in keys}
    except (OSError, EOFError, zlib.error, zipfile.BadZipFile) as e:  # np.load's errors on non-npz bytes
        raise DataError(f"{path.name}: not a readable .npz file ({e})") from e
    check_pair(arrays["x_train"], arrays["y_train"], f"{path.name} (train)")
    check_pair(arrays["x_test"], arrays["y_test"], f"{path.name} (test)")
    return arrays
