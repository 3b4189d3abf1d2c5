"""Procedural non-digits: the marks training teaches the model to reject, and held-out kinds that test it.

Two disjoint sets of generators, different in kind, so that the rejection rate on the second measures
generalization and not memory:

- :data:`TRAINING`: ``scribbles`` (smooth random pen paths), ``stroke_glyphs`` (3-5 random straight and
  curved strokes anywhere), ``grid_glyphs`` (3-5 strokes joining points of a 3x3 grid), ``polygons``
  (outlined polygons, some with diagonals), ``textures`` (filled blobs and
  hatching) and ``mashups`` (two MNIST *training* digits overlapping, or a digit scribbled over). The
  default preset and ``make weights`` train on these alone.
- :data:`HELD_OUT`: ``letters`` (a stroke font of letters and symbols) and ``pictograms`` (star, arrow,
  heart, smiley, grid, house, ...). Training never sees them; ``bench/realworld.py`` and the tests
  render them as whole images and read them through the full pipeline.

Ambiguous marks are left out of both: O/0, D/0, Q/0, I/l/1, J, T and L (1 and 7 in many hands), S/5,
Z/2, B/8, G/b/6, g/q/9, ?, $ and circles and spirals (0 and 6). Training images come out in MNIST form
(uint8 (28, 28), white on black, fitted and centred as :func:`digitnet.preprocessing.to_mnist` does).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageDraw

from ..preprocessing import from_4x

Stroke = np.ndarray  # (points, 2) x, y, in a unit box (y down)
BOX = 80  # drawing size: 4x MNIST's 20-pixel box, as to_mnist works

__all__ = ["HELD_OUT", "TRAINING", "glyph_strokes", "render_glyph", "training_negatives"]


# ------------------------------------------------------------------------------------------- drawing


def _arc(cx, cy, rx, ry, a0, a1, n=14) -> Stroke:
    t = np.linspace(math.radians(a0), math.radians(a1), n)
    return np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], 1)


def _poly(*points) -> Stroke:
    return np.asarray(points, np.float64)


def _jitter(strokes: list[Stroke], rng: np.random.Generator, wobble: float = 0.012, rotate: float = 12,
            shear: float = 0.2) -> list[Stroke]:
    """A hand's version of ideal strokes: each point wobbles, the whole glyph rotates, shears and stretches."""
    a = math.radians(rng.uniform(-rotate, rotate))
    sx = rng.uniform(0.75, 1.25)
    m = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]]) @ np.array(
        [[sx, rng.uniform(-shear, shear)], [0, 1.0]])
    return [(s + rng.normal(0, wobble, s.shape)) @ m.T for s in strokes]


def _draw(strokes: list[Stroke], size: tuple[int, int], origin: tuple[float, float], scale: float,
          pen: float, canvas: Image.Image | None = None, ink: int = 255) -> Image.Image:
    """Strokes (unit coordinates) onto a grey canvas, with round joints and caps."""
    im = canvas or Image.new("L", size, 0)
    d = ImageDraw.Draw(im)
    r = pen / 2
    for s in strokes:
        pts = [(origin[0] + x * scale, origin[1] + y * scale) for x, y in s]
        if len(pts) > 1:
            d.line(pts, fill=ink, width=max(1, int(round(pen))), joint="curve")
        for x, y in (pts[0], pts[-1]):
            d.ellipse((x - r, y - r, x + r, y + r), fill=ink)
    return im


def _fit(strokes: list[Stroke], pen: float) -> np.ndarray:
    """Draw strokes so their longer side spans the 80-pixel box, then to MNIST form (uint8 (28, 28))."""
    pts = np.concatenate(strokes)
    lo, hi = pts.min(0), pts.max(0)
    scale = (BOX - pen) / max(float((hi - lo).max()), 1e-6)
    w, h = (np.ceil((hi - lo) * scale + pen) + 2).astype(int)
    im = _draw(strokes, (int(w), int(h)), (pen / 2 + 1 - lo[0] * scale, pen / 2 + 1 - lo[1] * scale), scale, pen)
    return from_4x(np.asarray(im, np.float32) / 255.0)


# --------------------------------------------------------------------------------- training kinds


def scribbles(rng) -> list[Stroke]:
    """One or two smooth random pen paths that turn a lot: a doodle, a crossing-out."""
    out = []
    for _ in range(int(rng.integers(1, 3))):
        n = int(rng.integers(25, 60))
        turn = np.cumsum(rng.normal(0, rng.uniform(0.3, 0.8), n))
        step = rng.uniform(0.04, 0.1)
        out.append(np.cumsum(np.stack([np.cos(turn), np.sin(turn)], 1) * step, 0))
    return out


def stroke_glyphs(rng) -> list[Stroke]:
    """3 to 5 random strokes, straight or curved, anywhere in the box: symbols of no alphabet."""
    out = []
    for _ in range(int(rng.integers(3, 6))):
        if rng.random() < 0.5:
            out.append(_poly(rng.uniform(0, 1, 2), rng.uniform(0, 1, 2)))
        else:
            r = rng.uniform(0.15, 0.45)
            a0 = rng.uniform(0, 360)
            out.append(_arc(*rng.uniform(0.2, 0.8, 2), r, r * rng.uniform(0.5, 1.5), a0, a0 + rng.uniform(90, 200)))
    return out


_ANCHORS = np.array([(x, y) for y in (0.0, 0.5, 1.0) for x in (0.0, 0.5, 1.0)])  # a 3x3 grid in the box


def grid_glyphs(rng) -> list[Stroke]:
    """3 to 5 strokes between points of a 3x3 grid, straight or bowed, mostly joined end to end or
    branching from the middle of an earlier stroke: glyph-like marks, but of no alphabet."""
    out: list[Stroke] = []
    for _ in range(int(rng.integers(3, 6))):
        joined = out and rng.random() < 0.7
        if joined:  # from an end of an earlier stroke, or from a point along it (a T-junction)
            s = out[int(rng.integers(len(out)))]
            a = s[int(rng.choice([0, -1]))] if rng.random() < 0.5 else s[0] + (s[-1] - s[0]) * rng.uniform(0.3, 0.7)
        else:
            a = _ANCHORS[int(rng.integers(9))]
        b = _ANCHORS[int(rng.integers(9))]
        while np.allclose(a, b):
            b = _ANCHORS[int(rng.integers(9))]
        if rng.random() < 0.7:
            out.append(_poly(a, b))
        else:  # a bow: the chord's midpoint pushed sideways
            t = np.linspace(0, 1, 12)[:, None]
            normal = np.array([-(b - a)[1], (b - a)[0]]) * rng.uniform(-0.6, 0.6)
            out.append(a + (b - a) * t + normal * 4 * t * (1 - t))
    return out


def polygons(rng) -> list[Stroke]:
    """A closed polygon of 3 to 6 corners, sometimes with a diagonal or two."""
    k = int(rng.integers(3, 7))
    t = np.sort(rng.uniform(0, 2 * np.pi, k))
    pts = np.stack([np.cos(t), np.sin(t)], 1) * rng.uniform(0.6, 1.0, (k, 1))
    out = [np.concatenate([pts, pts[:1]])]
    for _ in range(int(rng.integers(0, 3))):
        i, j = rng.choice(k, 2, replace=False)
        out.append(_poly(pts[i], pts[j]))
    return out


def _texture(rng) -> np.ndarray:
    """A filled blob or a hatched patch, in MNIST form."""
    big = np.zeros((BOX, BOX), np.float32)
    if rng.random() < 0.5:  # a smooth random blob, thresholded
        from scipy import ndimage

        noise = ndimage.gaussian_filter(rng.normal(0, 1, (BOX, BOX)), rng.uniform(4, 10))
        big = (noise > np.quantile(noise, rng.uniform(0.5, 0.85))).astype(np.float32)
    else:  # parallel hatching in one or two directions
        im = Image.new("L", (BOX, BOX), 0)
        d = ImageDraw.Draw(im)
        for angle in rng.uniform(0, 180, int(rng.integers(1, 3))):
            a = math.radians(angle)
            gap = rng.uniform(10, 18)
            for off in np.arange(-BOX, BOX, gap):
                cx, cy = BOX / 2 + off * math.cos(a + math.pi / 2), BOX / 2 + off * math.sin(a + math.pi / 2)
                dx, dy = BOX * math.cos(a), BOX * math.sin(a)
                d.line((cx - dx, cy - dy, cx + dx, cy + dy), fill=255, width=int(rng.integers(5, 12)))
        big = np.asarray(im, np.float32) / 255.0
    return from_4x(big)


def _mashup(rng, digits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Two training digits of different classes overlapping by half, or one digit scribbled over."""
    i = int(rng.integers(len(digits)))
    a = digits[i].astype(np.float32) / 255.0
    if rng.random() < 0.5:
        big = np.zeros((28, 56), np.float32)
        j = int(rng.choice(np.flatnonzero(labels != labels[i])))
        shift = int(rng.integers(8, 15))  # MNIST digits are about 16 px wide: 8-14 px apart overlaps them
        big[:, :28] = a
        big[:, shift : shift + 28] = np.maximum(big[:, shift : shift + 28], digits[j] / 255.0)
    else:
        im = Image.fromarray(np.round(a * 255).astype(np.uint8)).resize((BOX, BOX), Image.Resampling.BILINEAR)
        strokes = [s * 0.6 + 0.2 for s in scribbles(rng)]
        pts = np.concatenate(strokes)
        lo, hi = pts.min(0), pts.max(0)
        strokes = [(s - lo) / max(float((hi - lo).max()), 1e-6) * 0.8 + 0.1 for s in strokes]
        big = np.asarray(_draw(strokes, (BOX, BOX), (0, 0), BOX, rng.uniform(8, 14), canvas=im), np.float32) / 255
    # (to_mnist would do this crop and resize too, with other interpolation: kept as is, so that make weights
    # reproduces the shipped model's non-digits exactly.)
    ys, xs = np.nonzero(big > 0.05)
    big = big[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    k = BOX / max(big.shape)
    im = Image.fromarray(big, mode="F").resize((max(1, round(big.shape[1] * k)), max(1, round(big.shape[0] * k))),
                                               Image.Resampling.BILINEAR)
    return from_4x(np.asarray(im))


StrokeKind = Callable[[np.random.Generator], list[Stroke]]
_STROKE_KINDS: dict[str, StrokeKind] = {"scribbles": scribbles, "stroke_glyphs": stroke_glyphs,
                                        "grid_glyphs": grid_glyphs, "polygons": polygons}
# Share of each kind in the training pool.
TRAINING_MIX = {"scribbles": 0.15, "stroke_glyphs": 0.15, "grid_glyphs": 0.4, "polygons": 0.1, "textures": 0.05,
                "mashups": 0.15}
TRAINING = tuple(TRAINING_MIX)


def training_negatives(n: int, digits: np.ndarray, labels: np.ndarray, seed: int = 0) -> np.ndarray:
    """``n`` non-digits in MNIST form, uint8 (n, 28, 28), from the :data:`TRAINING` generators only.

    ``digits`` and ``labels`` (uint8 (m, 28, 28), (m,)) are the *training* split, for the mash-ups.
    """
    rng = np.random.default_rng([seed, 7919])
    kinds = rng.choice(list(TRAINING_MIX), n, p=list(TRAINING_MIX.values()))
    out = np.empty((n, 28, 28), np.uint8)
    for i, kind in enumerate(kinds):
        if kind == "textures":
            out[i] = _texture(rng)
        elif kind == "mashups":
            out[i] = _mashup(rng, digits, labels)
        else:
            strokes = _jitter(_STROKE_KINDS[kind](rng), rng)
            out[i] = _fit(strokes, pen=rng.uniform(9, 15))  # MNIST's stroke is about 14 px at this scale
    return out


# ---------------------------------------------------------------------------------- held-out kinds

# A stroke font in a unit box (x right, y down). Ambiguous glyphs are left out (see the module docstring).
LETTERS: dict[str, list[Stroke]] = {
    "A": [_poly((0, 1), (0.5, 0), (1, 1)), _poly((0.25, 0.55), (0.75, 0.55))],
    "E": [_poly((0.9, 0), (0, 0), (0, 1), (0.9, 1)), _poly((0, 0.5), (0.7, 0.5))],
    "F": [_poly((0.9, 0), (0, 0), (0, 1)), _poly((0, 0.5), (0.7, 0.5))],
    "H": [_poly((0, 0), (0, 1)), _poly((0.8, 0), (0.8, 1)), _poly((0, 0.5), (0.8, 0.5))],
    "K": [_poly((0, 0), (0, 1)), _poly((0.8, 0), (0, 0.55)), _poly((0.25, 0.4), (0.85, 1))],
    "M": [_poly((0, 1), (0.05, 0), (0.5, 0.65), (0.95, 0), (1, 1))],
    "N": [_poly((0, 1), (0, 0), (0.8, 1), (0.8, 0))],
    "R": [_poly((0, 1), (0, 0), (0.55, 0), (0.8, 0.12), (0.8, 0.33), (0.55, 0.45), (0, 0.45)),
          _poly((0.35, 0.45), (0.85, 1))],
    "W": [_poly((0, 0), (0.25, 1), (0.5, 0.35), (0.75, 1), (1, 0))],
    "X": [_poly((0, 0), (0.8, 1)), _poly((0.8, 0), (0, 1))],
    "Y": [_poly((0, 0), (0.45, 0.5), (0.9, 0)), _poly((0.45, 0.5), (0.45, 1))],
    "V": [_poly((0, 0), (0.45, 1), (0.9, 0))],
    "U": [np.concatenate([_poly((0, 0)), _arc(0.4, 0.6, 0.4, 0.4, 180, 0), _poly((0.8, 0))])],
    "P": [_poly((0, 1), (0, 0), (0.55, 0), (0.8, 0.15), (0.8, 0.35), (0.55, 0.5), (0, 0.5))],
    "h": [_poly((0, 0), (0, 1)), np.concatenate([_poly((0, 0.6)), _arc(0.35, 0.65, 0.35, 0.2, 180, 360),
                                                 _poly((0.7, 1))])],
    "k": [_poly((0, 0), (0, 1)), _poly((0.6, 0.4), (0, 0.75), (0.65, 1))],
    "m": [np.concatenate([_poly((0, 1), (0, 0.3)), _arc(0.25, 0.4, 0.25, 0.2, 180, 360), _poly((0.5, 1))]),
          np.concatenate([_arc(0.75, 0.4, 0.25, 0.2, 180, 360), _poly((1, 1))])],
    "n": [np.concatenate([_poly((0, 1), (0, 0.3)), _arc(0.35, 0.45, 0.35, 0.25, 180, 360), _poly((0.7, 1))])],
    "e": [np.concatenate([_poly((0.05, 0.5), (0.8, 0.5)), _arc(0.42, 0.5, 0.38, 0.42, 0, -300)])],
    "#": [_poly((0.35, 0), (0.25, 1)), _poly((0.75, 0), (0.65, 1)), _poly((0, 0.33), (1, 0.33)),
          _poly((0, 0.66), (1, 0.66))],
    "@": [_arc(0.5, 0.5, 0.18, 0.2, 0, 360), np.concatenate([_poly((0.68, 0.3), (0.68, 0.65)),
                                                            _arc(0.5, 0.5, 0.48, 0.48, 20, 330)])],
    "&": [np.concatenate([_poly((1, 1), (0.25, 0.4)), _arc(0.4, 0.2, 0.2, 0.2, 180, 360), _poly((0.15, 0.7)),
                          _arc(0.35, 0.8, 0.22, 0.2, 180, 20), _poly((0.9, 0.5))])],
    "%": [_poly((0.9, 0), (0.1, 1)), _arc(0.2, 0.18, 0.16, 0.16, 0, 360), _arc(0.8, 0.82, 0.16, 0.16, 0, 360)],
    "+": [_poly((0.5, 0.05), (0.5, 0.95)), _poly((0.05, 0.5), (0.95, 0.5))],
    "*": [_poly((0.5, 0), (0.5, 1)), _poly((0.07, 0.25), (0.93, 0.75)), _poly((0.93, 0.25), (0.07, 0.75))],
    "π": [_poly((0, 0.1), (1, 0.1)), _poly((0.3, 0.1), (0.25, 1)), _poly((0.7, 0.1), (0.75, 1))],
    "Σ": [_poly((0.9, 0), (0, 0), (0.5, 0.5), (0, 1), (0.9, 1))],
    "Ж": [_poly((0.5, 0), (0.5, 1)), _poly((0, 0), (0.5, 0.5), (0, 1)), _poly((1, 0), (0.5, 0.5), (1, 1))],
}


def _star():
    t = np.radians(np.arange(0, 721, 144) - 90)
    return [np.stack([np.cos(t), np.sin(t)], 1)]


PICTOGRAMS: dict[str, Callable[[], list[Stroke]]] = {
    "star": _star,
    "arrow": lambda: [_poly((0, 0.5), (1, 0.5)), _poly((0.65, 0.2), (1, 0.5), (0.65, 0.8))],
    "heart": lambda: [np.concatenate([_arc(0.27, 0.3, 0.25, 0.22, 180, 360), _arc(0.73, 0.3, 0.25, 0.22, 180, 360),
                                      _poly((0.5, 1), (0.02, 0.35))])],
    "smiley": lambda: [_arc(0.5, 0.5, 0.5, 0.5, 0, 360), _arc(0.35, 0.35, 0.05, 0.05, 0, 360),
                       _arc(0.65, 0.35, 0.05, 0.05, 0, 360), _arc(0.5, 0.55, 0.28, 0.22, 20, 160)],
    "grid": lambda: [_poly((0.33, 0), (0.33, 1)), _poly((0.66, 0), (0.66, 1)), _poly((0, 0.33), (1, 0.33)),
                     _poly((0, 0.66), (1, 0.66)), _poly((0, 0), (1, 0), (1, 1), (0, 1), (0, 0))],
    "house": lambda: [_poly((0.1, 0.45), (0.1, 1), (0.9, 1), (0.9, 0.45)), _poly((0, 0.5), (0.5, 0), (1, 0.5)),
                      _poly((0.4, 1), (0.4, 0.7), (0.6, 0.7), (0.6, 1))],
    "sun": lambda: [_arc(0.5, 0.5, 0.22, 0.22, 0, 360)] + [
        _poly((0.5 + 0.32 * math.cos(a), 0.5 + 0.32 * math.sin(a)), (0.5 + 0.5 * math.cos(a), 0.5 + 0.5 * math.sin(a)))
        for a in np.radians(np.arange(0, 360, 45))],
    "envelope": lambda: [_poly((0, 0.2), (1, 0.2), (1, 0.85), (0, 0.85), (0, 0.2)),
                         _poly((0, 0.2), (0.5, 0.55), (1, 0.2))],
    "tree": lambda: [_poly((0.5, 0), (0.1, 0.45), (0.3, 0.45), (0, 0.75), (1, 0.75), (0.7, 0.45), (0.9, 0.45),
                           (0.5, 0)), _poly((0.45, 0.75), (0.45, 1)), _poly((0.55, 0.75), (0.55, 1))],
    "fish": lambda: [np.concatenate([_arc(0.45, 0.5, 0.4, 0.28, -150, 150), _poly((1, 0.2), (1, 0.8))]),
                     _arc(0.25, 0.45, 0.04, 0.04, 0, 360)],
    "cloud": lambda: [np.concatenate([_arc(0.25, 0.6, 0.2, 0.2, 90, 270), _arc(0.5, 0.4, 0.25, 0.25, 180, 360),
                                      _arc(0.78, 0.6, 0.2, 0.2, 270, 450), _poly((0.25, 0.8))])],
    "checkbox": lambda: [_poly((0, 0), (1, 0), (1, 1), (0, 1), (0, 0)), _poly((0.2, 0.5), (0.45, 0.8), (0.85, 0.15))],
}
HELD_OUT = ("letters", "pictograms")


def glyph_strokes(kind: str, name: str) -> list[Stroke]:
    """The ideal strokes of one held-out glyph: ``kind`` "letters" (a key of :data:`LETTERS`) or "pictograms"."""
    return [s.copy() for s in LETTERS[name]] if kind == "letters" else PICTOGRAMS[name]()


def render_glyph(kind: str, name: str, rng: np.random.Generator) -> Image.Image:
    """A held-out glyph drawn by hand on paper as a user would photograph or upload it: dark ink on a
    light page of random size, any pen from fine to marker. A test input, never training data."""
    strokes = _jitter(glyph_strokes(kind, name), rng)
    height = rng.uniform(40, 220)
    pts = np.concatenate(strokes)
    lo, hi = pts.min(0), pts.max(0)
    scale = height / max(float((hi - lo).max()), 1e-6)
    pen = height * rng.uniform(0.04, 0.14)
    margin = int(height * rng.uniform(0.2, 0.8) + pen)
    w, h = ((hi - lo) * scale).astype(int) + 2 * margin
    ink = _draw(strokes, (int(w), int(h)), (margin - lo[0] * scale, margin - lo[1] * scale), scale, pen)
    paper = rng.uniform(0.8, 1.0)
    a = paper - (paper - rng.uniform(0.0, 0.3)) * np.asarray(ink, np.float32) / 255.0
    a = a + rng.normal(0, 0.02, a.shape)
    return Image.fromarray(np.round(np.clip(a, 0, 1) * 255).astype(np.uint8))
