"""Named data sets for training and evaluation: ``mnist``, ``fashion-mnist``, or a folder."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ConfigError, DataError
from ..presets import IMAGE_SIZE, NUM_CLASSES
from .fetch import DatasetSpec, FileSpec, GzMirror, Source
from .mnist import MNIST, MNIST_SOURCES, Split, load_dataset, read_dir

FASHION_MNIST = DatasetSpec(
    "fashion-mnist",
    {
        "train_images": FileSpec(
            "train-images-idx3-ubyte", "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"
        ),
        "train_labels": FileSpec(
            "train-labels-idx1-ubyte", "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9"
        ),
        "test_images": FileSpec(
            "t10k-images-idx3-ubyte", "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"
        ),
        "test_labels": FileSpec(
            "t10k-labels-idx1-ubyte", "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"
        ),
    },
)
FASHION_GZ_SHA256 = {
    "train_images": "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",
    "train_labels": "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",
    "test_images": "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
    "test_labels": "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
}
FASHION_SOURCES: tuple[Source, ...] = (
    GzMirror("/usr/share/datasets/fashion-mnist", FASHION_GZ_SHA256),  # Debian: dataset-fashion-mnist
    GzMirror("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/", FASHION_GZ_SHA256),
)
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                   "Ankle boot")
DIGITS = tuple(str(i) for i in range(NUM_CLASSES))

NAMED = {"mnist": (MNIST, MNIST_SOURCES, DIGITS), "fashion-mnist": (FASHION_MNIST, FASHION_SOURCES, FASHION_CLASSES)}


@dataclass(frozen=True)
class DatasetInfo:
    name: str  # "mnist", "fashion-mnist", or the folder's path
    sha256: str  # fingerprint of the four arrays (images and labels, train then test)
    classes: tuple[str, ...]


def fingerprint(train: Split, test: Split) -> str:
    h = hashlib.sha256()
    for a in (*train, *test):
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def load(
    dataset: str, data_dir: str | os.PathLike | None = None, cache_dir: str | os.PathLike | None = None
) -> tuple[Split, Split, DatasetInfo]:
    """Load ``mnist``, ``fashion-mnist``, or a folder: the four IDX files (raw or .gz), or class
    subfolders ``0/ ... 9/`` of images (see :func:`read_image_folder`)."""
    if dataset in NAMED:
        spec, sources, classes = NAMED[dataset]
        train, test = load_dataset(spec, sources, data_dir if dataset == "mnist" else None, cache_dir)
    elif Path(dataset).is_dir():
        folder = Path(dataset)
        is_images = any((folder / d).is_dir() for d in DIGITS) or (folder / "train").is_dir()
        train, test = read_image_folder(folder) if is_images else read_dir(folder, MNIST)
        classes = DIGITS
    else:
        raise ConfigError(f"unknown dataset {dataset!r}: use mnist, fashion-mnist, or a folder")
    return train, test, DatasetInfo(str(dataset), fingerprint(train, test), classes)


def read_digit(path: str | os.PathLike) -> np.ndarray | None:
    """One digit image as uint8 (28, 28) MNIST form, or None when it holds no digit. A 28x28
    single-channel image is taken as already normalized (a saved sample, an MNIST digit): normalizing
    it a second time would shrink it. Anything else is read the way ``digitnet predict --single`` reads it.
    """
    from PIL import Image

    from ..preprocessing import decode, segment

    try:
        with Image.open(path) as im:  # the header only
            normalized = im.size == (IMAGE_SIZE, IMAGE_SIZE) and im.mode in ("1", "L", "I", "I;16")
    except Exception:  # unreadable: segment() below raises ImageError saying why
        normalized = False
    if normalized:
        image = np.round(decode(path)[..., 0] * 255).astype(np.uint8)  # (28, 28)
        return image if image.any() else None
    seg = segment(path, single=True)
    return seg.digits[0].image if seg.digits else None


def read_image_folder(folder: str | os.PathLike, test_share: float = 0.2) -> tuple[Split, Split]:
    """Images sorted into class subfolders ``0/ ... 9/``, each normalized to MNIST form by
    :func:`read_digit` (saved 28x28 samples are taken as they are). With ``train/`` and ``test/``
    subfolders (each holding ``0/ ... 9/``) those are the split; otherwise a fixed ``test_share`` of each
    class is held out.

    An image with no digit in it is skipped (and counted in the log); an unreadable one raises.
    """
    import logging

    from ..preprocessing import IMAGE_SUFFIXES

    log = logging.getLogger(__name__)
    folder = Path(folder)

    def listing(sub: Path) -> list[Path]:  # Path.glob would skip an unreadable folder without a word
        if not sub.is_dir():
            return []
        try:
            return sorted(sub / name for name in os.listdir(sub))
        except OSError as e:
            raise DataError(f"{sub}: cannot read this class folder ({e.strerror or e})") from None

    def read(root: Path) -> Split:
        images, labels, skipped = [], [], 0
        for d in DIGITS:
            for f in listing(root / d):
                if f.suffix.lower() not in IMAGE_SUFFIXES:
                    continue
                image = read_digit(f)
                if image is None:
                    skipped += 1
                    continue
                images.append(image)
                labels.append(int(d))
        if skipped:
            log.warning("%s: skipped %d images with no digit in them", root, skipped)
        if not images:
            raise DataError(f"{root} holds no readable digit images in subfolders 0/ ... 9/")
        return np.stack(images), np.array(labels, np.uint8)

    if (folder / "train").is_dir() and (folder / "test").is_dir():
        return read(folder / "train"), read(folder / "test")
    x, y = read(folder)
    rng = np.random.default_rng(0)
    test_idx = np.concatenate([rng.permutation(np.flatnonzero(y == c))[: int(round(test_share * (y == c).sum()))]
                               for c in range(NUM_CLASSES)]).astype(int)
    mask = np.zeros(len(y), bool)
    mask[test_idx] = True
    if mask.all() or not mask.any():
        raise DataError(f"{folder}: too few images to hold {test_share:.0%} out for testing")
    return (x[~mask], y[~mask]), (x[mask], y[mask])
