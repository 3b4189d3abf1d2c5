"""A handwriting style MNIST lacks, for personalization tests and ``bench/personalize.py``: digits drawn with quirks.

A slashed zero (as programmers write it), a 1 whose flag is almost as long as its stem, and a 2 written
as a "Z" with a bar across. Each sample varies (rotation, slant, stretch, wobble, pen width, the quirk's
own proportions); none carries a trivially learnable marker. The digits are drawn as on the page (a pen
on a canvas) and normalized by ``preprocessing.to_mnist``, as the page's samples are.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

from digitnet.preprocessing import to_mnist

QUIRKY = (0, 1, 2)  # the affected digits


def _arc(cx, cy, rx, ry, a0, a1, n=24):
    t = np.linspace(math.radians(a0), math.radians(a1), n)
    return np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], 1)


def _quirk(digit: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Ideal strokes (unit box, y down) of one quirky digit; its proportions drawn anew each time."""
    u = rng.uniform
    if digit == 0:  # slashed
        return [_arc(0.5, 0.5, u(0.3, 0.38), 0.5, 0, 360),
                np.array([(u(0.85, 1.0), u(-0.05, 0.05)), (u(0.0, 0.15), u(0.95, 1.05))])]
    if digit == 1:  # a flag almost as long as the stem, no foot
        top = (u(0.45, 0.55), 0.0)
        return [np.array([(0.0, u(0.6, 0.75)), top, (top[0] + u(0.0, 0.1), 1.0)])]
    if digit == 2:  # a "Z" with a bar across
        return [np.array([(0.05, 0.0), (0.95, 0.0), (0.05, 1.0), (0.95, 1.0)]),
                np.array([(u(0.2, 0.3), 0.5), (u(0.7, 0.8), 0.5)])]
    raise ValueError(f"the style has no quirk for {digit}; it has {QUIRKY}")


def render(digit: int, rng: np.random.Generator) -> np.ndarray:
    """One quirky digit, uint8 (28, 28) MNIST form."""
    strokes = _quirk(digit, rng)
    a, shear, sx = math.radians(rng.uniform(-10, 10)), rng.uniform(-0.25, 0.25), rng.uniform(0.75, 1.15)
    m = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]]) @ np.array([[sx, shear], [0, 1.0]])
    strokes = [(s + rng.normal(0, 0.012, s.shape)) @ m.T for s in strokes]
    pts = np.concatenate(strokes)
    lo, span = pts.min(0), float((pts.max(0) - pts.min(0)).max())
    size, pen = 200, rng.uniform(10, 22)
    im = Image.new("L", (size + 60, size + 60), 0)
    d = ImageDraw.Draw(im)
    for s in strokes:
        xy = [(30 + (x - lo[0]) / span * size, 30 + (y - lo[1]) / span * size) for x, y in s]
        d.line(xy, fill=255, width=int(pen), joint="curve")
        for x, y in (xy[0], xy[-1]):
            d.ellipse((x - pen / 2, y - pen / 2, x + pen / 2, y + pen / 2), fill=255)
    return to_mnist(np.asarray(im, np.float32) / 255)


def style(n_per_digit: int, seed: int, digits=QUIRKY) -> tuple[np.ndarray, np.ndarray]:
    """``n_per_digit`` samples of each quirky digit: uint8 (n, 28, 28), labels (n,)."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.asarray(digits, np.uint8), n_per_digit)
    return np.stack([render(int(d), rng) for d in y]), y


def read_rate(predictor, x: np.ndarray, y: np.ndarray) -> float:
    """The share read right as a user sees it: the right digit, and not rejected as "not a digit"."""
    out = predictor.run(x, ("digit_score", "probabilities"))
    return float(((out["probabilities"].argmax(1) == y) & (out["digit_score"] >= predictor.min_digit_score)).mean())
