"""Real images to MNIST form: the way MNIST itself was built, for any size, polarity or colour.

LeCun: digits were "size normalized to fit in a 20x20 pixel box while preserving their aspect ratio",
anti-aliased, and "centered in a 28x28 image by computing the center of mass of the pixels". Here:

1. decode (PNG, JPEG, BMP, GIF, WebP, TIFF; grey, RGB, RGBA, palette, 16-bit), honour EXIF orientation,
   refuse decompression bombs;
2. work at a bounded resolution; estimate the paper (a coarse median) and take each pixel's colour
   distance from it as ink, which handles dark-on-light, light-on-dark, coloured ink and uneven light;
3. threshold adaptively (Otsu, with an absolute floor so a blank page stays blank), drop specks;
4. group ink into digits: connected components, broken strokes merged, touching digits split, dots
   and dashes dropped, lines read top to bottom and left to right;
5. each digit: crop, thicken thin strokes to MNIST's width, fit the longer side to 20 px with
   anti-aliasing, and centre by mass in 28x28, white ink on black, 0-255 like MNIST.
"""

from __future__ import annotations

import io
import logging
import os
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError
from scipy import ndimage

from .arrays import check_pixels
from .errors import DeadlineExceeded, ImageError, ImageTooLargeError
from .presets import IMAGE_SIZE

MAX_PIXELS = 40_000_000  # decoded size cap: a decompression bomb is refused before it is decoded
MAX_BYTES = 50 * 1024 * 1024
WORK_PIXELS = 90_000  # analysis resolution: enough for 12 digits in a row, cheap for a photo
MIN_CONTRAST = 0.12  # ink must differ from the paper by this much (of full scale) to count
MNIST_STROKE = 3.5  # median MNIST stroke width in the 20x20 box, as _match_stroke measures it
MAX_MARKS = 64  # marks (digits, or pieces of them) per image: bounds the work a tiny crafted image can ask for
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")  # what folders are read for

log = logging.getLogger(__name__)

__all__ = ["IMAGE_SUFFIXES", "MAX_MARKS", "Digit", "ImageError", "ImageTooLargeError", "Segmentation", "Stages",
           "decode", "from_4x", "ink_map", "segment", "to_mnist", "working"]


@dataclass
class Digit:
    image: np.ndarray  # uint8 (28, 28), MNIST form: white ink on black
    box: tuple[int, int, int, int]  # x, y, w, h in the source image's pixels (after EXIF rotation)
    line: int  # 0-based line of text it belongs to


@dataclass
class Stages:
    """What :func:`segment` computed on the way (with ``stages=True``), at the working resolution: the
    source's size times ``scale``. For teaching and debugging; nothing else reads it."""

    pixels: np.ndarray  # float32 (h, w, c) in [0, 1]: the decoded image, shrunk
    scale: float  # working size / source size
    paper: np.ndarray | None  # float32 (h, w): the paper's estimated brightness (None: opacity was the ink)
    ink: np.ndarray  # float32 (h, w) in [0, 1]: each pixel's colour distance from the paper, on the ink's side
    threshold: float = 0.0  # ink above it is a stroke
    mask: np.ndarray | None = None  # bool (h, w): the strokes, printed rules removed
    rules: np.ndarray | None = None  # bool (h, w): printed lines found and removed, if any
    boxes: list[tuple[int, int, int, int]] = field(default_factory=list)  # x, y, w, h per digit (working pixels)
    crops: list[np.ndarray] = field(default_factory=list)  # float32 (h, w) per digit: its cleaned ink, to_mnist's input


@dataclass
class Segmentation:
    digits: list[Digit] = field(default_factory=list)
    reason: str | None = None  # why there are no digits, in words
    polarity: str | None = None  # "dark-on-light" or "light-on-dark"
    size: tuple[int, int] = (0, 0)  # source width, height
    stages: Stages | None = None  # the intermediate images, with segment(..., stages=True)


# ------------------------------------------------------------------------------------------ decoding


def decode(source, max_pixels: int | None = None) -> np.ndarray:
    """Any image input to float32 (h, w, c) in [0, 1], c = 1 (grey) or 3 (RGB), plus alpha as a 4th
    channel when the image has transparency. Accepts a path, bytes, a file object, a PIL image or a
    NumPy array (grey (h, w), or (h, w, 3|4); uint8, uint16 or floats in [0, 1]). Images of more than
    ``max_pixels`` (default :data:`MAX_PIXELS`) are refused with :class:`ImageTooLargeError`."""
    return _to_float(_open(source, max_pixels))


def _to_float(img) -> np.ndarray:
    if isinstance(img, np.ndarray):
        return img
    a = np.asarray(img, dtype=np.float32)
    a = a if img.mode == "F" else a / 255.0
    return a[..., None] if a.ndim == 2 else a


def _open(source, max_pixels: int | None = None):
    """Decode to a PIL image in mode L, RGB, RGBA (only with real transparency) or F (16-bit, scaled
    to [0, 1]), upright per EXIF; or, for array input, a validated float32 (h, w, c) array."""
    cap = MAX_PIXELS if max_pixels is None else max_pixels
    if isinstance(source, np.ndarray):
        return _from_array(source, cap)
    if isinstance(source, Image.Image):
        return _from_pil(source, cap)
    if isinstance(source, (str, os.PathLike)):
        data = _read_file(Path(source))
    elif isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    elif hasattr(source, "read"):
        data = source.read(MAX_BYTES + 1)
    else:
        raise ImageError(f"cannot read an image from {type(source).__name__}")
    if len(data) == 0:
        raise ImageError("empty file (0 bytes)")
    if len(data) > MAX_BYTES:
        raise ImageTooLargeError(f"image data is larger than {MAX_BYTES // 2**20} MB")
    try:
        im = Image.open(io.BytesIO(data))
        if im.width * im.height > cap:  # checked from the header, before any pixel is decoded
            raise ImageTooLargeError(f"image is {im.width}x{im.height} pixels; the limit is {cap:,}")
        ImageFile.LOAD_TRUNCATED_IMAGES = False
        im.load()
        return _from_pil(im, cap)
    except ImageError:
        raise
    except UnidentifiedImageError as e:
        raise ImageError("not a readable image (unknown or unsupported format)") from e
    except Image.DecompressionBombError as e:
        raise ImageTooLargeError(f"image is too large ({e})") from e
    except MemoryError as e:
        raise ImageTooLargeError("image needs more memory to decode than is available") from e
    except Exception as e:  # a decoder fails in many ways on corrupt data: all mean "this file is unusable"
        raise ImageError(f"corrupt image data ({type(e).__name__}: {e})") from e


def _read_file(path: Path) -> bytes:
    """A regular file's bytes, at most MAX_BYTES; anything else is refused, saying what it is."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise ImageError(f"{path}: no such file") from None
    except OSError as e:  # a symlink loop, a name too long, no permission...
        raise ImageError(f"{path}: cannot read it ({e.strerror or e})") from None
    kinds = {stat.S_ISDIR: "a directory", stat.S_ISFIFO: "a FIFO (named pipe)", stat.S_ISCHR: "a character device",
             stat.S_ISBLK: "a block device", stat.S_ISSOCK: "a socket"}
    for test, kind in kinds.items():
        if test(st.st_mode):
            raise ImageError(f"{path}: is {kind}, not an image file")
    if st.st_size > MAX_BYTES:
        raise ImageTooLargeError(f"{path}: file is larger than {MAX_BYTES // 2**20} MB")
    with open(path, "rb") as f:
        return f.read(MAX_BYTES + 1)  # a file that grows while we read it is still capped


def _from_pil(im: Image.Image, cap: int) -> Image.Image:
    if im.width * im.height > cap:
        raise ImageTooLargeError(f"image is {im.width}x{im.height} pixels; the limit is {cap:,}")
    if im.width == 0 or im.height == 0:
        raise ImageError("image has no pixels")
    im = _upright(im)
    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        a = np.asarray(im, dtype=np.float32)
        top = 65535.0 if im.mode.startswith("I;16") else max(float(a.max()), 1.0)
        return Image.fromarray(np.clip(a / top, 0, 1), mode="F")
    if im.mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    if im.mode in ("LA", "PA", "RGBA", "La", "RGBa") or "transparency" in im.info:
        im = im.convert("RGBA")
        return im if im.getchannel("A").getextrema()[0] < 255 else im.convert("RGB")
    if im.mode in ("L", "RGB"):
        return im
    return im.convert("L") if im.mode == "1" else im.convert("RGB")


def _upright(im: Image.Image) -> Image.Image:
    """Rotate per the EXIF orientation; a malformed EXIF block is ignored (the image is read as stored)."""
    try:
        if im.getexif().get(0x0112, 1) != 1:  # only rotate when EXIF says so: the transpose copies the image
            return ImageOps.exif_transpose(im)
    except Exception as e:  # e.g. an eXIf chunk or APP1 segment that is not TIFF data
        log.warning("ignoring a malformed EXIF block (%s: %s); reading the image as stored", type(e).__name__, e)
    return im


def _from_array(a: np.ndarray, cap: int) -> np.ndarray:
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3 or a.shape[2] not in (1, 3, 4) or a.shape[0] == 0 or a.shape[1] == 0:
        raise ImageError(f"array must be (h, w) or (h, w, 1|3|4), got shape {a.shape}")
    if a.shape[0] * a.shape[1] > cap:
        raise ImageTooLargeError(f"array is {a.shape[1]}x{a.shape[0]} pixels; the limit is {cap:,}")
    return check_pixels(a, error=ImageError, what="arrays")


# ------------------------------------------------------------------------------------------- ink map


def _resize(a: np.ndarray, w: int, h: int) -> np.ndarray:
    """Area-averaging resize of a float (h, w) array (anti-aliased when shrinking)."""
    return np.asarray(Image.fromarray(a, mode="F").resize((w, h), Image.Resampling.BOX if w < a.shape[1]
                                                          else Image.Resampling.BILINEAR))


def working(source, max_pixels: int | None = None) -> tuple[np.ndarray, float, tuple[int, int]]:
    """Decode and shrink to the analysis resolution (at most :data:`WORK_PIXELS`), area-averaged.

    Returns float32 (h', w', c) pixels in [0, 1], the scale (working / source size) and the source
    (width, height). Shrinking happens before the float conversion, in Pillow, for speed.
    """
    img = _open(source, max_pixels)
    if isinstance(img, np.ndarray):
        h, w = img.shape[:2]
    else:
        w, h = img.size
    if h * w <= WORK_PIXELS:
        return _to_float(img), 1.0, (w, h)
    k = int(np.ceil((h * w / WORK_PIXELS) ** 0.5))  # an integer box reduction: the fastest way down
    if isinstance(img, np.ndarray):
        wh, ww = -(-h // k), -(-w // k)
        img = np.stack([_resize(np.ascontiguousarray(img[..., i]), ww, wh) for i in range(img.shape[2])], -1)
    else:
        img = img.reduce(k)
        ww, wh = img.size
    return _to_float(img), ww / w, (w, h)


def ink_map(pixels: np.ndarray) -> tuple[np.ndarray, str]:
    """Float (h, w, c) pixels to an ink map (h, w) in [0, 1] and the polarity that was found."""
    ink, polarity, _ = _ink_and_paper(pixels)
    return ink, polarity


def _ink_and_paper(pixels: np.ndarray) -> tuple[np.ndarray, str, np.ndarray | None]:
    """:func:`ink_map`, plus the paper estimate's brightness (h, w) (None when opacity is the ink)."""
    chans = [np.ascontiguousarray(pixels[..., i]) for i in range(pixels.shape[2])]
    if len(chans) == 4:
        alpha, chans = chans[3], chans[:3]
        if (alpha > 0.5).mean() < 0.5:  # strokes on a transparent canvas: opacity is the ink
            return np.clip(alpha, 0, 1), "alpha", None
        # Mostly opaque (a photo with a transparent margin): composite onto the paper colour.
        paper = [float(np.median(c[alpha > 0.5])) for c in chans]
        chans = [c * alpha + p * (1 - alpha) for c, p in zip(chans, paper)]
    if len(chans) == 3 and max(float(np.abs(a[::4, ::4] - b[::4, ::4]).max()) for a, b in
                               ((chans[0], chans[1]), (chans[1], chans[2]))) < 0.03:
        chans = [sum(chans) / 3]  # grey content stored as RGB (most scans and many photos): one channel
    lum = chans[0] if len(chans) == 1 else sum(chans) / len(chans)
    # Ink is the minority of pixels, so the median is paper; whichever side the outliers lie on is ink.
    paper = float(np.median(lum[::2, ::2]))
    far = np.abs(lum - paper) > MIN_CONTRAST
    light_ink = bool(far.any() and (lum[far] - paper).mean() > 0)
    bg = _background(chans, light_ink)
    sq = sum((c - b) ** 2 for c, b in zip(chans, bg))
    dist = np.sqrt(sq / len(chans))  # colour distance from the local paper
    bg_lum = bg[0] if len(bg) == 1 else sum(bg) / len(bg)
    # Only the ink side counts: a bright glare on dark-ink paper is not ink.
    dist = np.where((lum > bg_lum) == light_ink, dist, 0.0).astype(np.float32)
    return dist, "light-on-dark" if light_ink else "dark-on-light", bg_lum


def _background(chans: list[np.ndarray], light_ink: bool) -> list[np.ndarray]:
    """The paper's colour at every pixel, per channel, by a morphological closing (opening for light
    ink) wider than any stroke, on a coarse copy: removes the ink, keeps shadows and light gradients."""
    h, w = chans[0].shape
    k = min(1.0, 64 / max(h, w))  # coarse: the paper varies slowly, and this is the costly step
    sh, sw = max(1, round(h * k)), max(1, round(w * k))
    size = max(3, int(round(0.35 * min(sh, sw))) | 1)  # wider than the thickest stroke of a frame-filling digit
    first, second = (ndimage.minimum_filter, ndimage.maximum_filter) if light_ink else \
        (ndimage.maximum_filter, ndimage.minimum_filter)
    out = []
    for c in chans:
        small = _resize(c, sw, sh) if k < 1 else c
        paper = ndimage.uniform_filter(second(first(small, size=size, mode="nearest"), size=size, mode="nearest"),
                                       size=3, mode="nearest")
        out.append(_resize(np.ascontiguousarray(paper, dtype=np.float32), w, h) if k < 1 else paper)
    return out


def _otsu(values: np.ndarray) -> float:
    hist, edges = np.histogram(values[::2, ::2] if values.ndim == 2 else values, bins=64, range=(0.0, 1.0))
    p = hist / max(hist.sum(), 1)
    w0 = np.cumsum(p)
    mu = np.cumsum(p * edges[:-1])
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (mu[-1] * w0 - mu) ** 2 / (w0 * (1 - w0))
    return float(edges[int(np.nanargmax(between))] + edges[1] / 2) if np.isfinite(between).any() else 0.5


# -------------------------------------------------------------------------------------- segmentation


@dataclass
class _Blob:
    x0: int
    y0: int
    x1: int  # exclusive
    y1: int
    labels: list[int]
    mass: float

    @property
    def w(self) -> int:
        return self.x1 - self.x0

    @property
    def h(self) -> int:
        return self.y1 - self.y0

    def merge(self, o: _Blob) -> _Blob:
        return _Blob(min(self.x0, o.x0), min(self.y0, o.y0), max(self.x1, o.x1), max(self.y1, o.y1),
                     self.labels + o.labels, self.mass + o.mass)


def check_deadline(deadline: float | None) -> None:
    """Raise :class:`DeadlineExceeded` once ``time.monotonic()`` has passed ``deadline``."""
    if deadline is not None and time.monotonic() > deadline:
        raise DeadlineExceeded("the image took longer than its deadline to read")


def segment(source, single: bool = False, max_pixels: int | None = None,
            deadline: float | None = None, stages: bool = False) -> Segmentation:
    """Find the digits in an image and normalize each to MNIST form (see the module docstring).

    Work is bounded by the working resolution and :data:`MAX_MARKS`; an image with more marks answers
    "too many marks". With a ``deadline`` (a ``time.monotonic()`` value) the work stops between stages
    once it has passed, raising :class:`DeadlineExceeded`. With ``stages``, the result keeps the
    intermediate images in ``.stages`` (see :class:`Stages`).
    """
    pixels, scale, (src_w, src_h) = working(source, max_pixels)
    check_deadline(deadline)
    ink, polarity, paper = _ink_and_paper(pixels)
    check_deadline(deadline)
    seg = Segmentation(polarity=polarity, size=(src_w, src_h))
    if stages:
        seg.stages = Stages(pixels, scale, paper, ink)
    peak = float(ink.max())
    if peak < MIN_CONTRAST:
        seg.reason = "blank image"
        return seg
    threshold = max(MIN_CONTRAST, min(_otsu(ink / peak) * peak, 0.5 * peak))
    mask = ink > threshold
    # Printed lines are often fainter than the writing: find them in a lower threshold, so that they are
    # found whole rather than as a dotted trail of pieces.
    rules = _rules(mask, ink > max(MIN_CONTRAST / 2, 0.4 * threshold))
    if rules is not None:  # ruled, grid or boxed paper: the printed lines are paper, not ink
        mask &= ~rules
        ink = np.where(ndimage.binary_dilation(rules) & ~mask, 0.0, ink).astype(np.float32)
    if stages:
        seg.stages.threshold, seg.stages.mask, seg.stages.rules = threshold, mask, rules
    labels, n = ndimage.label(mask, structure=np.ones((3, 3)))
    if n == 0:
        seg.reason = "blank image"
        return seg
    masses = np.bincount(labels.ravel(), weights=ink.ravel(), minlength=n + 1)[1:]  # ink per component
    boxes = ndimage.find_objects(labels)
    # Drop specks (under 4% of the biggest component's ink) before building anything for them.
    keep = np.flatnonzero(masses >= 0.04 * masses.max())
    if mask.mean() > 0.5:
        seg.reason = "image is mostly ink"
        return seg
    if len(keep) > MAX_MARKS:  # before any per-mark work: a crafted dot grid stops here
        seg.reason = "too many marks"
        return seg
    check_deadline(deadline)
    blobs = [_Blob(s[1].start, s[0].start, s[1].stop, s[0].stop, [int(i) + 1], float(masses[i]))
             for i, s in ((i, boxes[i]) for i in keep)]
    blobs = [b for b in blobs if b.w * b.h >= 4]
    groups = [blobs] if single else _lines(blobs)

    def profile(b: _Blob) -> np.ndarray:  # ink per column of a blob: where touching digits meet
        return np.where(np.isin(labels[b.y0:b.y1, b.x0:b.x1], b.labels), ink[b.y0:b.y1, b.x0:b.x1], 0).sum(0)

    found = [(line_no, blob) for line_no, line in enumerate(groups)
             for blob in (_merge_all(line) if single else _digits_in_line(line, profile))]
    if len(found) > MAX_MARKS:  # a long rule split into many "touching digits", for one
        seg.reason = "too many marks"
        return seg
    for line_no, blob in found:
        check_deadline(deadline)
        region = (slice(blob.y0, blob.y1), slice(blob.x0, blob.x1))
        # The blob's own pixels, grown by one so the soft, anti-aliased edges of its strokes stay.
        own = ndimage.binary_dilation(np.isin(labels[region], blob.labels), structure=np.ones((3, 3)))
        digit_ink = np.where(own, ink[region], 0.0)
        digit_ink = np.clip((digit_ink - 0.5 * threshold) / max(peak - 0.5 * threshold, 1e-6), 0, 1)
        box = (int(blob.x0 / scale), int(blob.y0 / scale),
               max(1, int(round(blob.w / scale))), max(1, int(round(blob.h / scale))))
        seg.digits.append(Digit(to_mnist(digit_ink), box, line_no))
        if stages:
            seg.stages.boxes.append((blob.x0, blob.y0, blob.w, blob.h))
            seg.stages.crops.append(digit_ink)
    if not seg.digits:
        seg.reason = "no digit-like marks"
    return seg


def _merge_all(blobs: list[_Blob]) -> list[_Blob]:
    out = blobs[0]
    for b in blobs[1:]:
        out = out.merge(b)
    return [out]


def _lines(blobs: list[_Blob]) -> list[list[_Blob]]:
    """Group blobs into text lines, top to bottom. A new line starts only where a band of paper runs
    across the whole text: drift, slant and mixed sizes inside a number never split it."""
    lines: list[list[_Blob]] = []
    bottom = -1
    for b in sorted(blobs, key=lambda b: b.y0):
        if lines and b.y0 < bottom:  # overlaps the rows of the line so far: same line
            lines[-1].append(b)
        else:
            lines.append([b])
        bottom = max(bottom, b.y1) if len(lines[-1]) > 1 else b.y1
    return lines


def _runs(mask: np.ndarray, length: int, axis: int) -> list[tuple[np.ndarray, tuple[slice, slice]]]:
    """Straight runs of ink at least ``length`` long along ``axis`` (1: horizontal, 0: vertical), as
    (pixels of the run, its bounding slices) per connected run."""
    opened = _open_line(mask, length, axis)
    labels, n = ndimage.label(opened, structure=np.ones((3, 3)))
    return [(labels[box] == i + 1, box) for i, box in enumerate(ndimage.find_objects(labels)) if box is not None]


def _open_line(mask: np.ndarray, length: int, axis: int) -> np.ndarray:
    """Morphological opening with a straight line of ``length`` pixels along ``axis``, in O(pixels): the
    pixels covered by some window of ``length`` consecutive ink pixels. (``binary_opening`` costs O(pixels
    x length), tens of milliseconds for a photo.)"""
    n = mask.shape[axis]
    if length > n:
        return np.zeros_like(mask)
    c = np.cumsum(mask, axis=axis, dtype=np.int32)
    c = np.concatenate([np.zeros_like(np.take(c, [0], axis=axis)), c], axis=axis)
    # full[i]: the window [i, i + length) is all ink; (n - length + 1) starts, padded to n with "no".
    full = (np.take(c, np.arange(length, n + 1), axis=axis) - np.take(c, np.arange(0, n - length + 1), axis=axis)
            ) == length
    pad = [(0, 0)] * mask.ndim
    pad[axis] = (0, length - 1)
    full = np.pad(full, pad)
    # A pixel is covered by a window starting at most length - 1 before it: a running max, backwards.
    return ndimage.maximum_filter1d(full, size=length, axis=axis, origin=(length - 1) // 2, mode="constant")


def _rules(mask: np.ndarray, faint: np.ndarray) -> np.ndarray | None:
    """The printed lines of ruled, grid or boxed paper, found in the ``faint`` ink mask (h, w) (a lower
    threshold than ``mask``, the writing's), or None when there are none.

    A rule is a thin straight run of ink, horizontal or vertical, at least 2.5 times as long as the text
    is tall; a box edge is a vertical run that reaches from one rule to another (the comb of a form).
    Pixels of a rule that a stroke crosses are given back to the stroke, so that digits written across
    or on a line are not cut.
    """
    # Most images have no rules: a first look at half resolution (a 2x2 maximum keeps one-pixel lines) says
    # so for a quarter of the work. Paper with rules is then searched at full resolution, which keeps grid
    # lines a few pixels apart from the strokes between them.
    if min(mask.shape) >= 48 and _find_rules(_pool2(mask), _pool2(faint)) is None:
        return None
    found = _find_rules(mask, faint)
    if found is None:
        return None
    rules, thickness = found

    # Give crossing strokes their pixels back: rule pixels with stroke ink just above and below (or left and
    # right of a vertical rule) belong to the stroke too.
    strokes = mask & ~rules
    width = int(np.ceil(thickness)) + 4  # a gap this tall is a rule's width plus anti-aliasing
    # Three pixels wide: a slanted stroke's pieces above and below a rule do not line up exactly.
    bridged = (ndimage.binary_closing(strokes, structure=np.ones((width, 3), bool)) |
               ndimage.binary_closing(strokes, structure=np.ones((3, width), bool)))
    # A stroke that runs along a rule keeps the rule pixels next to it, from both sides: its pieces meet again.
    reach = max(1, int(np.ceil(thickness / 2)))  # (iterations=0 would mean "until nothing changes")
    beside = ndimage.binary_dilation(strokes, structure=np.ones((3, 3), bool), iterations=reach)
    return rules & ~bridged & ~beside


def _pool2(mask: np.ndarray) -> np.ndarray:
    """2x2 maximum of a boolean mask (an odd last row or column is dropped)."""
    h, w = mask.shape[0] // 2 * 2, mask.shape[1] // 2 * 2
    m = mask[:h, :w]
    return m[0::2, 0::2] | m[1::2, 0::2] | m[0::2, 1::2] | m[1::2, 1::2]


def _find_rules(mask: np.ndarray, faint: np.ndarray) -> tuple[np.ndarray, float] | None:
    """The rules in a mask and their thickness in pixels (see :func:`_rules`), or None."""
    h, w = mask.shape
    horizontal = _runs(faint, max(12, w // 3), axis=1)
    vertical = _runs(faint, max(12, h // 3), axis=0)
    # Without a horizontal run, only a vertical one across the page (graph paper) can be a rule: the
    # common case, a page of writing, stops here.
    if not horizontal and not any(b[0].stop - b[0].start >= 0.8 * h for _, b in vertical):
        return None
    # The text's height, from the marks left once the clearly long runs (across 40% of the image) are taken
    # out: shorter runs may be the writing's own strokes (a 1, the bar of a 7).
    runs = np.zeros_like(mask)
    for pixels, box, axis in [(p, b, 1) for p, b in horizontal] + [(p, b, 0) for p, b in vertical]:
        if box[axis].stop - box[axis].start >= 0.4 * mask.shape[axis]:
            runs[box] |= pixels
    rest, _ = ndimage.label(mask & ~ndimage.binary_dilation(runs), structure=np.ones((3, 3)))
    heights = [s[0].stop - s[0].start for s in ndimage.find_objects(rest) if s is not None]
    heights = [v for v in heights if v >= 0.3 * max(heights)] if heights else []
    text = float(np.median(heights)) if heights else 0.0
    rules = np.zeros_like(mask)
    thickness = []

    def thin(pixels, box, axis) -> bool:  # a printed line: thin for its length
        length = box[axis].stop - box[axis].start
        return pixels.sum() / max(length, 1) <= max(4.0, 0.08 * length) if text else False

    def take(pixels, box, axis) -> None:
        rules[box] |= pixels
        thickness.append(pixels.sum() / max(box[axis].stop - box[axis].start, 1))

    for pixels, box in horizontal:
        if box[1].stop - box[1].start >= 2.5 * text and thin(pixels, box, 1):
            take(pixels, box, 1)
    near_rule = ndimage.binary_dilation(rules, iterations=3)
    for pixels, box in vertical:
        length = box[0].stop - box[0].start
        ys = np.flatnonzero(pixels.any(axis=1))
        ends_on_rules = near_rule[box][ys[0]].any() and near_rule[box][ys[-1]].any()
        # Without horizontal rules, a vertical rule runs across the page (graph paper's, say).
        long_enough = length >= 2.5 * text and (rules.any() or length >= 0.8 * h)
        if thin(pixels, box, 0) and (long_enough or (ends_on_rules and length >= text)):
            take(pixels, box, 0)
    if not rules.any():
        return None
    return rules, max(thickness)



def _digits_in_line(line: list[_Blob], profile) -> list[_Blob]:
    """Merge broken strokes, drop non-digit marks, split touching digits; left to right."""
    line = sorted(line, key=lambda b: b.x0)
    height = max(b.h for b in line)
    # Merge pieces that overlap horizontally (a broken stroke, the bar of a 5, the dot of nothing).
    merged: list[_Blob] = []
    for b in line:
        if merged:
            a = merged[-1]
            overlap = min(a.x1, b.x1) - max(a.x0, b.x0)
            if overlap > 0.5 * min(a.w, b.w) or (overlap > 0 and min(a.h, b.h) < 0.5 * height):
                merged[-1] = a.merge(b)
                continue
        merged.append(b)
    out: list[_Blob] = []
    typical = float(np.median([b.h for b in merged if b.h >= 0.4 * height]))
    for b in merged:
        if b.h < 0.4 * height:  # a dot, comma or dash: shorter than any digit
            continue
        # Touching digits: a blob much wider than a digit is tall. One digit is rarely wider than 1.45x that.
        ref = max(b.h, typical)
        parts = max(2, int(round(b.w / (0.85 * ref)))) if b.w > 1.45 * ref else 1
        if parts == 1:
            out.append(b)
            continue
        cols = profile(b)
        step = b.w / parts
        cuts = [0]
        for k in range(1, parts):  # cut at the thinnest column near each expected boundary
            lo, hi = int(k * step - 0.3 * step), int(k * step + 0.3 * step) + 1
            cuts.append(lo + int(np.argmin(cols[lo:hi])))
        cuts.append(b.w)
        for x0, x1 in zip(cuts, cuts[1:]):
            out.append(_Blob(b.x0 + x0, b.y0, b.x0 + x1, b.y1, b.labels, b.mass / parts))
    return out


# ----------------------------------------------------------------------------------- normalization


def to_mnist(ink: np.ndarray) -> np.ndarray:
    """One digit's ink (h, w) in [0, 1], cropped or not, to uint8 (28, 28) MNIST form."""
    ys, xs = np.nonzero(ink > 0.05)
    if len(ys) == 0:
        return np.zeros((IMAGE_SIZE, IMAGE_SIZE), np.uint8)
    ink = ink[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    h, w = ink.shape
    # Work at 4x the final size: thicken thin strokes there, then shrink by area (anti-aliasing).
    k = 80 / max(h, w)
    big = _resize(np.ascontiguousarray(ink, dtype=np.float32), max(1, round(w * k)), max(1, round(h * k)))
    return from_4x(_match_stroke(big))


def from_4x(big: np.ndarray) -> np.ndarray:
    """Ink (h, w) in [0, 1] at 4x MNIST's scale (longer side about 80 px, strokes about 14 px) to uint8
    (28, 28) MNIST form: shrink by area into the 20-pixel box and centre by mass."""
    ys, xs = np.nonzero(big > 0.05)
    if len(ys) == 0:
        return np.zeros((IMAGE_SIZE, IMAGE_SIZE), np.uint8)
    big = np.ascontiguousarray(big[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1], dtype=np.float32)
    bh, bw = big.shape
    small = _resize(big, max(1, round(bw / 4)), max(1, round(bh / 4)))  # longer side: 20 px
    small = small / max(float(small.max()), 1e-6)  # peak 1; the model's own first layers saturate the cores
    out = np.zeros((IMAGE_SIZE, IMAGE_SIZE), np.float32)  # (28, 28)
    cy, cx = ndimage.center_of_mass(small)
    # Place so that the centre of mass lands on the centre of the 28x28 field.
    mid = (IMAGE_SIZE - 1) / 2  # 13.5
    oy, ox = int(round(mid - cy)), int(round(mid - cx))
    oy, ox = min(max(oy, 0), IMAGE_SIZE - small.shape[0]), min(max(ox, 0), IMAGE_SIZE - small.shape[1])
    out[oy : oy + small.shape[0], ox : ox + small.shape[1]] = small
    return np.round(out * 255).astype(np.uint8)


def _match_stroke(big: np.ndarray) -> np.ndarray:
    """Dilate thin strokes (canvas pens, fine scans) to MNIST's width, measured at 4x scale."""
    mask = big > 0.35
    if mask.sum() < 3:
        return big
    width = 4.0 * float(ndimage.distance_transform_edt(mask)[mask].mean())  # mean width of a bar is 4x this
    target = 4 * MNIST_STROKE
    if width >= 0.75 * target:  # MNIST's own 5th percentile: leave those alone
        return big
    r = int(np.ceil((target - width) / 2))
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    return ndimage.grey_dilation(big, footprint=(xx**2 + yy**2) <= r * r)
