"""Preprocessing on small images made here: decoding, polarity, normalization, segmentation, bad input."""

import contextlib
import io

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image

from digitnet import preprocessing as pp
from digitnet.preprocessing import ImageError, ImageTooLargeError, decode, segment, to_mnist


def stroke_digit(h=120, w=90, thickness=10, dark_on_light=True):
    """A synthetic '1'-like bar plus a foot: dark ink on light paper (or inverted)."""
    ink = np.zeros((h, w), np.float32)
    ink[10 : h - 10, w // 2 - thickness // 2 : w // 2 + thickness // 2] = 1
    ink[h - 10 - thickness : h - 10, w // 4 : 3 * w // 4] = 1
    return ((1 - ink) if dark_on_light else ink), ink


def png(a, mode=None):
    buf = io.BytesIO()
    Image.fromarray(a, mode=mode).save(buf, format="PNG")
    return buf.getvalue()


def test_to_mnist_matches_mnist_conventions():
    _, ink = stroke_digit()
    out = to_mnist(ink)
    assert out.dtype == np.uint8 and out.shape == (28, 28)
    ys, xs = np.nonzero(out > 0)
    assert ys.max() - ys.min() + 1 <= 21 and xs.max() - xs.min() + 1 <= 21  # fits the 20x20 box
    assert ys.max() - ys.min() + 1 >= 19  # the longer side is scaled to 20
    cy, cx = pp.ndimage.center_of_mass(out.astype(float))
    assert abs(cy - 13.5) <= 1.0 and abs(cx - 13.5) <= 1.0  # centred by mass
    assert out.max() == 255 and out[0].max() == 0  # saturated cores, black border


@pytest.mark.parametrize("dark_on_light", [True, False])
def test_polarity_is_detected_and_output_is_white_on_black(dark_on_light):
    paper, ink = stroke_digit(dark_on_light=dark_on_light)
    seg = segment((paper * 255).astype(np.uint8))
    assert seg.polarity == ("dark-on-light" if dark_on_light else "light-on-dark")
    assert len(seg.digits) == 1
    ref = to_mnist(ink)
    assert np.abs(seg.digits[0].image.astype(int) - ref.astype(int)).mean() < 12


def test_same_answer_for_every_encoding_of_one_drawing():
    paper, ink = stroke_digit()
    grey = (paper * 255).astype(np.uint8)
    rgba = np.zeros(grey.shape + (4,), np.uint8)
    rgba[..., 3] = (ink * 255).astype(np.uint8)  # black on transparent
    rgb_white = np.repeat(grey[..., None], 3, axis=2)
    sixteen = Image.fromarray((paper * 65535).astype(np.uint16))
    pal = Image.fromarray(rgb_white).convert("P")
    variants = [grey, png(rgba, "RGBA"), png(rgb_white), sixteen, pal, Image.fromarray(grey).convert("1")]
    ref = to_mnist(ink).astype(int)
    for v in variants:
        seg = segment(v)
        assert len(seg.digits) == 1, type(v)
        assert np.abs(seg.digits[0].image.astype(int) - ref).mean() < 12, type(v)


def test_exif_orientation_is_honoured():
    paper, _ = stroke_digit(h=120, w=60)
    im = Image.fromarray((paper * 255).astype(np.uint8)).transpose(Image.Transpose.ROTATE_90)  # stored sideways
    exif = Image.Exif()
    exif[0x0112] = 8  # "rotate 90 CW to view": undoes the ROTATE_90 above
    buf = io.BytesIO()
    im.save(buf, format="JPEG", exif=exif.tobytes(), quality=95)
    seg = segment(buf.getvalue())
    x, y, w, h = seg.digits[0].box
    assert seg.size == (60, 120) and h > w  # upright after EXIF rotation; box in rotated coordinates


def test_blank_and_near_blank_give_no_digit():
    for img in (np.full((50, 50), 255, np.uint8), np.zeros((50, 50), np.uint8),
                (np.random.default_rng(0).normal(200, 3, (80, 80))).clip(0, 255).astype(np.uint8)):
        seg = segment(img)
        assert seg.digits == [] and seg.reason == "blank image"
    speck = np.full((200, 200), 255, np.uint8)
    speck[100, 100] = 0
    assert segment(speck).digits == []


def test_dots_and_dashes_are_not_digits():
    canvas = np.ones((100, 400), np.float32)
    canvas[20:80, 40:50] = 0  # a "1"
    canvas[70:78, 100:108] = 0  # a dot on the baseline
    canvas[45:52, 160:200] = 0  # a dash
    canvas[20:80, 260:270] = 0  # another "1"
    seg = segment((canvas * 255).astype(np.uint8))
    assert len(seg.digits) == 2
    assert [d.box[0] for d in seg.digits] == sorted(d.box[0] for d in seg.digits)  # left to right


def test_lines_are_read_top_to_bottom():
    canvas = np.ones((300, 200), np.float32)
    for y in (20, 170):
        for x in (30, 120):
            canvas[y : y + 100, x : x + 12] = 0
    seg = segment((canvas * 255).astype(np.uint8))
    assert [d.line for d in seg.digits] == [0, 0, 1, 1]
    assert seg.digits[0].box[1] < seg.digits[2].box[1]


def test_single_reads_one_digit():
    canvas = np.ones((100, 300), np.float32)
    canvas[20:80, 40:50] = 0
    canvas[20:80, 200:210] = 0
    assert len(segment((canvas * 255).astype(np.uint8)).digits) == 2
    assert len(segment((canvas * 255).astype(np.uint8), single=True).digits) == 1


@pytest.mark.parametrize("data,message", [
    (b"", "empty file"),
    (b"this is not an image", "not a readable image"),
    (png(np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8))[:2000], "corrupt image data"),
])
def test_bad_bytes_give_clear_errors(data, message):
    with pytest.raises(ImageError, match=message):
        decode(data)


def test_decompression_bomb_is_refused_before_decoding():
    with pytest.raises(ImageTooLargeError, match="limit is 10,000"):
        decode(png(np.zeros((200, 200), np.uint8)), max_pixels=10_000)
    # A bomb: a PNG whose header claims 30000x30000 pixels. Its header alone gets it refused.
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 30000, 30000, 8, 0, 0, 0, 0)
    bomb = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 1000)) + \
        chunk(b"IEND", b"")
    with pytest.raises(ImageTooLargeError, match="too large.*900000000 pixels"):
        decode(bomb)
    with pytest.raises(ImageTooLargeError, match="30000x1500 pixels; the limit is 40,000,000"):
        decode(bomb[:8] + chunk(b"IHDR", struct.pack(">IIBBBBB", 30000, 30000 // 20, 8, 0, 0, 0, 0)) + bomb[33:])


def test_arrays_are_checked():
    bad = np.zeros((10, 10), np.float32)
    bad[3, 3] = np.nan
    with pytest.raises(ImageError, match="NaN"):
        decode(bad)
    with pytest.raises(ImageError, match=r"must lie in \[0, 1\]"):
        decode(np.full((10, 10), 3.0))
    with pytest.raises(ImageError, match="shape"):
        decode(np.zeros((4, 4, 2)))
    with pytest.raises(ImageError, match="no such file"):
        decode("/nonexistent/file.png")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=400))
def test_fuzz_bytes_only_clear_errors(data):
    with contextlib.suppress(ImageError):  # a clear error is fine; anything else fails the test
        segment(data)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(arrays(np.float64, st.tuples(st.integers(1, 40), st.integers(1, 40)),
              elements=st.floats(allow_nan=True, allow_infinity=True, width=32)))
def test_fuzz_arrays_only_clear_errors(a):
    try:
        seg = segment(a)
        assert all(d.image.shape == (28, 28) for d in seg.digits)
    except ImageError:
        pass


def ring(size=80, thickness=9):
    """A '0'-like ring, float ink in [0, 1]."""
    yy, xx = np.mgrid[0:size, 0:size] - (size - 1) / 2
    r = np.hypot(yy / 1.3, xx)
    return ((r < size * 0.3) & (r > size * 0.3 - thickness)).astype(np.float32)


def test_lines_start_only_where_paper_runs_across():
    page = np.ones((300, 500), np.float32)
    for x, dy in [(40, 0), (140, 35), (240, -30), (340, 20)]:  # one number, drifting by 0.45 of its height
        page[80 + dy : 160 + dy, x : x + 80] -= ring()
    page[230:290, 200:260] -= ring(60, 7)  # a second line under a band of blank paper
    seg = segment(np.clip(page, 0, 1))
    assert [d.line for d in seg.digits] == [0, 0, 0, 0, 1]


def test_ruled_and_boxed_paper_lines_are_paper_not_ink():
    page = np.full((240, 560), 0.95, np.float32)
    page[150:152, :] = 0.6  # ruled lines across the page, fainter than the pen
    page[60:62, :] = 0.6
    for x in (60, 200, 340):  # comb boxes: vertical edges from rule to rule
        page[60:152, x : x + 2] = 0.6
    for x in (90, 230, 370):  # three rings written on the line, crossing it
        page[80:165, x : x + 80] = np.minimum(page[80:165, x : x + 80], 1 - ring(85, 9)[:, 2:82])  # rows 89-155
    seg = segment(page)
    assert len(seg.digits) == 3, [d.box for d in seg.digits]  # no box edge read as a 1, no ring cut in two
    assert all(64 <= d.box[3] <= 70 for d in seg.digits)  # each ring whole: as tall as drawn (67 px)
    plain = page.copy()
    plain[plain == np.float32(0.6)] = 0.95
    assert len(segment(plain).digits) == 3


def test_stages_show_each_step_and_change_nothing():
    page = np.full((240, 560), 0.95, np.float32)
    page[150:152, :] = 0.6  # a ruled line
    for x in (90, 230):
        page[80:165, x : x + 80] = np.minimum(page[80:165, x : x + 80], 1 - ring(85, 9)[:, 2:82])
    page[:, 400:] -= 0.2  # a shadow: the paper estimate follows it
    plain, seg = segment(page), segment(page, stages=True)
    assert plain.stages is None
    assert [d.box for d in seg.digits] == [d.box for d in plain.digits]
    for a, b in zip(seg.digits, plain.digits):
        np.testing.assert_array_equal(a.image, b.image)
    st_ = seg.stages
    assert st_.pixels.shape == (120, 280, 1) and st_.scale == 0.5  # 134,400 pixels: worked on at half size
    assert st_.paper[5, 50] == pytest.approx(0.95, abs=0.02) and st_.paper[5, 250] == pytest.approx(0.75, abs=0.02)
    assert st_.ink[5, 250] < 0.05 and st_.ink[st_.mask].min() > st_.threshold  # shadowed paper is not ink
    assert 0 < st_.threshold < 0.5 and st_.mask.dtype == bool and st_.mask[40:83, 45:85].sum() > 100
    assert st_.rules[75, 10] and not st_.mask[75, 10]  # the rule was found and removed
    assert len(st_.boxes) == len(st_.crops) == 2
    assert all(c.shape == (h, w) for c, (_, _, w, h) in zip(st_.crops, st_.boxes))
    for crop, digit in zip(st_.crops, seg.digits):
        np.testing.assert_array_equal(to_mnist(crop), digit.image)  # the crop is what to_mnist was given
    blank = segment(np.ones((50, 50), np.float32), stages=True)
    assert blank.reason == "blank image" and blank.stages.ink.shape == (50, 50) and not blank.stages.boxes


def test_a_long_stroke_of_the_writing_is_not_taken_for_a_rule():
    mask = np.zeros((100, 300), bool)
    mask[45:52, 20:280] = True  # a long bar crossed by a stroke as tall as a third of it: writing, not paper
    mask[10:90, 140:147] = True
    assert pp._rules(mask, mask) is None
    mask[75:90, 60:75] = True  # with small writing beside it (under 1/2.5 of its length), the bar is a rule
    assert pp._rules(mask, mask) is not None and pp._rules(mask, mask)[48, 30]


def test_line_opening_matches_scipy_binary_opening():
    from scipy import ndimage

    rng = np.random.default_rng(0)
    for _ in range(100):
        mask = rng.random((int(rng.integers(3, 40)), int(rng.integers(3, 60)))) < 0.8
        length, axis = int(rng.integers(1, 25)), int(rng.integers(0, 2))
        expected = ndimage.binary_opening(mask, structure=np.ones((1, length) if axis else (length, 1), bool))
        np.testing.assert_array_equal(pp._open_line(mask, length, axis), expected)
