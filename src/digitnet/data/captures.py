"""Training digits as a poor capture would deliver them, read back through the preprocessing.

A digit photographed from afar, blurred, written with a marker, slanted or with fading ink does not
reach the model as an MNIST digit: ``preprocessing.to_mnist`` fits it back to MNIST form, and what
comes out has its own look (a soft, fat or faint stroke). Training on MNIST alone never shows the model
that look. :func:`training_captures` makes it from the *training* split: each digit is degraded at 4x
scale in one or two of these ways (too few pixels, an even canvas pen, blur, a marker, slant, fading
ink), then passed through ``to_mnist`` exactly as a real image is.
"""

from __future__ import annotations

import numpy as np
from PIL import Image
from scipy import ndimage

from ..preprocessing import to_mnist

SCALE = 4  # degrade at 112 px: the preprocessing's own working scale for one digit

__all__ = ["DEGRADATIONS", "training_captures"]


def _lowres(ink: np.ndarray, rng) -> np.ndarray:
    """Too few pixels: the 28-px field at 7 to 16 px (the digit 5 to 11 px tall), scaled back up."""
    side = int(rng.integers(7, 17))
    im = Image.fromarray(ink, mode="F").resize((side, side), Image.Resampling.BOX)
    return np.asarray(im.resize(ink.shape[::-1], Image.Resampling.BICUBIC)).clip(0, 1)


def _blur(ink, rng):
    return ndimage.gaussian_filter(ink, rng.uniform(2.0, 6.5))


def _marker(ink, rng):
    r = int(rng.integers(2, 6))
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    return ndimage.grey_dilation(ink, footprint=xx**2 + yy**2 <= r * r)


def _slant(ink, rng):
    k = np.tan(np.radians(rng.uniform(-22, 22)))
    h = ink.shape[0]
    return ndimage.affine_transform(ink, [[1, 0], [k, 1]], offset=[0, -k * h / 2], order=1)


def _pen(ink, rng):
    """A canvas or a fine pen: strokes of one even width, 1 to 4 px here (to_mnist then thickens them)."""
    mask = ink > 0.5
    dist = ndimage.distance_transform_edt(mask)
    ridge = mask & (dist >= ndimage.maximum_filter(dist, size=5) - 0.5)  # the centre line of each stroke
    grow = int(rng.integers(0, 3))  # (scipy's iterations=0 would mean "until nothing changes": skip it instead)
    line = (ndimage.binary_dilation(ridge, iterations=grow) if grow else ridge) | (dist > 0.7 * dist.max())
    return ndimage.gaussian_filter(line.astype(np.float32), 0.7)


def _fading(ink, rng):
    coarse = rng.uniform(0.3, 1.0, (3, 3)).astype(np.float32)
    return ink * np.asarray(Image.fromarray(coarse, mode="F").resize(ink.shape[::-1], Image.Resampling.BICUBIC))


DEGRADATIONS = {"lowres": _lowres, "pen": _pen, "blur": _blur, "marker": _marker, "slant": _slant, "fading": _fading}
# How often each is drawn: too few pixels (the hardest) and an even pen (every canvas drawing) most.
WEIGHTS = {"lowres": 0.3, "pen": 0.25, "blur": 0.1, "marker": 0.15, "slant": 0.1, "fading": 0.1}


def training_captures(n: int, digits: np.ndarray, labels: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` degraded training digits in MNIST form and their labels: uint8 (n, 28, 28), (n,).

    ``digits`` and ``labels`` are the training split (uint8 (m, 28, 28), (m,)); the validation and test
    digits are never touched.
    """
    rng = np.random.default_rng([seed, 104729])
    idx = rng.choice(len(digits), n, replace=n > len(digits))
    names = list(WEIGHTS)
    out = np.empty((n, 28, 28), np.uint8)
    for j, i in enumerate(idx):
        big = Image.fromarray(digits[i]).resize((28 * SCALE, 28 * SCALE), Image.Resampling.BICUBIC)
        ink = np.asarray(big, np.float32) / 255.0
        for name in rng.choice(names, int(rng.integers(1, 3)), replace=False, p=list(WEIGHTS.values())):
            ink = DEGRADATIONS[name](ink, rng)
        # What segmentation hands on: ink above half a typical threshold, stretched to full scale.
        ink = np.clip((ink - 0.12) / max(float(ink.max()) - 0.12, 1e-6), 0, 1)
        out[j] = to_mnist(ink)
    return out, labels[idx]
