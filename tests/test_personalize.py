"""Teaching it your handwriting: the sample store, its API, personalize end to end, versions and the live swap."""

import base64
import io
import json
import shutil
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from PIL import Image

import styles
from digitnet.errors import InputError, SampleCapError
from digitnet.samples import SampleStore, sample_id


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A fresh $DIGITNET_HOME (MNIST still comes from the shared cache)."""
    from digitnet import config

    data = config.resolve_cache_dir(None)
    monkeypatch.setenv("DIGITNET_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DIGITNET_DATA", str(data))
    return tmp_path / "home"


def digit(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    a = np.zeros((28, 28), np.uint8)
    a[6:22, 10:18] = rng.integers(1, 256, (16, 8))
    return a


# ----------------------------------------------------------------------------------------- the store


def test_store_writes_atomically_deduplicates_and_relabels(tmp_path):
    store = SampleStore(tmp_path / "s")
    sid, new = store.add(digit(0), 3)
    assert new and sid == sample_id(digit(0)) and len(sid) == 64
    path = tmp_path / "s" / "3" / f"{sid}.png"
    np.testing.assert_array_equal(np.asarray(Image.open(path)), digit(0))  # the 28x28 itself, lossless
    assert store.add(digit(0), "3") == (sid, False)  # the same image again: stored once
    assert store.add(digit(0), 5) == (sid, False)  # relabelled: the newer label wins, still one file
    assert not path.exists() and (tmp_path / "s" / "5" / f"{sid}.png").is_file()
    assert store.counts()["5"] == 1 and sum(store.counts().values()) == 1
    assert not [p for p in (tmp_path / "s").rglob("*") if p.name.startswith(".tmp")]  # no temp file left
    x, y = store.load()
    assert x.shape == (1, 28, 28) and y.tolist() == [5]


def test_a_failed_write_leaves_nothing(tmp_path, monkeypatch):
    import digitnet.samples as samples

    def broken(path, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(samples, "atomic_write_bytes", broken)
    store = SampleStore(tmp_path / "s")
    with pytest.raises(OSError, match="No space"):
        store.add(digit(1), 4)
    assert store.list() == [] and not list((tmp_path / "s").rglob("*.png"))


def test_store_caps_and_bad_input(tmp_path):
    store = SampleStore(tmp_path / "s", per_label=3, total=5)
    for i in range(3):
        store.add(digit(i), 1)
    with pytest.raises(SampleCapError, match="digit 1 already has 3"):
        store.add(digit(10), 1)
    store.add(digit(11), 2)
    store.add(digit(12), 2)
    with pytest.raises(SampleCapError, match="holds 5 samples"):
        store.add(digit(13), 3)
    store.add(digit(0), 2)  # relabelling an existing sample is not a new one: under the total cap
    for bad in (10, -1, "x", "12", None, 2.5, True):
        with pytest.raises(InputError, match="label"):
            store.add(digit(20), bad)
    with pytest.raises(InputError, match="blank"):
        store.add(np.zeros((28, 28), np.uint8), 1)
    with pytest.raises(InputError, match="uint8"):
        store.add(np.zeros((20, 20), np.uint8), 1)
    assert sum(store.counts().values()) == 5
    with pytest.raises(InputError, match="64 lowercase hex"):
        store.delete("../../etc/passwd")
    assert store.delete(sample_id(digit(0))) and not store.delete(sample_id(digit(0)))
    assert store.clear() == 4 and store.list() == []


def test_a_saved_sample_is_read_back_as_it_is(tmp_path):
    """A 28x28 single-channel image is already MNIST form: reading it again must not re-normalize it."""
    from digitnet.data.datasets import read_digit

    small = digit(3)
    small[6:8, 10:18] = 0  # not centred by mass, not 20 px tall: a second normalization would change it
    Image.fromarray(small).save(tmp_path / "s.png")
    np.testing.assert_array_equal(read_digit(tmp_path / "s.png"), small)
    Image.fromarray(255 - np.kron(small, np.ones((4, 4), np.uint8))).save(tmp_path / "big.png")  # a photo-like one
    read = read_digit(tmp_path / "big.png")
    assert read.shape == (28, 28) and not np.array_equal(read, small)  # through the real-world path


# ------------------------------------------------------------------------------------------ the API


@pytest.fixture
def client(home, predictor):
    from fastapi.testclient import TestClient

    from digitnet.server import create_app

    return TestClient(create_app(predictor))


def test_samples_api(client, home, mnist):
    from renders import number_image

    x, y = mnist[1]
    r = client.post("/api/samples", json={"pixels": x[0].tolist(), "label": 7})
    assert r.status_code == 201 and r.json() == {"id": sample_id(x[0]), "label": 7}
    assert client.post("/api/samples", json={"pixels": x[0].tolist(), "label": "7"}).status_code == 200  # once
    listing = client.get("/api/samples").json()
    assert listing["total"] == 1 and listing["counts"]["7"] == 1 and listing["samples"] == [{"id": sample_id(x[0]),
                                                                                            "label": 7}]
    buf = io.BytesIO()
    number_image([x[1], x[2]], np.random.default_rng(0)).save(buf, format="PNG")
    two = buf.getvalue()
    r = client.post("/api/samples", files={"file": ("n.png", two, "image/png")}, data={"label": "4"})
    assert r.status_code == 422 and "holds 2 marks" in r.json()["error"]
    r = client.post("/api/samples", files={"file": ("n.png", two, "image/png")}, data={"label": "4", "index": "1"})
    assert r.status_code == 201
    stored = np.asarray(Image.open(home / "samples" / "4" / f"{r.json()['id']}.png"))
    reading = client.post("/api/predict", files={"file": ("n.png", two, "image/png")}).json()
    shown = np.asarray(Image.open(io.BytesIO(base64.b64decode(reading["predictions"][1]["normalized"]))))
    np.testing.assert_array_equal(stored, shown)  # what the model saw, not the upload
    r = client.post("/api/samples", json={"image": base64.b64encode(two).decode(), "label": 1, "index": 5})
    assert r.status_code == 422 and "out of range" in r.json()["error"]

    for body, status, fragment in [({"pixels": x[3].tolist(), "label": 11}, 422, "label"),
                                   ({"pixels": x[3].tolist()}, 422, "label"),
                                   ({"pixels": [300] * 784, "label": 1}, 422, "0-255"),
                                   ({"pixels": [0] * 784, "label": 1}, 422, "blank"),
                                   ({"image": "!!!", "label": 1}, 400, "base64")]:
        r = client.post("/api/samples", json=body)
        assert r.status_code == status and fragment in r.json()["error"], (body.keys(), r.text)
    r = client.post("/api/samples", files={"file": ("x.png", b"garbage", "image/png")}, data={"label": "1"})
    assert r.status_code == 400
    assert client.get("/api/samples").json()["total"] == 2  # nothing stored by the bad requests

    assert client.delete(f"/api/samples/{sample_id(x[0])}").status_code == 204
    assert client.delete(f"/api/samples/{sample_id(x[0])}").status_code == 404
    assert client.delete("/api/samples/nothex").status_code == 422
    assert client.delete("/api/samples").json() == {"deleted": 1}


def test_sample_cap_answers_409(client):
    for i in range(50):
        assert client.post("/api/samples", json={"pixels": digit(i).tolist(), "label": 2}).status_code == 201
    r = client.post("/api/samples", json={"pixels": digit(99).tolist(), "label": 2})
    assert r.status_code == 409 and r.json()["code"] == "sample_cap"


def test_learning_is_refused_without_token_beyond_loopback_and_needs_the_token(home, predictor):
    from fastapi.testclient import TestClient

    from digitnet.server import create_app

    open_ = TestClient(create_app(predictor, learning=False))
    for method, path in (("get", "/api/samples"), ("post", "/api/personalize"), ("get", "/api/personalize"),
                         ("delete", "/api/samples")):
        r = getattr(open_, method)(path)
        assert r.status_code == 403 and r.json()["code"] == "learning_off", path
    assert open_.post("/api/predict", json={"pixels": digit(0).tolist()}).status_code == 200  # reading still works
    locked = TestClient(create_app(predictor, token="s3cret"))
    assert locked.get("/api/samples").status_code == 401
    assert locked.get("/api/samples", headers={"Authorization": "Bearer s3cret"}).status_code == 200


def test_serve_beyond_loopback_without_token_turns_learning_off(monkeypatch):
    from digitnet import cli

    made = {}
    monkeypatch.setattr("digitnet.server.app.create_app", lambda p, **kw: made.update(kw))
    monkeypatch.setattr("digitnet.server.serving.serve", lambda *a, **kw: None)
    from digitnet.inference import shipped_model_path

    cli.main(["serve", "--host", "0.0.0.0", "--model", str(shipped_model_path())])
    assert made["learning"] is False and made["watch"] is False
    cli.main(["serve", "--host", "0.0.0.0", "--token", "t", "--model", str(shipped_model_path())])
    assert made["learning"] is True
    cli.main(["serve"])
    assert made["learning"] is True and made["watch"] is True  # the default model: follows personal versions


# --------------------------------------------------------------------------------- personalize, versions


def test_too_few_samples_of_a_digit_is_a_clear_error(home):
    store = SampleStore()
    for i in range(5):
        store.add(digit(i), 3)
    store.add(digit(9), 8)
    store.add(digit(10), 8)
    proc = subprocess.run([sys.executable, "-m", "digitnet", "personalize"], capture_output=True, text=True)
    assert proc.returncode == 1
    assert "digit 8 has 2: personalize needs at least 3 samples of each digit" in proc.stderr
    assert not (home / "models" / "personal").exists() or not any((home / "models" / "personal").iterdir())


@pytest.fixture(scope="module")
def version_home(tmp_path_factory, mnist):
    """A $DIGITNET_HOME with the quirky style's samples and one personal version fine-tuned from the shipped
    model by the real command (TFLite conversion cached in it)."""
    from digitnet import config

    root = tmp_path_factory.mktemp("personal") / "home"
    env = {"DIGITNET_HOME": str(root), "DIGITNET_DATA": str(config.resolve_cache_dir(None))}
    import os

    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        x, y = styles.style(10, seed=1)
        store = SampleStore()
        for a, b in zip(x, y):
            store.add(a, int(b))
        started = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "digitnet", "personalize"], capture_output=True, text=True,
                              timeout=600)
        seconds = time.perf_counter() - started
        assert proc.returncode == 0, proc.stderr
    finally:
        for k, v in old.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    return root, env, proc.stdout, seconds


@pytest.mark.slow
def test_personalize_learns_the_style_and_keeps_mnist(version_home, monkeypatch):
    from digitnet import versions
    from digitnet.inference import Predictor, shipped_model_path
    from digitnet.models.saving import resolve_model_path

    root, env, stdout, seconds = version_home
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert stdout.splitlines()[0] == "version 1" and seconds < 90  # whole process, conversion included
    metrics = json.loads((root / "models" / "personal" / "1" / "metrics.json").read_text())
    p = metrics["personalization"]
    assert metrics["base"]["sha256"] == __import__("digitnet.fileio", fromlist=["x"]).sha256_file(shipped_model_path())
    assert p["after"]["validation"] >= p["gate"] >= 0.9924  # MNIST validation kept (the gate)
    assert p["after"]["test"] >= 0.99
    assert (root / "models" / "personal" / "1" / "MODEL_CARD.md").is_file()
    x_new, y_new = styles.style(60, seed=99)  # unseen samples of the style
    before, after = Predictor.load(shipped_model_path()), Predictor.load(root / "models" / "personal" / "1")
    assert styles.read_rate(before, x_new, y_new) <= 0.7
    assert styles.read_rate(after, x_new, y_new) >= 0.95
    assert after.min_digit_score > 0 and "temperature" in after.info["calibration"]  # recalibrated
    # It is the default model now, found by its base; a trained default (another base) is never shadowed.
    assert resolve_model_path(None) == root / "models" / "personal" / "1" / "model.keras"
    default = root / "models" / "default"
    default.mkdir(parents=True)
    shutil.copy(shipped_model_path(), default / "model.keras")
    (default / "model.keras").write_bytes((default / "model.keras").read_bytes() + b"\0")  # another file
    assert resolve_model_path(None) == default / "model.keras"
    shutil.rmtree(default)
    listing = subprocess.run([sys.executable, "-m", "digitnet", "personalize", "--list"], capture_output=True,
                             text=True, env={**__import__("os").environ})
    assert listing.stdout.startswith("1 (in use): ")
    assert versions.read_status()["state"] == "done" and versions.read_status()["version"] == 1


def test_versions_are_numbered_pruned_and_reset(home):
    from digitnet import versions

    def build(tmp):
        (tmp / "model.keras").write_bytes(b"x")
        (tmp / "metrics.json").write_text(json.dumps({"base": {"sha256": "abc"}}))

    numbers = [versions.publish(build) for _ in range(7)]
    assert numbers == [1, 2, 3, 4, 5, 6, 7]
    assert versions.versions() == [3, 4, 5, 6, 7]  # the newest five kept
    assert not [p for p in (home / "models" / "personal").iterdir() if p.name.startswith(".")]
    store = SampleStore()
    store.add(digit(0), 1)
    assert versions.reset() == 5 and versions.versions() == [] and store.counts()["1"] == 1  # samples stay


def test_one_job_at_a_time(home):
    from digitnet import versions
    from digitnet.errors import BusyError

    with versions.job_lock():
        assert versions.is_locked()
        with pytest.raises(BusyError), versions.job_lock():
            pass
        code = "from digitnet import versions; print(versions.is_locked())"
        assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "True"
    assert not versions.is_locked()


def test_personalize_endpoint_runs_one_job_and_reports(client, home):
    r = client.post("/api/personalize")
    assert r.status_code == 202 and r.json()["state"] in ("starting", "running", "failed")
    busy = client.post("/api/personalize")
    assert busy.status_code == 409 and busy.json()["code"] == "busy"
    deadline = time.time() + 60
    while time.time() < deadline and client.get("/api/personalize").json()["state"] in ("starting", "running"):
        time.sleep(0.5)
    status = client.get("/api/personalize").json()
    assert status["state"] == "failed" and "no samples to learn from" in status["error"]  # an empty store


# ------------------------------------------------------------------------------------------ live swap


@pytest.mark.slow
def test_live_swap_under_load_fails_no_request(version_home, tmp_path):
    """1,000 requests at concurrency 16 across a swap: none fails, and the new version answers after it."""
    import loadgen

    root, env, _, _ = version_home
    home = tmp_path / "home"
    shutil.copytree(root, home, ignore=shutil.ignore_patterns("personal"))  # the cache (conversions) and data
    env = {**env, "DIGITNET_HOME": str(home)}
    proc, url = loadgen.start_server(env=env, stderr=subprocess.PIPE)
    try:
        assert json.loads(__import__("urllib.request").request.urlopen(f"{url}/api/model").read())["version"] \
            == "shipped"
        swapped_at = []

        def publish():
            time.sleep(1)  # into the load
            (home / "models" / "personal").mkdir(parents=True)
            shutil.copytree(root / "models" / "personal" / "1", home / "models" / "personal" / ".building")
            (home / "models" / "personal" / ".building").rename(home / "models" / "personal" / "1")
            swapped_at.append(time.perf_counter())

        t = threading.Thread(target=publish)
        t.start()
        r = loadgen.run_load(url, n=1000, concurrency=16, bad_fraction=0.0)
        t.join()
        import urllib.request

        info = json.loads(urllib.request.urlopen(f"{url}/api/model").read())
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=20)
    assert r.requests == 1000 and r.good_failures == [] and r.status_counts == {200: 1000}, r.status_counts
    order = sorted(r.answered_by)
    labels = [v for _, v in order]
    assert labels[0] == "shipped" and labels[-1] == "1" and info["version"] == "1", err
    first_new = labels.index("1")
    assert first_new >= 16 and labels.count("1") >= 100  # the swap came during the load, not before or at its end
    settled = order[first_new][0] + 1.0  # requests already running on the old model finish on it: allow them 1 s
    assert {v for t, v in order if t > settled} == {"1"}  # after that, every answer comes from the new version
    assert order[first_new][0] - swapped_at[0] < 10  # within a few polls of the version appearing
    assert "now serving model version 1" in err.decode()
    print(f"{first_new} answers from the shipped model, then {labels.count('1')} from version 1; "
          f"p99 {r.pct(99):.0f} ms")


def test_a_bad_version_is_refused_and_the_old_model_keeps_serving(home, predictor, caplog):
    from digitnet.fileio import sha256_file
    from digitnet.inference import shipped_model_path
    from digitnet.models import zoo
    from digitnet.server.deps import ServerState
    from digitnet.server.swap import ModelWatcher

    state = ServerState(predictor, None, None)
    predictor.version = "shipped"
    watcher = ModelWatcher(state, "tflite")
    base = {"base": {"sha256": sha256_file(shipped_model_path())}}
    damaged = home / "models" / "personal" / "1"
    damaged.mkdir(parents=True)
    (damaged / "model.keras").write_bytes(b"not a model")
    (damaged / "metrics.json").write_text(json.dumps(base))
    assert not watcher.check_once() and state.predictor is predictor
    assert "refused, still serving version shipped" in caplog.text
    untrained = home / "models" / "personal" / "2"  # loads fine, reads MNIST at chance
    untrained.mkdir()
    zoo.cnn(width=4).save(untrained / "model.keras")
    (untrained / "metrics.json").write_text(json.dumps(base))
    assert not watcher.check_once() and state.predictor is predictor
    assert "under 99%" in caplog.text
    assert not watcher.check_once()  # refused once, not retried every poll


@pytest.mark.slow
def test_two_server_processes_share_a_port_and_both_swap(version_home, tmp_path):
    """`serve --processes 2`: two pids answer on one port, each with its own model, and both follow a new version."""
    import urllib.request

    import loadgen

    root, env, _, _ = version_home
    home = tmp_path / "home"
    shutil.copytree(root, home, ignore=shutil.ignore_patterns("personal"))
    proc, url = loadgen.start_server(env={**env, "DIGITNET_HOME": str(home)}, processes=2)  # both pids answered

    def versions(seconds: float, until: set) -> dict:
        seen, deadline = {}, time.time() + seconds
        while time.time() < deadline and not (len(seen) == 2 and set(seen.values()) == until):
            h = json.loads(urllib.request.urlopen(f"{url}/healthz", timeout=5).read())  # a new connection each time
            seen[h["pid"]] = h["model_version"]
        return seen

    try:
        seen = versions(30, {"shipped"})
        assert len(seen) == 2 and set(seen.values()) == {"shipped"}, seen
        (home / "models" / "personal").mkdir(parents=True)
        shutil.copytree(root / "models" / "personal" / "1", home / "models" / "personal" / "1")
        seen = versions(60, {"1"})
        assert len(seen) == 2 and set(seen.values()) == {"1"}, seen  # both processes swapped
        r = loadgen.run_load(url, n=300, concurrency=8, bad_fraction=0.0)
        assert r.status_counts == {200: 300} and {v for _, v in r.answered_by} == {"1"}
    finally:
        proc.terminate()
        proc.wait(20)
