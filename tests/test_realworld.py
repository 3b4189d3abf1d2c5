"""Real-world digits end to end: MNIST test digits re-rendered the way users make them, read through
the whole path (decode, normalize, segment, predict) with the shipped model."""

import json
import subprocess
import sys
import zlib

import numpy as np
import pytest

from renders import FAMILIES, inverted, number_image

pytestmark = pytest.mark.slow
N_PER_FAMILY = 500


@pytest.fixture(scope="module")
def test_digits(mnist):
    return mnist[1]


@pytest.mark.parametrize("family", FAMILIES)
def test_family_accuracy(family, test_digits, predictor):
    x, y = test_digits
    rng = np.random.default_rng(zlib.crc32(family.encode()))  # stable across runs, unlike hash()
    idx = rng.choice(len(x), N_PER_FAMILY, replace=False)
    labels = []
    for i in idx:
        r = predictor.predict_image(FAMILIES[family](x[i], rng), single=True)
        labels.append(r.predictions[0].digit if r.digits else -1)
    accuracy = float((np.array(labels) == y[idx]).mean())
    print(f"{family}: {accuracy:.4f} on {N_PER_FAMILY}")
    assert accuracy >= 0.97


def test_four_digit_strings(test_digits, predictor):
    x, y = test_digits
    rng = np.random.default_rng(2026)
    n, hits = 300, 0
    for _ in range(n):
        idx = rng.choice(len(x), 4)
        r = predictor.predict_image(number_image([x[i] for i in idx], rng))
        hits += r.digits == "".join(str(int(y[i])) for i in idx)
    print(f"4-digit strings: {hits / n:.4f} on {n}")
    assert hits / n >= 0.93


def test_strings_of_1_to_12_digits(test_digits, predictor):
    x, y = test_digits
    rng = np.random.default_rng(12)
    for length in (1, 2, 6, 12):
        idx = rng.choice(len(x), length)
        r = predictor.predict_image(number_image([x[i] for i in idx], rng)).to_dict()
        assert r["digits"] is not None and len(r["digits"]) == length
        boxes = [p["box"] for p in r["predictions"]]
        assert [b[0] for b in boxes] == sorted(b[0] for b in boxes)


def test_the_shipped_model_is_calibrated(test_digits, predictor):
    from digitnet.evaluation import ece

    x, y = test_digits
    probs = predictor.predict_proba(x)  # the default backend: the temperature travels inside the model
    calibrated = ece(probs, y)
    print(f"shipped model, MNIST test: accuracy {(probs.argmax(1) == y).mean():.4f}, ECE {calibrated:.4f}")
    assert (probs.argmax(1) == y).mean() >= 0.996 and calibrated <= 0.005  # bench: 0.0014; the target 0.015
    assert predictor.info["calibration"]["temperature"] < 1  # label smoothing left it underconfident


def test_result_schema(test_digits, predictor):
    x, _ = test_digits
    reading = predictor.predict_image(inverted(x[0], np.random.default_rng(0)), top_k=3, file="a.png")
    assert reading.digits == "7" and reading.predictions[0].digit == 7 and reading.predictions[0].normalized is None
    r = reading.to_dict()  # what the CLI's --json and the API send
    assert set(r) == {"file", "digits", "reason", "predictions", "error"}
    assert r["file"] == "a.png" and r["digits"] == "7" and r["reason"] is None and r["error"] is None
    p = r["predictions"][0]
    assert set(p) == {"digit", "probability", "probabilities", "box", "low_confidence", "top_k"}
    assert len(p["probabilities"]) == 10 and abs(sum(p["probabilities"]) - 1) < 1e-4
    assert p["top_k"][0] == [7, p["probability"]] and len(p["top_k"]) == 3
    x0, y0, w, h = p["box"]
    assert 0 <= x0 < 112 and 0 <= y0 < 112 and 0 < w <= 112 and 0 < h <= 112
    blank = predictor.predict_image(np.full((64, 64), 255, np.uint8)).to_dict()
    assert blank["digits"] is None and blank["reason"] == "blank image" and blank["predictions"] == []


def test_predict_cli_json_errors_and_exit_codes(test_digits, tmp_path):
    x, y = test_digits
    rng = np.random.default_rng(3)
    folder = tmp_path / "imgs" / "nested"
    folder.mkdir(parents=True)
    inverted(x[1], rng).save(folder / "two.png")
    number_image([x[i] for i in (1, 2, 3)], rng).save(tmp_path / "imgs" / "number.png")
    (tmp_path / "bad.png").write_bytes(b"not an image")
    (tmp_path / "empty.jpg").write_bytes(b"")
    exe = [sys.executable, "-m", "digitnet", "predict"]

    ok = subprocess.run([*exe, "--json", str(tmp_path / "imgs")], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    results = json.loads(ok.stdout)
    assert [r["file"] for r in results] == [str(folder / "two.png"), str(tmp_path / "imgs" / "number.png")]
    assert results[0]["digits"] == str(y[1]) and results[1]["digits"] == "".join(str(int(y[i])) for i in (1, 2, 3))

    mixed = subprocess.run([*exe, str(folder / "two.png"), str(tmp_path / "bad.png"), str(tmp_path / "empty.jpg")],
                           capture_output=True, text=True)
    assert mixed.returncode == 1
    lines = mixed.stdout.splitlines()
    assert lines[0].startswith(f"{folder / 'two.png'}: {y[1]} (") and lines[0].endswith("%)")
    assert lines[1] == f"{tmp_path / 'bad.png'}: error: not a readable image (unknown or unsupported format)"
    assert lines[2] == f"{tmp_path / 'empty.jpg'}: error: empty file (0 bytes)"

    stdin = subprocess.run([*exe, "--json", "--single", "-"], input=(folder / "two.png").read_bytes(),
                           capture_output=True)
    assert stdin.returncode == 0 and json.loads(stdin.stdout)[0]["file"] == "-"
    usage = subprocess.run([*exe, "--top-k", "zero", "x.png"], capture_output=True, text=True)
    assert usage.returncode == 2 and "'zero' is not a whole number" in usage.stderr
    missing = subprocess.run([*exe, str(tmp_path / "nope.png")], capture_output=True, text=True)
    assert missing.returncode == 1 and "no such file" in missing.stdout


def test_predictor_api_contract(predictor, test_digits):
    x, y = test_digits
    probs = predictor.predict_proba(x[:100])
    assert probs.shape == (100, 10) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1, rtol=1e-5)
    np.testing.assert_array_equal(predictor.predict(x[:100].reshape(100, 784)), probs.argmax(1))
    np.testing.assert_allclose(predictor.predict_proba(x[0]), probs[:1], rtol=1e-5)
    np.testing.assert_allclose(predictor.predict_proba(x[:3] / 255.0), probs[:3], rtol=1e-4, atol=1e-6)
    assert (predictor.predict(x) == y).mean() > 0.99
    tta = predictor.predict_proba(x[:200], tta=True)  # averaged over the image and two rotations
    np.testing.assert_allclose(tta.sum(axis=1), 1, rtol=1e-5)
    assert not np.allclose(tta, predictor.predict_proba(x[:200]))  # the rotated views do change the answer
    assert (tta.argmax(1) == y[:200]).mean() > 0.98
    with pytest.raises(ValueError, match=r"float images must lie in \[0, 1\]"):
        predictor.predict_proba(x[:2].astype(np.float32))
    with pytest.raises(ValueError, match="shape"):
        predictor.predict_proba(np.zeros((2, 27, 27), np.uint8))
    with pytest.raises(ValueError, match="NaN"):
        predictor.predict_proba(np.full((1, 28, 28), np.nan, np.float32))
