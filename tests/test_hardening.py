"""One regression test per defect the adversarial probe found (issue 10), each input built here, no blobs."""

import io
import json
import os
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib

import numpy as np
import pytest
from PIL import Image

from renders import inverted

fastapi = pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from digitnet.errors import CheckpointError, DeadlineExceeded, ImageError, ModelOutputError  # noqa: E402
from digitnet.server import Limits, create_app  # noqa: E402

EXE = [sys.executable, "-m", "digitnet"]


def png(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def jpeg(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.convert("RGB").save(buf, format="JPEG", quality=90)
    return buf.getvalue()


@pytest.fixture(scope="module")
def seven(mnist):
    x, y = mnist[1]
    return inverted(x[0], np.random.default_rng(0))  # a PIL image of a 7, dark on light


@pytest.fixture(scope="module")
def client(predictor):
    return TestClient(create_app(predictor))


# ------------------------------------------------------------------------------------- 1. bad EXIF


def with_png_exif(data: bytes, payload: bytes) -> bytes:
    chunk = struct.pack(">I", len(payload)) + b"eXIf" + payload + struct.pack(">I", zlib.crc32(b"eXIf" + payload))
    return data[:-12] + chunk + data[-12:]  # just before IEND


def with_jpeg_exif(data: bytes, payload: bytes) -> bytes:
    body = b"Exif\x00\x00" + payload
    return data[:2] + b"\xff\xe1" + struct.pack(">H", len(body) + 2) + body + data[2:]  # APP1 right after SOI


@pytest.mark.parametrize("payload", [b"NOTATIFF", b"MM\x00\x2a\x00"])
def test_malformed_exif_is_ignored_not_fatal(payload, seven, predictor, client, tmp_path):
    files = {"bad.png": with_png_exif(png(seven), payload), "bad.jpg": with_jpeg_exif(jpeg(seven), payload)}
    for name, data in files.items():
        assert predictor.predict_image(data).digits == "7", name  # read as stored
        (tmp_path / name).write_bytes(data)
    (tmp_path / "good.png").write_bytes(png(seven))
    proc = subprocess.run([*EXE, "predict", str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert [ln.split(": ")[1][0] for ln in proc.stdout.splitlines()] == ["7", "7", "7"]  # every file, in order
    batch = [("file", (n, d, "application/octet-stream")) for n, d in files.items()]
    r = client.post("/api/predict/batch", files=batch)
    assert r.status_code == 200 and [o["digits"] for o in r.json()] == ["7", "7"]


def test_any_decoder_failure_is_an_image_error_for_that_file_only(monkeypatch, seven, predictor):
    from PIL import ImageFile

    def explode(self, *a, **k):
        raise struct.error("unpack requires a buffer of 4 bytes")  # not one of the usual decoder errors

    monkeypatch.setattr(ImageFile.ImageFile, "load", explode)
    with pytest.raises(ImageError, match="corrupt image data"):
        predictor.predict_image(png(seven))


# ------------------------------------------------------------------------------------ 2. hostile JSON


def test_json_that_breaks_the_parser_is_a_4xx(client):
    deep = b'{"pixels": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    huge = b'{"pixels": [' + b"9" * 5000 + b"]}"
    for body in (deep, huge, b'{"pixels": [' + b"1" * 400 + b"]}"):
        r = client.post("/api/predict", content=body, headers={"content-type": "application/json"})
        assert r.status_code in (400, 422) and set(r.json()) == {"error"}, r.text


# ----------------------------------------------------------------------------- 3. a chunked body over the cap


def test_chunked_body_over_the_cap_is_413(predictor):
    c = TestClient(create_app(predictor, limits=Limits(max_upload_bytes=100_000)))

    def chunks():  # no Content-Length: the cap must hold on the bytes received
        for _ in range(30):
            yield b"x" * 10_000

    r = c.post("/api/predict", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.json() == {"error": "request body over the 100,000-byte limit"}


# ------------------------------------------------------------------------------ 4. unbounded work


def dot_grid(h: int, w: int, period: int) -> bytes:
    """Black 2x2 dots every ``period`` px on white: a few hundred bytes of PNG, thousands of marks."""
    a = np.full((h, w), 255, np.uint8)
    for dy in (0, 1):
        for dx in (0, 1):
            a[dy::period, dx::period] = 0
    return png(Image.fromarray(a).convert("1"))


@pytest.mark.parametrize("h, w, period, reason", [
    (150, 3000, 5, "too many marks"),  # 30 x 600 dots that stay apart at the working resolution
    (300, 300, 3, "too many marks"),  # 10,000 dots, no shrinking at all
    (90, 9000, 3, "blank image"),  # 30 x 3,000 dots every 3 px: an even grey once shrunk 3x
])
def test_a_tiny_image_cannot_ask_for_unbounded_work(h, w, period, reason, predictor, client):
    data = dot_grid(h, w, period)
    assert len(data) < 1000
    t = time.perf_counter()
    r = predictor.predict_image(data)
    assert time.perf_counter() - t < 1.0
    assert r.digits is None and r.reason == reason
    t = time.perf_counter()
    answer = client.post("/api/predict", files={"file": ("dots.png", data, "image/png")})
    assert time.perf_counter() - t < 1.0 and answer.status_code == 200 and len(answer.content) < 1000
    rule = np.full((40, 4000), 255, np.uint8)
    rule[18:22, :] = 0  # one long rule: "touching digits" split into hundreds of parts, before the cap
    assert predictor.predict_image(rule).reason in ("too many marks", "no digit-like marks")


# ------------------------------------------------------------------------------------- 5. deadlines


def test_a_passed_deadline_stops_the_work(seven, predictor):
    with pytest.raises(DeadlineExceeded):
        predictor.predict_image(png(seven), deadline=time.monotonic() - 1)


class SlowPredictor:
    """A predictor whose reading takes 0.4 s per call, checking its deadline as the real one does."""

    def __init__(self, real):
        self.real, self.calls, self.running, self.peak = real, 0, 0, 0
        self.info, self.path, self.backend, self.min_confidence = real.info, real.path, real.backend, 0.5
        self.lock = threading.Lock()

    def predict_image(self, data, **kw):
        from digitnet.preprocessing import check_deadline

        with self.lock:
            self.calls += 1
            self.running += 1
            self.peak = max(self.peak, self.running)
        try:
            for _ in range(4):
                time.sleep(0.1)
                check_deadline(kw.get("deadline"))
            return self.real.predict_image(data, **kw)
        finally:
            with self.lock:
                self.running -= 1


def test_the_deadline_is_per_request_and_a_batch_shares_it(seven, predictor):
    slow = SlowPredictor(predictor)
    c = TestClient(create_app(slow, limits=Limits(timeout_s=1.0, workers=1)))
    files = [("file", (f"{i}.png", png(seven), "image/png")) for i in range(6)]
    t = time.perf_counter()
    r = c.post("/api/predict/batch", files=files)
    elapsed = time.perf_counter() - t
    assert r.status_code == 504 and elapsed < 2.0, (r.status_code, elapsed)  # not 6 x 1 s
    assert slow.calls <= 3 and slow.peak == 1


def test_batch_answers_have_a_size_cap(seven, predictor):
    c = TestClient(create_app(predictor, limits=Limits(max_response_bytes=2000)))
    files = [("file", (f"{i}.png", png(seven), "image/png")) for i in range(5)]
    out = c.post("/api/predict/batch", files=files).json()
    assert out[0]["digits"] == "7" and len(out) == 5
    assert "batch answer reached its 2,000-byte cap" in out[-1]["error"]


# ------------------------------------------------------------------------------- 6. the conversion cache


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_a_damaged_cache_is_detected_and_converted_again(damage, mnist, tmp_path, monkeypatch, caplog):
    from digitnet.inference import Predictor, shipped_model_path
    from digitnet.runtimes import cache_path

    monkeypatch.setenv("DIGITNET_HOME", str(tmp_path))
    x, y = mnist[1][0][:500], mnist[1][1][:500]
    good = Predictor.load(shipped_model_path()).predict(x)
    cached = cache_path(shipped_model_path(), "tflite")
    data = bytearray(cached.read_bytes())
    if damage == "flip":
        data[len(data) // 2 : len(data) // 2 + 8] = bytes(b ^ 0xFF for b in data[len(data) // 2 : len(data) // 2 + 8])
    else:
        data = data[: len(data) // 3]
    cached.write_bytes(bytes(data))
    with caplog.at_level("WARNING", logger="digitnet"):
        again = Predictor.load(shipped_model_path())
    assert "is damaged" in caplog.text and str(cached) in caplog.text
    np.testing.assert_array_equal(again.predict(x), good)
    assert (good == y).mean() > 0.99


def test_non_finite_model_output_is_an_error_never_nan_json(seven, predictor):
    from digitnet.inference import Predictor

    class NaNRunner:
        def run(self, batch, names):
            return {n: np.full((len(batch), 10), np.nan, np.float32) for n in names}

    broken = Predictor.__new__(Predictor)
    broken.__dict__.update(predictor.__dict__, runner=NaNRunner())
    with pytest.raises(ModelOutputError, match="non-finite"):
        broken.predict_image(png(seven))
    r = TestClient(create_app(broken)).post("/api/predict", files={"file": ("s.png", png(seven), "image/png")})
    assert r.status_code == 500 and "non-finite" in r.json()["error"]  # valid JSON, no NaN anywhere


# ----------------------------------------------------------------------------------- 7. odd homes


def test_a_read_only_home_converts_without_a_cache(monkeypatch, tmp_path, caplog):
    import errno
    from pathlib import Path

    from digitnet.inference import Predictor, shipped_model_path

    monkeypatch.setenv("DIGITNET_HOME", str(tmp_path / "ro"))
    real_mkdir = Path.mkdir

    def read_only(self, *a, **k):
        if str(self).startswith(str(tmp_path / "ro")):
            raise OSError(errno.EROFS, "Read-only file system", str(self))
        return real_mkdir(self, *a, **k)

    monkeypatch.setattr(Path, "mkdir", read_only)
    with caplog.at_level("WARNING", logger="digitnet"):
        p = Predictor.load(shipped_model_path(), backend="tflite")
    assert "converting without a cache" in caplog.text and p.predict(np.zeros((1, 28, 28), np.uint8)).shape == (1,)


def test_unwritable_outputs_are_one_line_errors(tmp_path, monkeypatch, capsys, mnist):
    import errno
    from pathlib import Path

    from digitnet import cli

    monkeypatch.setenv("DIGITNET_HOME", str(tmp_path / "home"))
    real_mkdir = Path.mkdir

    def read_only(self, *a, **k):  # the home is on a read-only file system (EROFS, not EACCES)
        if str(self).startswith(str(tmp_path / "home")):
            raise OSError(errno.EROFS, "Read-only file system", str(self))
        return real_mkdir(self, *a, **k)

    monkeypatch.setattr(Path, "mkdir", read_only)
    for argv in (["evaluate", "--backend", "tf"], ["train", "--dry-run", "--arch", "mlp"]):
        assert cli.main(argv) == 1, argv
        err = capsys.readouterr().err
        assert "Traceback" not in err and "digitnet: error: [Errno 30] Read-only file system" in err, err
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    assert cli.main(["train", "--dry-run", "--arch", "mlp", "--out", str(a_file)]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.startswith("digitnet: error:") and str(a_file) in err


# --------------------------------------------------------------------------------------- 8. stdin


def test_endless_stdin_is_refused_after_the_cap():
    t = time.perf_counter()
    with open("/dev/zero", "rb") as zero:
        proc = subprocess.run([*EXE, "predict", "-"], stdin=zero, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and "larger than 50 MB" in proc.stdout, proc.stdout + proc.stderr
    assert time.perf_counter() - t < 30


# ------------------------------------------------------------------------- 9. idle and slow connections


@pytest.fixture
def live_server(predictor):
    """The real app under uvicorn with digitnet's connection deadlines, set to 1 s for the test."""
    import uvicorn

    from digitnet.server.serving import deadline_protocol

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = create_app(predictor, limits=Limits(request_timeout_s=1.0))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           timeout_keep_alive=1, http=deadline_protocol(1.0)))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 10
    while not server.started and time.time() < deadline:
        time.sleep(0.05)
    yield port
    server.should_exit = True
    thread.join(10)


def closed_within(sock: socket.socket, seconds: float) -> tuple[bool, bytes]:
    sock.settimeout(seconds)
    got = b""
    try:
        while chunk := sock.recv(65536):
            got += chunk
        return True, got
    except TimeoutError:
        return False, got


def test_idle_slow_header_and_stalled_body_connections_are_closed(live_server):
    port = live_server
    idle = socket.create_connection(("127.0.0.1", port))
    assert closed_within(idle, 4)[0]  # sent nothing at all
    head = socket.create_connection(("127.0.0.1", port))
    head.sendall(b"POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # headers never finish
    assert closed_within(head, 4)[0]
    body = socket.create_connection(("127.0.0.1", port))
    body.sendall(b"POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                 b"Content-Length: 1000\r\n\r\n{\"pix")  # the body stalls
    closed, answer = closed_within(body, 4)
    assert closed and b" 408 " in answer.split(b"\r\n")[0]
    for s in (idle, head, body):
        s.close()


# ------------------------------------------------------------------------------ 10. uploads stay in memory


def test_multipart_uploads_over_1_mb_never_touch_the_disk(client, monkeypatch):
    import tempfile

    rolled = []
    monkeypatch.setattr(tempfile.SpooledTemporaryFile, "rollover", lambda self: rolled.append(1))
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 256, (800, 900, 3), dtype=np.uint8))
    data = png(noise)
    assert 1_500_000 < len(data) < 5_000_000
    r = client.post("/api/predict", files={"file": ("noise.png", data, "image/png")})
    assert r.status_code == 200 and rolled == []


# -------------------------------------------------------------------------------- 11. usage errors


@pytest.mark.parametrize("argv", [
    ["predict", "--top-k", "0", "x.png"], ["predict", "--top-k", "11", "x.png"],
    ["predict", "--min-confidence", "2", "x.png"], ["predict", "--min-confidence", "nan", "x.png"],
    ["predict", "--min-confidence", "-0.5", "x.png"], ["train", "--epochs", "0"], ["train", "--batch-size", "-5"],
    ["train", "--lr", "nan"], ["train", "--lr", "0"], ["serve", "--workers", "-1"], ["serve", "--workers", "0"],
    ["serve", "--port", "99999"], ["tutorial", "--batch-size", "0"],
])
def test_bad_option_values_are_usage_errors(argv, capsys):
    from digitnet import cli

    with pytest.raises(SystemExit) as e:
        cli.main(argv)
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.startswith("usage: digitnet") and f"argument {argv[1]}" in err


# ------------------------------------------------------------------------------ 12. lying checkpoints


@pytest.mark.parametrize("state, field", [({"version": 1}, "config"), (
    {"version": 1, "config": {}, "epochs_done": 1, "history": [], "finished": False, "files": []}, "files"),
    ({"version": 1, "config": {}, "epochs_done": "2", "history": [], "finished": False, "files": {}}, "epochs_done"),
])
def test_checkpoint_state_that_parses_but_lies(state, field, tmp_path):
    from digitnet.checkpoints import read_state

    (tmp_path / "state.json").write_text(json.dumps(state))
    with pytest.raises(CheckpointError, match=rf"state.json is corrupt: .*{field}"):
        read_state(tmp_path)


def test_run_config_that_parses_but_lies(tmp_path):
    from digitnet.presets import make_config
    from digitnet.training import load_run_config, run_config_path

    run_config_path(tmp_path).parent.mkdir(parents=True)
    for change, field in (({"epochs": "many"}, "epochs"), ({"lr": None}, "lr"), ({"colour": 1}, "colour"),
                          ({"augment": [1]}, "augment")):
        run_config_path(tmp_path).write_text(json.dumps({**make_config().to_json(), **change}))
        with pytest.raises(CheckpointError, match=rf"run.json is corrupt: .*{field}"):
            load_run_config(tmp_path)


# --------------------------------------------------------------------------------- 13. smaller items


def test_odd_files_say_what_they_are(tmp_path, predictor):
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    loop = tmp_path / "loop.png"
    loop.symlink_to(loop)
    for path, words in ((fifo, "is a FIFO"), ("/dev/zero", "is a character device"), (loop, "cannot read it"),
                        (tmp_path, "is a directory"), (tmp_path / "nope.png", "no such file")):
        with pytest.raises(ImageError, match=words):
            predictor.predict_image(path)


def test_a_corrupt_model_file_says_so(tmp_path):
    from digitnet.errors import ModelLoadError
    from digitnet.models.saving import load_model

    bad = tmp_path / "model.keras"
    bad.write_bytes(b"\x00" * 1000)
    with pytest.raises(ModelLoadError, match="not a .keras archive") as e:
        load_model(bad)
    assert "File not found" not in str(e.value)


def test_refusals_and_bugs_leave_a_log_line(predictor, seven, caplog):
    c = TestClient(create_app(predictor, limits=Limits(max_upload_bytes=1000)), raise_server_exceptions=False)
    with caplog.at_level("INFO", logger="digitnet.server"):
        c.post("/api/predict", content=b"x" * 2000, headers={"content-type": "application/json"})
    assert any(json.loads(r.message).get("status") == 413 for r in caplog.records if r.message.startswith("{"))

    class Buggy:
        info, path, backend, min_confidence = {}, None, "tf", 0.5

        def predict_image(self, *a, **k):
            return 1 // 0

    caplog.clear()
    c = TestClient(create_app(Buggy()), raise_server_exceptions=False)
    with caplog.at_level("INFO", logger="digitnet.server"):
        r = c.post("/api/predict", files={"file": ("s.png", png(seven), "image/png")})
    assert r.status_code == 500 and "internal error" in r.json()["error"]
    assert any(json.loads(r.message).get("status") == 500 for r in caplog.records if r.message.startswith("{"))


def test_unreadable_subfolders_are_reported(tmp_path, monkeypatch):
    from digitnet import cli

    (tmp_path / "ok").mkdir()
    (tmp_path / "secret").mkdir()
    png_path = tmp_path / "ok" / "a.png"
    png_path.write_bytes(b"x")
    real_scandir = os.scandir

    def scandir(path="."):
        if str(path).endswith("secret"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    files, unreadable = cli.expand_inputs([str(tmp_path)])
    assert files == [str(png_path)] and list(unreadable) == [str(tmp_path / "secret")]
    assert "Permission denied" in unreadable[str(tmp_path / "secret")]


@pytest.fixture
def tiny_idx(tmp_path):
    from digitnet.data import write_idx

    rng = np.random.default_rng(0)
    folder = tmp_path / "tiny"
    folder.mkdir()
    for name, n in (("train", 600), ("t10k", 100)):
        write_idx(folder / f"{name}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        write_idx(folder / f"{name}-labels-idx1-ubyte", rng.integers(0, 10, n).astype(np.uint8))
    return folder


def test_a_diverging_run_stops_and_ships_nothing(tiny_idx, tmp_path):
    from digitnet.errors import ConfigError, TrainingError
    from digitnet.presets import TrainConfig, make_config
    from digitnet.training import train

    with pytest.raises(ConfigError, match="lr must be finite"):
        TrainConfig(lr=float("nan")).validate()
    cfg = make_config("mlp", "fast", dataset=str(tiny_idx), lr=1e30, epochs=2, val_size=100)
    with pytest.raises(TrainingError, match="training diverged"):
        train(cfg, tmp_path / "run")
    assert not (tmp_path / "run" / "model.keras").exists()


def test_resume_refuses_when_member_checkpoints_were_deleted(tiny_idx, tmp_path):
    import shutil

    from digitnet.presets import make_config
    from digitnet.training import train

    out = tmp_path / "run"
    train(make_config("mlp", "fast", dataset=str(tiny_idx), epochs=1, val_size=100, dry_run=True), out)
    before = (out / "model.keras").read_bytes()
    shutil.rmtree(out / "checkpoint" / "member-0")
    proc = subprocess.run([*EXE, "train", "--resume", str(out)], capture_output=True, text=True)
    assert proc.returncode == 1 and "checkpoint of member 0" in proc.stderr and "is missing" in proc.stderr
    assert (out / "model.keras").read_bytes() == before  # nothing overwritten


def test_401_names_its_scheme_and_hosts_are_checked(predictor):
    c = TestClient(create_app(predictor, token="t"))
    r = c.get("/api/model")
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    guarded = TestClient(create_app(predictor, allowed_hosts=["digits.example"]), base_url="http://digits.example")
    assert guarded.get("/healthz").status_code == 200
    evil = guarded.get("/healthz", headers={"host": "evil.example"})
    assert evil.status_code == 400 and "not allowed" in evil.json()["error"]

    from digitnet.server.serving import default_allowed_hosts

    assert "localhost" in default_allowed_hosts("127.0.0.1") and default_allowed_hosts("0.0.0.0") == ["*"]
    assert default_allowed_hosts("192.0.2.7") == ["192.0.2.7"]


def test_batch_limit_message_names_the_real_limit(predictor, seven):
    c = TestClient(create_app(predictor, limits=Limits(max_batch=2)))
    files = [("file", (f"{i}.png", png(seven), "image/png")) for i in range(4)]
    r = c.post("/api/predict/batch", files=files)
    assert r.status_code == 413 and r.json()["error"] == "at most 2 images per batch"


def test_resume_of_an_ensemble_killed_in_its_first_member_goes_on(tiny_idx, tmp_path):
    from digitnet.presets import make_config
    from digitnet.training import train

    out = tmp_path / "run"
    cfg = make_config("mlp", "fast", dataset=str(tiny_idx), epochs=1, val_size=100, dry_run=True, ensemble=2)
    train(cfg, out)
    # As if killed during member 0: no member 1 yet, member 0 not finished, no model.keras.
    import shutil

    shutil.rmtree(out / "checkpoint" / "member-1")
    (out / "model.keras").unlink()
    state = json.loads((out / "checkpoint" / "member-0" / "state.json").read_text())
    (out / "checkpoint" / "member-0" / "state.json").write_text(json.dumps({**state, "finished": False}))
    metrics = train(cfg, out, resume=True)
    assert metrics["model"]["members"] == 2 and (out / "model.keras").is_file()


@pytest.mark.parametrize("cut", [True, False])
def test_a_member_cut_short_by_the_budget_is_left_out_when_validation_says_so(tiny_idx, tmp_path, monkeypatch, cut):
    import dataclasses

    from digitnet import training
    from digitnet.models.saving import load_model
    from digitnet.presets import make_config

    real_member, asked = training.train_member, []

    def last_one_cut(*args, **kw):  # member 1 as if the time budget had stopped it
        r = real_member(*args, **kw)
        return dataclasses.replace(r, stopped_early=cut and args[4] == 1)

    def keep_first(logits, y_val):
        asked.append((len(logits), logits[0].shape, len(y_val)))
        return 1

    monkeypatch.setattr(training, "train_member", last_one_cut)
    monkeypatch.setattr(training, "members_to_keep", keep_first)
    cfg = make_config("mlp", "fast", dataset=str(tiny_idx), epochs=1, val_size=100, dry_run=True, ensemble=2)
    metrics = training.train(cfg, tmp_path / "run")
    assert len(metrics["training"]["epochs"]) == 2 and metrics["training"]["stopped_by_time_budget"] is cut
    layers = load_model(tmp_path / "run" / "model.keras").layers
    members = [layer for layer in layers if layer.name.startswith("member")]
    if cut:
        assert asked == [(2, (100, 10), 100)]
        assert metrics["model"]["members"] == 1 and metrics["training"]["members_left_out"] == 1 and not members
    else:  # members that finished are never in doubt: no validation pass, both averaged
        assert asked == [] and metrics["model"]["members"] == 2 and metrics["training"]["members_left_out"] == 0
        assert len(members) == 2
