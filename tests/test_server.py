"""The HTTP API in process, through the app factory: every endpoint and every error path."""

import base64
import io
import json

import numpy as np
import pytest
from PIL import Image, ImageDraw

from renders import inverted, number_image

fastapi = pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from digitnet.server import Limits, create_app  # noqa: E402


@pytest.fixture(scope="module")
def digits(mnist):
    return mnist[1]


@pytest.fixture(scope="module")
def client(predictor):
    return TestClient(create_app(predictor, limits=Limits(max_upload_bytes=200_000, max_pixels=2_000_000)))


def png_bytes(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def seven(digits):
    x, y = digits
    assert y[0] == 7
    return png_bytes(inverted(x[0], np.random.default_rng(0)))


def assert_error(r, status, fragment):
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert set(body) == {"error"} and fragment in body["error"], body


def test_page_health_model_and_docs(client):
    page = client.get("/")
    assert page.status_code == 200 and "<canvas" in page.text and 'aria-label="Drawing canvas' in page.text
    for module in ("main.js", "draw.js", "api.js", "view.js"):  # ES modules, served without a build step
        r = client.get(f"/static/{module}")
        assert r.status_code == 200 and "javascript" in r.headers["content-type"]
    import os

    assert client.get("/healthz").json() == {"status": "ok", "pid": os.getpid(), "model_version": "shipped"}
    info = client.get("/api/model").json()
    assert info["classes"] == [str(i) for i in range(10)] and info["accuracy"] >= 0.99 and info["trained_at"]
    assert client.get("/docs").status_code == 200
    assert "/api/predict" in client.get("/openapi.json").json()["paths"]


def test_predict_multipart(client, seven):
    r = client.post("/api/predict?top_k=2", files={"file": ("seven.png", seven, "image/png")})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["file"] == "seven.png" and body["digits"] == "7" and body["error"] is None
    p = body["predictions"][0]
    assert p["digit"] == 7 and len(p["probabilities"]) == 10 and len(p["top_k"]) == 2
    img = Image.open(io.BytesIO(base64.b64decode(p["normalized"])))
    assert img.size == (28, 28)


def test_not_a_digit_over_the_api(client):
    star = Image.new("L", (200, 200), 255)
    points = [(100 + 80 * np.cos(a), 100 + 80 * np.sin(a)) for a in np.radians(np.arange(0, 721, 144) - 90)]
    ImageDraw.Draw(star).line(points, fill=0, width=12, joint="curve")
    buf = io.BytesIO()
    star.save(buf, format="PNG")
    threshold = client.get("/api/model").json()["min_digit_score"]
    body = client.post("/api/predict", files={"file": ("star.png", buf.getvalue(), "image/png")}).json()
    assert body["digits"] is None and body["reason"] == "not a digit" and body["predictions"] == []
    assert [r["reason"] for r in body["rejected"]] == ["not a digit"] and body["rejected"][0]["digit_score"] < threshold
    forced = client.post("/api/predict?min_digit_score=0", files={"file": ("star.png", buf.getvalue(), "image/png")})
    assert forced.json()["digits"] is not None and forced.json()["rejected"] == []


def test_predict_json_image_with_and_without_data_url(client, seven):
    b64 = base64.b64encode(seven).decode()
    for value in (b64, f"data:image/png;base64,{b64}"):
        r = client.post("/api/predict", json={"image": value})
        assert r.status_code == 200 and r.json()["digits"] == "7" and r.json()["file"] is None


def test_predict_json_pixels(client, digits):
    x, y = digits
    for pixels in (x[1].tolist(), x[1].reshape(-1).tolist()):
        r = client.post("/api/predict", json={"pixels": pixels})
        assert r.status_code == 200 and r.json()["digits"] == str(y[1])
    blank = client.post("/api/predict", json={"pixels": [0] * 784}).json()
    assert blank["digits"] is None and blank["reason"] == "blank image"


def test_multi_digit_and_batch(client, digits):
    x, y = digits
    rng = np.random.default_rng(4)
    number = png_bytes(number_image([x[i] for i in (1, 2, 3)], rng))
    r = client.post("/api/predict", files={"file": ("n.png", number, "image/png")})
    assert r.json()["digits"] == "".join(str(int(y[i])) for i in (1, 2, 3))
    files = [("file", (f"{i}.png", png_bytes(inverted(x[i], rng)), "image/png")) for i in range(5)]
    files.append(("file", ("bad.png", b"garbage", "image/png")))
    out = client.post("/api/predict/batch", files=files).json()
    assert [o["digits"] for o in out[:5]] == [str(int(v)) for v in y[:5]]
    assert out[5]["file"] == "bad.png" and "not a readable image" in out[5]["error"]


def test_error_paths(client, seven):
    assert_error(client.post("/api/predict", files={"file": ("x.png", b"not an image", "image/png")}), 400,
                 "not a readable image")
    assert_error(client.post("/api/predict", files={"file": ("x.png", b"", "image/png")}), 400, "empty file")
    assert_error(client.post("/api/predict", content=b"x" * 300_000, headers={"content-type": "image/png"}), 413,
                 "200,000-byte limit")
    big = png_bytes(Image.fromarray(np.zeros((1600, 1600), np.uint8)))  # small file, too many pixels
    assert_error(client.post("/api/predict", files={"file": ("big.png", big, "image/png")}), 413, "limit is 2,000,000")
    assert_error(client.post("/api/predict", content=seven, headers={"content-type": "image/png"}), 415,
                 "unsupported content type 'image/png'")
    assert_error(client.post("/api/predict", content=b"hello", headers={"content-type": "text/plain"}), 415,
                 "unsupported content type")
    assert_error(client.post("/api/predict", json={"pixels": [[1, 2], [3, 4]]}), 422, "got shape [2, 2]")
    assert_error(client.post("/api/predict", json={"pixels": [1] * 783 + ["x"]}), 422, "28x28 nested lists")
    assert_error(client.post("/api/predict", json={"pixels": [300] * 784}), 422, "0-255")
    nan = json.dumps({"pixels": [0] * 783}).replace("]", ", NaN]")  # Python's json writes NaN; the API must refuse it
    assert_error(client.post("/api/predict", content=nan, headers={"content-type": "application/json"}), 422, "NaN")
    assert_error(client.post("/api/predict", json={"other": 1}), 422, "needs 'pixels'")
    assert_error(client.post("/api/predict", json=[1, 2]), 422, "must be an object")
    assert_error(client.post("/api/predict", content=b"{bad json", headers={"content-type": "application/json"}),
                 400, "invalid JSON")
    assert_error(client.post("/api/predict", json={"image": "!!!not base64"}), 400, "not valid base64")
    assert_error(client.post("/api/predict", json={"image": ""}), 422, "non-empty base64")
    assert_error(client.post("/api/predict", files={"other": ("x.png", seven, "image/png")}), 422, "field 'file'")
    assert_error(client.post("/api/predict?top_k=11", json={"image": "AA=="}), 422, "top_k")
    assert_error(client.post("/api/predict?min_digit_score=1.5", json={"image": "AA=="}), 422, "min_digit_score")
    assert_error(client.post("/api/predict/batch", json={}), 415, "multipart/form-data")
    assert_error(client.get("/nope"), 404, "Not Found")
    assert_error(client.get("/api/predict"), 405, "Method Not Allowed")


def test_explain_answers_as_predict_plus_an_explanation(client, digits, seven):
    x, y = digits
    number = png_bytes(number_image([x[i] for i in (1, 2)], np.random.default_rng(5)))
    forms = {"multipart": {"files": {"file": ("n.png", number, "image/png")}},
             "image": {"json": {"image": base64.b64encode(number).decode()}}}
    for form, kwargs in forms.items():
        plain = client.post("/api/predict", **kwargs).json()
        r = client.post("/api/explain", **kwargs)
        assert r.status_code == 200, (form, r.text)
        body = r.json()
        assert body["digits"] == plain["digits"] == f"{y[1]}{y[2]}"
        for p, q in zip(body["predictions"], plain["predictions"]):
            e = p.pop("explanation")
            assert p == q  # the same answer, plus the explanation
            assert e["target"] == p["digit"] and e["method"] == "integrated_gradients"
            sal, by_class = np.array(e["saliency"]), np.array(e["saliency_by_class"])
            assert sal.shape == (28, 28) and sal.min() >= 0 and abs(sal.sum() - 1) < 1e-3
            assert by_class.shape == (10, 28, 28) and np.allclose(by_class[p["digit"]], sal)
            assert [layer["name"] for layer in e["layers"]] == ["block1", "block2", "block3", "features", "logits"]
            grid = Image.open(io.BytesIO(base64.b64decode(e["layers"][0]["png"])))
            assert e["layers"][0]["shape"] == [12, 12, 32] and grid.mode == "L" and grid.size[0] >= 12 * 5
            normalized = np.asarray(Image.open(io.BytesIO(base64.b64decode(p["normalized"]))))
            ink = normalized > 0  # the saliency lies on the ink: black pixels are the baseline
            assert sal[ink].sum() > 0.999
    pixels = client.post("/api/explain", json={"pixels": x[0].tolist()}).json()
    assert pixels["digits"] == str(y[0]) and pixels["predictions"][0]["explanation"]["target"] == y[0]
    blank = client.post("/api/explain", json={"pixels": [0] * 784}).json()
    assert blank["digits"] is None and blank["predictions"] == []
    assert_error(client.post("/api/explain", json={"pixels": [300] * 784}), 422, "0-255")
    assert_error(client.post("/api/explain", files={"file": ("x.png", b"not an image", "image/png")}), 400,
                 "not a readable image")
    tok = TestClient(create_app(client.app.state.digitnet.predictor, token="s3cret"))
    assert_error(tok.post("/api/explain", files={"file": ("s.png", seven, "image/png")}), 401, "invalid token")


def test_batch_limit(predictor, seven):
    small = TestClient(create_app(predictor, limits=Limits(max_batch=2)))
    files = [("file", (f"{i}.png", seven, "image/png")) for i in range(3)]
    assert_error(small.post("/api/predict/batch", files=files), 413, "at most 2 images per batch")


def test_token_protects_the_api_not_the_page(predictor, seven):
    c = TestClient(create_app(predictor, token="s3cret"))
    assert c.get("/").status_code == 200 and c.get("/healthz").status_code == 200
    assert_error(c.get("/api/model"), 401, "missing or invalid token")
    assert_error(c.post("/api/predict", files={"file": ("s.png", seven, "image/png")},
                        headers={"Authorization": "Bearer wrong"}), 401, "invalid token")
    ok = c.post("/api/predict", files={"file": ("s.png", seven, "image/png")},
                headers={"Authorization": "Bearer s3cret"})
    assert ok.status_code == 200 and ok.json()["digits"] == "7"


def test_cors_only_when_asked(predictor):
    origin = {"Origin": "https://example.org"}
    plain = TestClient(create_app(predictor)).get("/healthz", headers=origin)
    assert "access-control-allow-origin" not in plain.headers
    cors = TestClient(create_app(predictor, cors_origin="https://example.org")).get("/healthz", headers=origin)
    assert cors.headers["access-control-allow-origin"] == "https://example.org"


def test_full_queue_answers_503_with_retry_after(predictor, seven):
    import threading
    import time

    gate_open = threading.Event()
    slow = type(predictor)(predictor.model, predictor.info, predictor.path)
    original = slow.predict_image

    def blocking(*a, **k):
        gate_open.wait(10)
        return original(*a, **k)

    slow.predict_image = blocking
    results = []
    # One event loop for every request, as under uvicorn (a plain TestClient gives each request its own).
    with TestClient(create_app(slow, limits=Limits(workers=1, max_queue=1))) as c:

        def call():
            results.append(c.post("/api/predict", files={"file": ("s.png", seven, "image/png")}))

        threads = [threading.Thread(target=call) for _ in range(2)]  # one running, one waiting
        for t in threads:
            t.start()
            time.sleep(0.3)
        busy = c.post("/api/predict", files={"file": ("s.png", seven, "image/png")})
        gate_open.set()
        for t in threads:
            t.join()
    assert_error(busy, 503, "server busy")
    assert busy.headers["retry-after"] == "1"
    assert [r.status_code for r in results] == [200, 200]


def test_responses_validate_against_the_openapi_schema(client, seven, digits):
    import jsonschema
    spec = client.get("/openapi.json").json()

    def check(path: str, status: int, body) -> None:
        method = "post" if path.startswith(("/api/predict", "/api/explain")) else "get"
        schema = spec["paths"][path][method]["responses"][str(status)]
        schema = dict(schema["content"]["application/json"]["schema"], components=spec["components"])
        jsonschema.Draft202012Validator(schema).validate(body)  # raises on any mismatch

    ok = spec["paths"]["/api/predict"]["post"]["responses"]["200"]["content"]["application/json"]["schema"]
    reading = spec["components"]["schemas"][ok["$ref"].rsplit("/", 1)[-1]]
    assert {"digits", "predictions", "rejected", "reason", "error", "file"} <= set(reading["properties"])
    multipart = client.post("/api/predict?top_k=3", files={"file": ("seven.png", seven, "image/png")}).json()
    check("/api/predict", 200, multipart)
    check("/api/predict", 200, client.post("/api/predict", json={"pixels": digits[0][1].tolist()}).json())
    check("/api/predict", 200, client.post("/api/predict", json={"pixels": [0] * 784}).json())  # no digit
    files = [("file", ("a.png", seven, "image/png")), ("file", ("bad.png", b"garbage", "image/png"))]
    check("/api/predict/batch", 200, client.post("/api/predict/batch", files=files).json())
    check("/api/predict", 400, client.post("/api/predict", json={"image": "!!!"}).json())
    check("/api/explain", 200, client.post("/api/explain", files={"file": ("seven.png", seven, "image/png")}).json())
    check("/api/model", 200, client.get("/api/model").json())
    with pytest.raises(jsonschema.ValidationError):  # the schema is strict enough to catch a wrong shape
        check("/api/predict", 200, {**multipart, "predictions": [{"digit": "seven"}]})
    assert "top_k" in multipart["predictions"][0] and "top_k" not in client.post(
        "/api/predict", json={"pixels": digits[0][1].tolist()}).json()["predictions"][0]  # absent, never null
