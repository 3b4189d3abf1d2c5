"""Re-render MNIST test digits the way users make them: the families the preprocessing must handle.

Each function takes one uint8 (28, 28) MNIST digit (white on black) and a NumPy Generator, and returns
an image input (a PIL image or encoded bytes) as a user would hand it over.
"""

from __future__ import annotations

import io
import zlib

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


def _lowres(d, side):
    small = Image.fromarray(d).resize((side, side), Image.Resampling.BOX)  # the whole 28x28 field: digit ~0.7 side
    return _pil(1 - np.asarray(small.resize((112, 112), Image.Resampling.BICUBIC), np.float32).clip(0, 255) / 255)


def lowres_8(d, rng):
    """Shrunk to 8x8 and scaled back up: a digit far away, a thumbnail (the digit itself is about 6 px tall)."""
    return _lowres(d, 8)


def lowres_12(d, rng):
    return _lowres(d, 12)


def marker(d, rng):
    """A thick felt marker: strokes 1.6 to 2.2 times MNIST's width."""
    ink = _up(d, 4)
    r = int(rng.integers(3, 6))  # at 112 px MNIST's stroke is about 10 px; this adds 6 to 10
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    return _pil(1 - ndimage.grey_dilation(ink, footprint=xx**2 + yy**2 <= r * r))


def slanted(d, rng):
    """A slanted hand: sheared 12 to 22 degrees either way."""
    ink = _up(d, 4)
    k = np.tan(np.radians(rng.uniform(12, 22))) * rng.choice([-1, 1])
    h, w = ink.shape
    pad = int(abs(k) * h) + 4
    out = ndimage.affine_transform(np.pad(ink, ((0, 0), (pad, pad))), [[1, 0], [k, 1]],
                                   offset=[0, -k * h / 2], order=1)
    return _pil(1 - out)


def blurred(d, rng):
    """Out of focus: a Gaussian blur of 1 to 1.6 MNIST pixels."""
    return _pil(1 - ndimage.gaussian_filter(_up(d, 4), rng.uniform(4, 6.5)) * 1.3)


FAMILIES = {
    "inverted": inverted,
    "scaled": scaled,
    "off_centre": off_centre,
    "coloured": coloured,
    "rgba_transparent": rgba_transparent,
    "jpeg": jpeg,
    "noisy_gradient": noisy_gradient,
    "thin_strokes": thin_strokes,
    "lowres_8": lowres_8,
    "lowres_12": lowres_12,
    "marker": marker,
    "slanted": slanted,
    "blurred": blurred,
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


def _tile(d: np.ndarray, height: float, slant: float = 0.0) -> np.ndarray:
    """A digit at ``height`` px (of its 28-px field), slanted by ``slant`` degrees, cropped to its ink columns."""
    t = _up(d, height / 28)
    if slant:
        k = np.tan(np.radians(slant))
        pad = int(abs(k) * t.shape[0]) + 2
        t = ndimage.affine_transform(np.pad(t, ((0, 0), (pad, pad))), [[1, 0], [k, 1]],
                                     offset=[0, -k * t.shape[0] / 2], order=1)
    cols, rows = np.flatnonzero(t.max(axis=0) > 0.1), np.flatnonzero(t.max(axis=1) > 0.1)
    return t[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1] if len(cols) else t


def drifting_number(digits: list[np.ndarray], rng, height: int = 80) -> Image.Image:
    """A number whose baseline drifts by up to half a digit's height, sizes +-30%, slant +-10 degrees."""
    tiles = [_tile(d, height * rng.uniform(0.7, 1.3), rng.uniform(-10, 10)) for d in digits]
    phase, amp = rng.uniform(0, 2 * np.pi), rng.uniform(0.2, 0.5) * height / 2
    gaps = [int(rng.uniform(0.08, 0.4) * height) for _ in tiles]
    width = sum(t.shape[1] for t in tiles) + sum(gaps) + height
    canvas = np.zeros((int(height * 3), width), np.float32)
    x = height // 2
    for i, (t, gap) in enumerate(zip(tiles, gaps)):
        base = height * 1.1 + amp * np.sin(phase + i * rng.uniform(0.6, 1.4))  # the baseline wanders
        y = int(base + height - t.shape[0])  # bottoms on the baseline: mixed sizes share it
        canvas[y : y + t.shape[0], x : x + t.shape[1]] = np.maximum(canvas[y : y + t.shape[0], x : x + t.shape[1]], t)
        x += t.shape[1] + gap
    rows = np.flatnonzero(canvas.max(axis=1) > 0)
    canvas = canvas[max(0, rows.min() - height // 3) : rows.max() + height // 3, : x + height // 2]
    return _pil(1 - canvas)


def stacked_numbers(numbers: list[list[np.ndarray]], rng, height: int = 70) -> Image.Image:
    """Two or three numbers on separate lines, with a blank band between them."""
    rows = [np.asarray(number_image(n, rng, height), np.float32) / 255 for n in numbers]
    width = max(r.shape[1] for r in rows)
    return _pil(np.concatenate([np.pad(r, ((0, 0), (0, width - r.shape[1])), constant_values=1) for r in rows]))


def overlapping_pair(a: np.ndarray, b: np.ndarray, rng, height: int = 100) -> Image.Image:
    """Two digits whose ink overlaps by up to 20% of their width."""
    ta, tb = _tile(a, height), _tile(b, height)
    overlap = int(rng.uniform(0.0, 0.2) * min(ta.shape[1], tb.shape[1]))
    w = ta.shape[1] + tb.shape[1] - overlap
    canvas = np.zeros((max(ta.shape[0], tb.shape[0]) + height // 2, w + height), np.float32)
    y, x = height // 4, height // 2
    canvas[y : y + ta.shape[0], x : x + ta.shape[1]] = ta
    x2 = x + ta.shape[1] - overlap
    region = (slice(y, y + tb.shape[0]), slice(x2, x2 + tb.shape[1]))
    canvas[region] = np.maximum(canvas[region], tb)
    return _pil(1 - canvas)


def _on_paper(ink: np.ndarray, lines: np.ndarray, rng) -> Image.Image:
    """Ink over printed lines on a photographed page: light grey or blue lines, grey paper, some noise."""
    paper = rng.uniform(0.85, 1.0)
    line_colour = np.array([rng.uniform(0.45, 0.75), rng.uniform(0.55, 0.8), rng.uniform(0.75, 0.95)]) * paper
    pen = rng.uniform(0.0, 0.25, 3)
    rgb = np.full(ink.shape + (3,), paper, np.float32)
    rgb = rgb * (1 - lines[..., None]) + line_colour * lines[..., None]
    rgb = rgb * (1 - ink[..., None]) + pen * ink[..., None]
    rgb += rng.normal(0, 0.015, rgb.shape)
    return Image.fromarray(np.round(np.clip(rgb, 0, 1) * 255).astype(np.uint8))


def _row(digits: list[np.ndarray], rng, height: float, pitch: float | None = None) -> list[np.ndarray]:
    return [_tile(d, height * rng.uniform(0.9, 1.1), rng.uniform(-6, 6)) for d in digits]


def ruled_number(digits: list[np.ndarray], rng, height: int = 70, grid: bool = False) -> Image.Image:
    """A number on ruled notebook paper (or on graph paper with ``grid``): the digits sit on a line,
    the lines run across the page and through the digits' strokes."""
    tiles = _row(digits, rng, height)
    spacing = height * (rng.uniform(1.15, 1.5) if not grid else rng.uniform(0.35, 0.5))
    width = sum(t.shape[1] for t in tiles) + int(0.3 * height) * len(tiles) + 2 * height
    h = int(height * 4)
    ink, lines = np.zeros((h, width), np.float32), np.zeros((h, width), np.float32)
    thick = max(1, int(round(height * rng.uniform(0.02, 0.04))))
    offset = rng.uniform(0, spacing)
    for y in np.arange(offset, h, spacing).astype(int):
        lines[y : y + thick] = 1
    if grid:
        for x in np.arange(rng.uniform(0, spacing), width, spacing).astype(int):
            lines[:, x : x + thick] = 1
    base = int(offset + spacing * np.ceil((1.3 * height) / spacing))  # a ruled line under the text
    x = height
    for t in tiles:
        y = base - t.shape[0] + int(rng.uniform(-0.06, 0.04) * height)  # on the line, touching or crossing it
        ink[y : y + t.shape[0], x : x + t.shape[1]] = np.maximum(ink[y : y + t.shape[0], x : x + t.shape[1]], t)
        x += t.shape[1] + int(rng.uniform(0.15, 0.4) * height)
    return _on_paper(ink, lines, rng)


def comb_number(digits: list[np.ndarray], rng, height: int = 70) -> Image.Image:
    """A number written in a form's comb field: one box per digit, the digit inside, sometimes touching an edge."""
    box_w, box_h = int(height * rng.uniform(0.9, 1.2)), int(height * rng.uniform(1.2, 1.45))
    thick = max(1, int(round(height * rng.uniform(0.02, 0.04))))
    pad = height
    w, h = box_w * len(digits) + 2 * pad, box_h + 2 * pad
    ink, lines = np.zeros((h, w), np.float32), np.zeros((h, w), np.float32)
    lines[pad : pad + thick, pad : pad + box_w * len(digits) + thick] = 1
    lines[pad + box_h : pad + box_h + thick, pad : pad + box_w * len(digits) + thick] = 1
    for i in range(len(digits) + 1):
        lines[pad : pad + box_h + thick, pad + i * box_w : pad + i * box_w + thick] = 1
    for i, t in enumerate(_row(digits, rng, box_h * 0.8)):
        t = t[:, : box_w - 2 * thick]
        y = pad + int(rng.uniform(0.02, 0.18) * box_h)
        x = pad + i * box_w + max(thick, int(rng.uniform(0.0, 1.0) * (box_w - t.shape[1])))
        ink[y : y + t.shape[0], x : x + t.shape[1]] = np.maximum(ink[y : y + t.shape[0], x : x + t.shape[1]], t)
    return _on_paper(ink, lines, rng)


NUMBER_FAMILIES = {
    "plain": number_image,
    "drifting": drifting_number,
    "ruled": ruled_number,
    "grid": lambda digits, rng: ruled_number(digits, rng, grid=True),
    "comb": comb_number,
}


# ------------------------------------------------------------------------------- scoring (tests, bench)


def score_family(predictor, family: str, x, y, n: int, seed: int) -> dict:
    """One digit per image through the whole pipeline (``single=True``): accuracy and the share rejected
    as "not a digit", on ``n`` digits drawn with a seed fixed per family."""
    rng = np.random.default_rng([seed, zlib.crc32(family.encode())])
    idx = rng.choice(len(x), n, replace=False)
    right = rejected = 0
    for i in idx:
        r = predictor.predict_image(FAMILIES[family](x[i], rng), single=True)
        right += r.digits == str(int(y[i]))
        rejected += r.reason == "not a digit"
    return {"n": n, "accuracy": right / n, "rejected": rejected / n}


def score_negatives(predictor, kind: str, per_glyph: int, seed: int) -> dict:
    """Held-out non-digits drawn by hand (``digitnet.data.negatives.render_glyph``) through the whole
    pipeline: the share with nothing read (every mark rejected), overall and per glyph."""
    from digitnet.data import negatives

    names = list(negatives.LETTERS if kind == "letters" else negatives.PICTOGRAMS)
    rng = np.random.default_rng([seed, zlib.crc32(kind.encode())])
    per = {name: float(np.mean([predictor.predict_image(negatives.render_glyph(kind, name, rng)).digits is None
                                for _ in range(per_glyph)])) for name in names}
    return {"n": per_glyph * len(names), "rejected": float(np.mean(list(per.values()))), "per_glyph": per}


def score_numbers(predictor, family: str, x, y, n: int, seed: int, lengths=(3, 6)) -> dict:
    """Numbers of ``lengths`` digits rendered by a family of :data:`NUMBER_FAMILIES`: whole-string
    accuracy, per-digit accuracy (a string read with the wrong length scores 0 for all its digits), and
    the same digits read one by one (each alone, cleanly rendered): the difference is what reading them
    as a number costs (segmentation, and the family's own slant, size and paper)."""
    rng = np.random.default_rng([seed, zlib.crc32(family.encode())])
    whole = digit_hits = digits = alone = 0
    for _ in range(n):
        idx = rng.choice(len(x), int(rng.integers(lengths[0], lengths[1] + 1)))
        truth = "".join(str(int(y[i])) for i in idx)
        got = predictor.predict_image(NUMBER_FAMILIES[family]([x[i] for i in idx], rng)).digits or ""
        whole += got == truth
        digit_hits += sum(a == b for a, b in zip(got, truth)) if len(got) == len(truth) else 0
        digits += len(truth)
        alone += sum(predictor.predict_image(inverted(x[i], rng), single=True).digits == str(int(y[i])) for i in idx)
    return {"n": n, "digits": digits, "whole": whole / n, "per_digit": digit_hits / digits,
            "one_by_one": alone / digits}


def score_stacked(predictor, x, y, n: int, seed: int) -> dict:
    """Two or three numbers of 3-5 digits on separate lines: the share read as those lines, in order."""
    rng = np.random.default_rng([seed, 5])
    hits = 0
    for _ in range(n):
        groups = [rng.choice(len(x), int(rng.integers(3, 6))) for _ in range(int(rng.integers(2, 4)))]
        truth = "\n".join("".join(str(int(y[i])) for i in g) for g in groups)
        hits += predictor.predict_image(stacked_numbers([[x[i] for i in g] for g in groups], rng)).digits == truth
    return {"n": n, "whole": hits / n}


def score_pairs(predictor, x, y, n: int, seed: int) -> dict:
    """Two digits overlapping by up to 20% of their width: the share read as both, in order."""
    rng = np.random.default_rng([seed, 6])
    hits = 0
    for _ in range(n):
        i, j = rng.choice(len(x), 2)
        hits += predictor.predict_image(overlapping_pair(x[i], x[j], rng)).digits == f"{y[i]}{y[j]}"
    return {"n": n, "whole": hits / n}
