"""The drawing page in a real browser (Debian's Chromium driven by Playwright) against `digitnet serve`
running as a real process. Screenshots go to artifacts/browser/."""

import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from renders import inverted

pytestmark = pytest.mark.slow
CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts" / "browser"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--no-first-run", "--disable-sync", "--disable-quic"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    from digitnet.inference import shipped_model_path

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "digitnet", "serve", "--port", str(port),
                             "--model", str(shipped_model_path())], stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"{url}/healthz", timeout=1)
            break
        except OSError:
            if proc.poll() is not None:
                pytest.fail(f"digitnet serve exited: {proc.stderr.read()}")
            time.sleep(0.2)
    yield url
    proc.terminate()
    proc.wait(10)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def page(browser, server):
    pg = browser.new_page(viewport={"width": 1000, "height": 800})
    pg.goto(server)
    yield pg
    pg.close()


def draw(page, digit: np.ndarray, left: float = 0.3, size: float = 0.8):
    """Draw an MNIST digit with real pointer events: one stroke per run of ink in each pixel row."""
    box = page.locator("#canvas").bounding_box()
    cell = size * box["height"] / 28
    x0 = box["x"] + left * box["width"] - 14 * cell
    y0 = box["y"] + (box["height"] - 28 * cell) / 2
    for r in range(28):
        row = digit[r] > 100
        c = 0
        while c < 28:
            if not row[c]:
                c += 1
                continue
            end = c
            while end + 1 < 28 and row[end + 1]:
                end += 1
            page.mouse.move(x0 + c * cell, y0 + r * cell)
            page.mouse.down()
            page.mouse.move(x0 + (end + 0.5) * cell, y0 + r * cell, steps=2)
            page.mouse.up()
            c = end + 1


def stroke_glyph(page, strokes, left: float, size: float = 0.6):
    """Draw strokes given in a unit box (x right, y down) as pen strokes, the box ``size`` of the
    canvas's height tall, centred at ``left`` of its width."""
    box = page.locator("#canvas").bounding_box()
    side = size * box["height"]
    x0, y0 = box["x"] + left * box["width"] - side / 2, box["y"] + (box["height"] - side) / 2
    pts = np.concatenate(strokes)
    lo, span = pts.min(0), (pts.max(0) - pts.min(0)).max()
    strokes = [(s - lo) / span for s in strokes]  # into the unit box, whatever coordinates they came in
    for s in strokes:
        page.mouse.move(x0 + s[0][0] * side, y0 + s[0][1] * side)
        page.mouse.down()
        for x, y in s[1:]:
            page.mouse.move(x0 + x * side, y0 + y * side, steps=4)
        page.mouse.up()


def boxes_become(page, digits: int, rejected: int, timeout=8.0) -> tuple[int, int]:
    deadline, got = time.time() + timeout, (-1, -1)
    while time.time() < deadline:
        got = (page.locator("#boxes .box.digit").count(), page.locator("#boxes .box.rejected").count())
        if got == (digits, rejected):
            break
        time.sleep(0.1)
    return got


def answer_becomes(page, text: str, timeout=8.0) -> str:
    deadline = time.time() + timeout
    got = ""
    while time.time() < deadline:
        got = page.locator("#answer").inner_text()
        if got == text:
            return got
        time.sleep(0.1)
    return got


def test_draw_single_digits(page, mnist):
    x, y = mnist[1]
    for i in (0, 1, 2, 3):
        page.click("#clear")
        draw(page, x[i])
        assert answer_becomes(page, str(y[i])) == str(y[i])
        top = page.locator(f"#bars li:nth-child({int(y[i]) + 1})")
        assert "top" in top.get_attribute("class")
        # The bar as rendered (after its 120 ms transition): the winning digit's fill covers most of its track.
        ratio = 0.0
        for _ in range(20):
            fill, track = top.locator(".fill").bounding_box(), top.locator(".bar").bounding_box()
            ratio = fill["width"] / track["width"]
            if ratio > 0.5:
                break
            time.sleep(0.1)
        assert ratio > 0.5 and fill["height"] > 5
        assert page.locator("#normalized").is_visible()
        assert "confidence" in page.locator("#confidence").inner_text()
        page.screenshot(path=str(ARTIFACTS / f"digit-{i}-{y[i]}.png"))


def test_two_digit_number_clear_and_undo(page, mnist):
    x, y = mnist[1]
    page.click("#clear")
    draw(page, x[1], left=0.3)
    draw(page, x[2], left=0.7)
    expected = f"{y[1]}{y[2]}"
    assert answer_becomes(page, expected) == expected
    assert boxes_become(page, 2, 0) == (2, 0)
    labels = [t.strip() for t in page.locator("#boxes .box.digit span").all_inner_texts()]
    assert labels == [str(y[1]), str(y[2])]
    page.screenshot(path=str(ARTIFACTS / "two-digits.png"))
    page.click("#clear")
    assert answer_becomes(page, "Draw a digit") == "Draw a digit"
    assert page.locator("#answer").get_attribute("data-state") == "empty"
    draw(page, x[0])
    assert answer_becomes(page, str(y[0])) == str(y[0])
    for _ in range(60):  # undo stroke by stroke until the canvas is empty again
        page.click("#undo")
        if page.locator("#answer").get_attribute("data-state") == "empty":
            break
    assert page.locator("#answer").inner_text() == "Draw a digit"


def test_upload_a_file_and_no_digit(page, mnist, tmp_path):
    x, y = mnist[1]
    path = tmp_path / "upload.png"
    inverted(x[4], np.random.default_rng(0)).save(path)
    page.set_input_files("#file", str(path))
    assert answer_becomes(page, str(y[4])) == str(y[4])
    page.screenshot(path=str(ARTIFACTS / "upload.png"))
    blank = tmp_path / "blank.png"
    from PIL import Image

    Image.new("L", (100, 100), 255).save(blank)
    page.set_input_files("#file", str(blank))
    assert answer_becomes(page, "Blank") == "Blank"
    assert page.locator("#boxes .box").count() == 0  # boxes are drawn only over what was drawn on the canvas


def test_phone_sized_screen(browser, server):
    context = browser.new_context(viewport={"width": 390, "height": 844}, has_touch=True, is_mobile=True)
    pg = context.new_page()
    pg.goto(server)
    box = pg.locator("#canvas").bounding_box()
    assert 300 < box["width"] <= 390  # fills the narrow screen without overflow
    assert pg.evaluate("() => document.documentElement.scrollWidth") <= 390
    assert pg.get_by_label("Clear the canvas").is_visible() and pg.get_by_label("Undo the last stroke").is_visible()
    assert not pg.locator("#token-row").is_visible()  # only shown when the API asks for a token
    pg.click("#inside summary")  # the panel fits too
    assert pg.locator("#saliency").is_visible() and pg.evaluate("() => document.documentElement.scrollWidth") <= 390
    pg.screenshot(path=str(ARTIFACTS / "phone.png"), full_page=True)
    context.close()


def test_a_letter_is_not_a_digit_and_a_doodle_beside_a_digit_is_set_apart(page, mnist):
    from digitnet.data.negatives import LETTERS, PICTOGRAMS

    x, y = mnist[1]
    page.click("#clear")
    stroke_glyph(page, LETTERS["W"], left=0.5)
    assert answer_becomes(page, "Not a digit") == "Not a digit"
    assert boxes_become(page, 0, 1) == (0, 1)
    assert page.locator("#boxes .box.rejected span").inner_text() == "not a digit"
    dashed = page.locator("#boxes .box.rejected").evaluate("e => getComputedStyle(e).borderTopStyle")
    assert dashed == "dashed"
    page.screenshot(path=str(ARTIFACTS / "letter.png"))

    page.click("#clear")
    draw(page, x[0], left=0.25)
    stroke_glyph(page, PICTOGRAMS["star"](), left=0.75)
    assert answer_becomes(page, str(y[0])) == str(y[0])
    assert boxes_become(page, 1, 1) == (1, 1)
    assert page.locator("#message").inner_text() == "1 mark is not a digit."
    digit_box = page.locator("#boxes .box.digit").bounding_box()
    doodle_box = page.locator("#boxes .box.rejected").bounding_box()
    assert digit_box["x"] + digit_box["width"] <= doodle_box["x"]  # each box sits over its own mark
    time.sleep(0.3)  # let the bars finish their 120 ms transition: this screenshot is the README's
    page.screenshot(path=str(ARTIFACTS / "digit-and-doodle.png"), clip={"x": 0, "y": 0, "width": 1000, "height": 700})


def test_inside_the_network_panel(page, mnist):
    x, y = mnist[1]
    page.click("#clear")
    asked = []
    page.on("request", lambda r: asked.append(r.url.rsplit("/", 1)[-1]) if "/api/" in r.url else None)
    draw(page, x[1])  # panel closed: plain predictions
    assert answer_becomes(page, str(y[1])) == str(y[1])
    assert "explain" not in asked and not page.locator("#saliency").is_visible()
    asked.clear()
    page.click("#inside summary")  # opening it reads the drawing again, explained
    canvas = page.locator("#saliency")
    deadline = time.time() + 8
    while time.time() < deadline and canvas.get_attribute("data-cls") != str(y[1]):
        time.sleep(0.1)
    assert canvas.get_attribute("data-cls") == str(y[1]) and asked == ["explain"]
    assert page.locator("#saliency-caption").inner_text() == f"Pixels that raised the score of {y[1]} (the digit read)"

    def red_pixels() -> int:  # saliency drawn in red over the grey input
        return page.evaluate("""() => { const d = document.getElementById('saliency').getContext('2d')
            .getImageData(0, 0, 28, 28).data; let n = 0;
            for (let i = 0; i < d.length; i += 4) if (d[i] > d[i + 1] + 60) n++; return n; }""")

    assert red_pixels() > 10
    maps = page.locator("#maps img")
    assert maps.count() == 3  # one grid per convolution block
    assert all(maps.nth(i).evaluate("i => i.complete && i.naturalWidth > 20") for i in range(3))
    assert page.locator("#maps figcaption").first.inner_text() == "block1 · 32 maps 12×12"
    tall = page.locator(f"#class-bars li:nth-child({int(y[1]) + 1}) .fill").bounding_box()["height"]
    assert tall > 60 and "top" in page.locator(f"#class-bars li:nth-child({int(y[1]) + 1})").get_attribute("class")

    other = (int(y[1]) + 1) % 10
    before = page.evaluate("() => document.getElementById('saliency').toDataURL()")
    page.hover(f"#class-bars li:nth-child({other + 1}) button")  # hovering shows another class's saliency
    assert canvas.get_attribute("data-cls") == str(other)
    assert page.evaluate("() => document.getElementById('saliency').toDataURL()") != before
    page.mouse.move(0, 0)
    assert canvas.get_attribute("data-cls") == str(y[1])  # and leaving returns to the one chosen
    page.click(f"#class-bars li:nth-child({other + 1}) button")  # tapping chooses it
    page.mouse.move(0, 0)
    assert canvas.get_attribute("data-cls") == str(other)
    page.locator("#inside").screenshot(path=str(ARTIFACTS / "inside.png"))

    asked.clear()
    page.click("#clear")
    draw(page, x[2])  # while open, each drawing pause asks once, for the explanation
    assert answer_becomes(page, str(y[2])) == str(y[2])
    deadline = time.time() + 8
    while time.time() < deadline and canvas.get_attribute("data-cls") != str(y[2]):
        time.sleep(0.1)
    assert canvas.get_attribute("data-cls") == str(y[2]) and set(asked) == {"explain"}
    page.click("#inside summary")  # closed again: back to plain predictions


@pytest.fixture(scope="module")
def learning_server(tmp_path_factory):
    """`digitnet serve` of the default model (so it follows personal versions) in a $DIGITNET_HOME of its own."""
    import os

    import loadgen
    from digitnet import config

    home = tmp_path_factory.mktemp("learning") / "home"
    env = {"DIGITNET_HOME": str(home), "DIGITNET_DATA": str(config.resolve_cache_dir(None))}
    proc, url = loadgen.start_server(env={**os.environ, **env})
    yield url, home
    proc.terminate()
    proc.wait(10)


def test_teach_it_your_handwriting(browser, learning_server):
    """Correct an answer, see the counter, run personalize, see the new answer."""
    import json
    import urllib.request

    from PIL import Image

    import styles

    url, home = learning_server
    pg = browser.new_page(viewport={"width": 1000, "height": 900})
    pg.goto(url)
    pg.locator("#teach").wait_for(state="visible")
    assert pg.locator("#sample-counts").inner_text().startswith("No samples yet")
    strokes = styles._quirk(2, np.random.default_rng(3))  # a "Z" with a bar across: MNIST has no such 2
    stroke_glyph(pg, strokes, left=0.5)
    deadline = time.time() + 8
    while time.time() < deadline and pg.locator("#corrections .correction").count() == 0:
        time.sleep(0.1)
    before = pg.locator("#answer").inner_text()
    print(f"before personalizing, the drawing read {before!r}")
    row = pg.locator("#corrections .correction").first
    row.locator("select").select_option("2")
    row.locator("button").click()
    assert answer_text(row.locator(".saved"), "saved as 2")
    counts = pg.locator("#sample-counts")
    assert answer_text(counts, "Your samples: 2: 1 (1 in all)")
    stored = list((home / "samples" / "2").glob("*.png"))
    assert len(stored) == 1 and np.asarray(Image.open(stored[0])).shape == (28, 28)

    x, y = styles.style(10, seed=4)  # more of the same hand, as if corrected one by one
    for a, b in zip(x, y):
        req = urllib.request.Request(f"{url}/api/samples", data=json.dumps({"pixels": a.tolist(), "label": int(b)})
                                     .encode(), headers={"Content-Type": "application/json"})
        urllib.request.urlopen(req)
    pg.locator("#personalize").click()
    status = pg.locator("#personalize-status")
    assert answer_text(status, "Now answering.", timeout=150, contains=True), status.inner_text()
    assert status.get_attribute("data-version") == "1"
    assert answer_becomes(pg, "2", timeout=10) == "2", f"read {before!r} before personalizing"
    pg.screenshot(path=str(ARTIFACTS / "personalized.png"))
    pg.close()


def answer_text(locator, text: str, timeout: float = 8.0, contains: bool = False) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        got = locator.inner_text()
        if (text in got) if contains else (got == text):
            return True
        time.sleep(0.2)
    return False
