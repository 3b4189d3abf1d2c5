"""Re-render MNIST test digits the way users make them: the families the preprocessing must handle.

Each function takes one uint8 (28, 28) MNIST digit (white on black) and a NumPy Generator, and returns
an image input (a PIL image or encoded bytes) as a user would hand it over.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image
from scipy import ndimage


def _up(d: np.ndarray, k: float) -> np.ndarray:
    """Upscale a digit smoothly to float [0, 1]."""
    size = max(2, int(round(28 * k)))
    return np.asarray(Image.fromarray(d).resize((size, size), Image.Resampling.BICUBIC), np.float32).clip(0, 255) / 255


def _pil(a: np.ndarray) -> Image.Image:
    return Image.fromarray(np.round(np.clip(a, 0, 1) * 255).astype(np.uint8))


def inverted(d, rng):
    return _pil(1 - _up(d, 4))  # black ink on white paper


def scaled(d, rng):
    return _pil(1 - _up(d, rng.uniform(2, 10)))


def off_centre(d, rng):
    ink = _up(d, rng.uniform(2, 4))
    h, w = int(rng.integers(300, 600)), int(rng.integers(300, 800))
    canvas = np.zeros((h, w), np.float32)
    y, x = int(rng.integers(0, h - ink.shape[0])), int(rng.integers(0, w - ink.shape[1]))
    canvas[y : y + ink.shape[0], x : x + ink.shape[1]] = ink
    return _pil(1 - canvas)


def coloured(d, rng):
    ink = _up(d, 4)[..., None]
    paper = rng.uniform(0.55, 1.0, 3)
    pen = rng.uniform(0.0, 0.45, 3)
    if rng.random() < 0.3:  # sometimes light ink on dark paper
        paper, pen = pen, paper
    return _pil(paper * (1 - ink) + pen * ink)


def rgba_transparent(d, rng):
    ink = _up(d, 4)
    rgba = np.zeros(ink.shape + (4,), np.float32)  # black strokes, transparent elsewhere
    rgba[..., 3] = ink
    return Image.fromarray(np.round(rgba * 255).astype(np.uint8), mode="RGBA")


def jpeg(d, rng):
    buf = io.BytesIO()
    _pil(1 - _up(d, 4)).save(buf, format="JPEG", quality=int(rng.integers(20, 60)))
    return buf.getvalue()


def noisy_gradient(d, rng):
    ink = _up(d, 5)
    yy, xx = np.mgrid[0 : ink.shape[0], 0 : ink.shape[1]] / ink.shape[0]
    angle = rng.uniform(0, 2 * np.pi)
    ramp = np.cos(angle) * xx + np.sin(angle) * yy
    light = 0.95 - 0.5 * (ramp - ramp.min()) / (ramp.max() - ramp.min())  # light falls off across the page
    paper = light * (1 - 0.8 * ink)
    return _pil(paper + rng.normal(0, 0.06, ink.shape))


def thin_strokes(d, rng):
    """A 280x280 canvas drawn with a thin pen (about 5 px, a tenth of MNIST's scaled stroke): the digit's
    centre line, plus the cores of blotted areas, which a pen would have filled too."""
    big = _up(d, 10) > 0.5
    edt = ndimage.distance_transform_edt(big)
    ridge = big & (edt >= ndimage.maximum_filter(edt, size=5) - 0.5)
    line = ndimage.binary_dilation(ridge, iterations=2) | (edt > 0.7 * edt.max())
    return _pil(1 - line.astype(np.float32))


FAMILIES = {
    "inverted": inverted,
    "scaled": scaled,
    "off_centre": off_centre,
    "coloured": coloured,
    "rgba_transparent": rgba_transparent,
    "jpeg": jpeg,
    "noisy_gradient": noisy_gradient,
    "thin_strokes": thin_strokes,
}


def number_image(digits: list[np.ndarray], rng, height: int = 80) -> Image.Image:
    """Several MNIST digits side by side with varied spacing and vertical jitter, dark on light."""
    k = height / 28
    tiles = [_up(d, k * rng.uniform(0.85, 1.1)) for d in digits]
    gaps = [int(rng.uniform(0.05, 0.5) * height) for _ in tiles]
    width = sum(t.shape[1] for t in tiles) + sum(gaps) + height
    canvas = np.zeros((int(height * 1.6), width), np.float32)
    x = height // 2
    for t, gap in zip(tiles, gaps):
        # MNIST digits have a 4-pixel margin: crop columns to the ink so that gaps are real gaps.
        cols = np.flatnonzero(t.max(axis=0) > 0.1)
        t = t[:, cols.min() : cols.max() + 1] if len(cols) else t
        y = int(height * 0.3 + rng.uniform(-0.1, 0.1) * height)
        canvas[y : y + t.shape[0], x : x + t.shape[1]] = np.maximum(canvas[y : y + t.shape[0], x : x + t.shape[1]], t)
        x += t.shape[1] + gap
    return _pil(1 - canvas[:, : x + height // 2])
