"""The user's handwriting samples: normalized 28x28 digits under ``$DIGITNET_HOME/samples/<label>/<sha256>.png``.

The layout is the one ``--dataset DIR`` reads, and ``digitnet personalize`` learns from. A sample's id is
the sha256 of its 784 raw bytes (PNG bytes differ between Pillow versions), so the same image is stored
once; stored again under another label, the newer label wins. Writes are atomic; the caps
(:data:`~digitnet.presets.SAMPLES_PER_LABEL`, :data:`~digitnet.presets.SAMPLES_TOTAL`) hold across
processes (a lock file). Nothing here is ever sent anywhere.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
from pathlib import Path

import numpy as np

from . import config
from .errors import InputError, SampleCapError
from .fileio import atomic_write_bytes
from .presets import IMAGE_SIZE, NUM_CLASSES, SAMPLES_PER_LABEL, SAMPLES_TOTAL

_ID = re.compile(r"[0-9a-f]{64}")


def sample_id(image: np.ndarray) -> str:
    """The sha256 of a uint8 (28, 28) image's raw bytes."""
    return hashlib.sha256(np.ascontiguousarray(image, np.uint8).tobytes()).hexdigest()


def check_label(label) -> int:
    """A digit 0-9 given as an int or a string of one digit; anything else raises :class:`InputError`."""
    if isinstance(label, bool) or not isinstance(label, (int, str, np.integer)):
        raise InputError(f"label must be a digit 0-9, got {label!r}")
    text = str(label).strip()
    if not (text.isdigit() and len(text) == 1):
        raise InputError(f"label must be a digit 0-9, got {label!r}")
    return int(text)


class SampleStore:
    """One user's samples (one store per ``$DIGITNET_HOME``)."""

    def __init__(self, root: str | os.PathLike | None = None,
                 per_label: int = SAMPLES_PER_LABEL, total: int = SAMPLES_TOTAL):
        self.root = Path(root) if root is not None else config.samples_dir()
        self.per_label, self.total = per_label, total

    @contextlib.contextmanager
    def _locked(self):
        """An exclusive lock across processes (two servers adding at once must not pass a cap)."""
        import fcntl

        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "w") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def _path(self, sid: str) -> Path | None:
        for d in range(NUM_CLASSES):
            p = self.root / str(d) / f"{sid}.png"
            if p.is_file():
                return p
        return None

    def add(self, image: np.ndarray, label) -> tuple[str, bool]:
        """Store a uint8 (28, 28) MNIST-form image under ``label``; returns (id, whether it was new).

        Raises :class:`InputError` for a bad label or image and :class:`SampleCapError` past a cap.
        """
        from PIL import Image

        label = check_label(label)
        image = np.asarray(image)
        if image.shape != (IMAGE_SIZE, IMAGE_SIZE) or image.dtype != np.uint8:
            raise InputError(f"a sample is a uint8 (28, 28) MNIST-form image, got {image.dtype} {image.shape}")
        if not image.any():
            raise InputError("a sample must hold ink: this image is blank")
        sid = sample_id(image)
        with self._locked():
            old = self._path(sid)
            if old is not None and old.parent.name == str(label):
                return sid, False
            counts = self.counts()
            if counts[str(label)] >= self.per_label:
                raise SampleCapError(f"digit {label} already has {self.per_label} samples (the cap); delete some first")
            if old is None and sum(counts.values()) >= self.total:
                raise SampleCapError(f"the store holds {self.total} samples (the cap); delete some first")
            buf = io.BytesIO()
            Image.fromarray(image, mode="L").save(buf, format="PNG")
            (self.root / str(label)).mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(self.root / str(label) / f"{sid}.png", buf.getvalue())
            if old is not None:  # relabelled: the newer label wins
                old.unlink()
        return sid, old is None

    def counts(self) -> dict[str, int]:
        """Samples per digit, "0" to "9" (zeros included)."""
        return {str(d): len(self._files(d)) for d in range(NUM_CLASSES)}

    def _files(self, d: int) -> list[Path]:
        folder = self.root / str(d)
        return sorted(p for p in folder.glob("*.png") if _ID.fullmatch(p.stem)) if folder.is_dir() else []

    def list(self) -> list[dict]:
        """``[{"id", "label"}]``, by label then id."""
        return [{"id": p.stem, "label": d} for d in range(NUM_CLASSES) for p in self._files(d)]

    def delete(self, sid: str) -> bool:
        """Remove one sample; False when there is none with that id."""
        if not isinstance(sid, str) or not _ID.fullmatch(sid):
            raise InputError("a sample id is 64 lowercase hex digits (its sha256)")
        with self._locked():
            path = self._path(sid)
            if path is None:
                return False
            path.unlink()
            return True

    def clear(self) -> int:
        """Remove every sample; returns how many there were."""
        with self._locked():
            files = [p for d in range(NUM_CLASSES) for p in self._files(d)]
            for p in files:
                p.unlink()
        return len(files)

    def load(self) -> tuple[np.ndarray, np.ndarray]:
        """All samples: uint8 images (n, 28, 28) and labels (n,)."""
        from PIL import Image

        images, labels = [], []
        for item in self.list():
            with Image.open(self.root / str(item["label"]) / f"{item['id']}.png") as im:
                images.append(np.asarray(im.convert("L"), np.uint8))
            labels.append(item["label"])
        if not images:
            return np.zeros((0, IMAGE_SIZE, IMAGE_SIZE), np.uint8), np.zeros((0,), np.uint8)
        return np.stack(images), np.array(labels, np.uint8)


def load_folder(folder: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Images in subfolders ``0/ ... 9/`` of any folder, as uint8 (n, 28, 28) MNIST form and labels (n,):
    28x28 single-channel images as they are, any other image read like ``predict`` input."""
    from .data.datasets import DIGITS, read_digit
    from .errors import DataError
    from .preprocessing import IMAGE_SUFFIXES

    folder = Path(folder)
    if not any((folder / d).is_dir() for d in DIGITS):
        raise DataError(f"{folder} has no subfolders 0/ ... 9/ of digit images")
    images, labels = [], []
    for d in DIGITS:
        for f in sorted((folder / d).glob("*")) if (folder / d).is_dir() else []:
            if f.suffix.lower() in IMAGE_SUFFIXES and (image := read_digit(f)) is not None:
                images.append(image)
                labels.append(int(d))
    if not images:
        return np.zeros((0, IMAGE_SIZE, IMAGE_SIZE), np.uint8), np.zeros((0,), np.uint8)
    return np.stack(images), np.array(labels, np.uint8)
