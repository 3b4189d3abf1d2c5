"""`digitnet train` / `evaluate` as real processes: dry run, kill -9 and resume, corrupt checkpoints,
MirroredStrategy on two logical CPUs, two multi-worker processes, reports, and the fast preset's accuracy gate."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from digitnet.data import write_idx

pytestmark = pytest.mark.slow
EXE = [sys.executable, "-m", "digitnet"]


def run(*args, timeout=900, **kw):
    return subprocess.run([*EXE, *args], capture_output=True, text=True, timeout=timeout, **kw)


@pytest.fixture(scope="module")
def small_mnist(mnist, tmp_path_factory):
    """A folder of the four IDX files holding the first 6000 / 1000 real MNIST digits."""
    (x_train, y_train), (x_test, y_test) = mnist
    folder = tmp_path_factory.mktemp("small-mnist")
    for name, arr in (("train-images-idx3-ubyte", x_train[:6000]), ("train-labels-idx1-ubyte", y_train[:6000]),
                      ("t10k-images-idx3-ubyte", x_test[:1000]), ("t10k-labels-idx1-ubyte", y_test[:1000])):
        write_idx(folder / name, arr)
    return folder


def assert_png(path, min_size=(200, 200)):
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", path
    with Image.open(path) as im:
        im.verify()
    with Image.open(path) as im:
        assert im.size[0] >= min_size[0] and im.size[1] >= min_size[1]


def test_dry_run_end_to_end(mnist, tmp_path):
    out = tmp_path / "run"
    proc = run("train", "--dry-run", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "test accuracy: " in proc.stdout and f"model: {out / 'model.keras'}" in proc.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0 <= metrics["test"]["accuracy"] <= 1 and metrics["test"]["n"] == 512
    assert metrics["training"]["config"]["dry_run"] is True
    # Where the time went: the run's phases add up to at most its wall time, and every epoch says its share.
    phases = metrics["training"]["phases"]
    assert set(phases) == {"data", "pools", "members", "calibration", "test", "report"}
    wall = metrics["training"]["wall_seconds"]  # 2 decimals; the phases have 3
    assert all(v >= 0 for v in phases.values()) and 0.5 * wall < sum(phases.values()) <= wall + 0.01
    for row in metrics["training"]["history"][0]:
        assert 0 < row["first_step_seconds"] <= row["seconds"] and row["validation_seconds"] > 0
        assert row["checkpoint_seconds"] > 0
    for name in ("model.keras", "metrics.json"):
        assert (out / name).is_file()
    for name in ("learning_curves.png", "confusion_matrix.png", "misclassified.png"):
        assert_png(out / name)


def test_kill_9_then_resume_matches_uninterrupted_run(small_mnist, tmp_path):
    common = ["train", "--dataset", str(small_mnist), "--epochs", "6", "--seed", "3", "--deterministic"]
    ref = run(*common, "--out", str(tmp_path / "ref"))
    assert ref.returncode == 0, ref.stderr

    out = tmp_path / "killed"
    proc = subprocess.Popen([*EXE, *common, "--out", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = out / "checkpoint" / "member-0" / "state.json"
    deadline = time.time() + 300
    while time.time() < deadline:
        if state.exists() and json.loads(state.read_text() or "{}").get("epochs_done", 0) >= 2:
            break
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = json.loads(state.read_text())["epochs_done"]
    assert 2 <= done < 6, f"the kill came after epoch {done}: nothing left to resume"
    assert not (out / "model.keras").exists()

    resumed = run("train", "--resume", str(out))
    assert resumed.returncode == 0, resumed.stderr
    a, b = json.loads((tmp_path / "ref" / "metrics.json").read_text()), json.loads((out / "metrics.json").read_text())
    assert b["training"]["epochs"] == [6]
    assert a["test"]["accuracy"] == b["test"]["accuracy"]
    import keras

    wa = keras.models.load_model(tmp_path / "ref" / "model.keras", compile=False).get_weights()
    wb = keras.models.load_model(out / "model.keras", compile=False).get_weights()
    for x, y in zip(wa, wb):
        np.testing.assert_array_equal(x, y)  # --deterministic: bit-identical weights


def test_corrupt_checkpoint_is_detected(small_mnist, tmp_path):
    out = tmp_path / "run"
    assert run("train", "--dataset", str(small_mnist), "--epochs", "2", "--dry-run", "--out", str(out)).returncode == 0
    ckpt = out / "checkpoint" / "member-0"
    epoch_file = next(ckpt.glob("epoch-*.keras"))
    epoch_file.write_bytes(epoch_file.read_bytes()[:1000])  # truncated
    proc = run("train", "--resume", str(out))
    assert proc.returncode == 1
    assert "corrupt or truncated (sha256 mismatch)" in proc.stderr and epoch_file.name in proc.stderr
    (ckpt / "state.json").write_text("{not json")
    proc = run("train", "--resume", str(out))
    assert proc.returncode == 1 and "state.json is corrupt" in proc.stderr
    proc = run("train", "--resume", str(tmp_path / "nothing-here"))
    assert proc.returncode == 1 and "holds no run to resume" in proc.stderr


def test_mirrored_strategy_on_two_logical_cpus(small_mnist, tmp_path):
    out = tmp_path / "run"
    proc = run("train", "--dataset", str(small_mnist), "--epochs", "1", "--distribute", "mirrored",
               "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["training"]["replicas"] == 2
    assert metrics["test"]["accuracy"] > 0.5  # it learned something across both replicas


def _free_ports(n: int) -> list[int]:
    import socket

    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _workers(args: list[str], log_dir, tag: str) -> list[subprocess.Popen]:
    """Two `digitnet train` workers of one MultiWorkerMirroredStrategy cluster on localhost, each writing
    its output to ``log_dir/<tag>-worker-<i>.log``."""
    cluster = {"worker": [f"localhost:{p}" for p in _free_ports(2)]}
    procs = []
    for i in range(2):
        env = {**os.environ, "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})}
        with open(log_dir / f"{tag}-worker-{i}.log", "w") as out:  # the child keeps its own copy of the file
            procs.append(subprocess.Popen([*EXE, *args], env=env, stdout=out, stderr=subprocess.STDOUT, text=True))
    return procs


def _wait(proc: subprocess.Popen, seconds: float) -> int | None:
    try:
        return proc.wait(seconds)
    except subprocess.TimeoutExpired:
        return None


def test_multiworker_on_two_local_processes_stays_in_sync_and_resumes_after_a_kill(small_mnist, tmp_path):
    """Two workers: the chief writes the model directory, the replicas' weights agree, and after a worker is
    killed mid-run (its peer hangs in the collective ops, and is killed too) `--resume` on both finishes it."""
    from digitnet.inference import Predictor

    out = tmp_path / "run"
    procs = _workers(["train", "--dataset", str(small_mnist), "--epochs", "4", "--distribute", "multiworker",
                      "--out", str(out)], tmp_path, "first")
    try:
        state = out / "checkpoint" / "member-0" / "state.json"
        deadline = time.time() + 240
        while time.time() < deadline and not (state.exists() and json.loads(state.read_text())["epochs_done"] >= 1):
            assert all(p.poll() is None for p in procs), [p.returncode for p in procs]
            time.sleep(0.2)
        assert json.loads(state.read_text())["epochs_done"] < 4, "the run finished before the kill"
        procs[1].kill()  # the non-chief worker dies mid-run
        if _wait(procs[0], 20) is None:  # its peer waits in the collective ops: kill it as an operator would
            procs[0].kill()
        procs[0].wait(10)
        done = json.loads(state.read_text())["epochs_done"]
        assert 1 <= done < 4 and not (out / "model.keras").exists()

        procs = _workers(["train", "--resume", str(out)], tmp_path, "resumed")
        codes = [_wait(p, 300) for p in procs]
        assert codes == [0, 0], [(f.name, f.read_text()[-2000:]) for f in tmp_path.glob("*.log")]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    metrics = json.loads((out / "metrics.json").read_text())
    cluster = metrics["training"]["cluster"]
    assert cluster["workers"] == 2 and cluster["chief"] and metrics["training"]["replicas"] == 2
    assert [row["epoch"] for row in metrics["training"]["history"][0]] == [1, 2, 3, 4]  # none lost, none twice
    worker_1 = (tmp_path / "resumed-worker-1.log").read_text()
    assert f"trainable weights sha256 {cluster['weights_sha256']}" in worker_1  # the replicas stayed in sync
    assert not list(out.glob(".worker-*"))  # the non-chief's scratch copy is gone
    predictor = Predictor.load(out)  # the chief's model loads and has learned
    assert metrics["test"]["accuracy"] > 0.8 and predictor.predict(np.zeros((1, 28, 28), np.uint8)).shape == (1,)


def test_multiworker_needs_tf_config(small_mnist, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    proc = run("train", "--dataset", str(small_mnist), "--epochs", "1", "--distribute", "multiworker", "--out",
               str(tmp_path / "run"), env=env)
    assert proc.returncode == 1 and "reads the cluster from $TF_CONFIG, which is not set" in proc.stderr
    proc = run("train", "--dataset", str(small_mnist), "--epochs", "1", "--distribute", "multiworker", "--out",
               str(tmp_path / "run"), env={**env, "TF_CONFIG": "{}"})
    assert proc.returncode == 1 and "$TF_CONFIG must be JSON with cluster.worker" in proc.stderr
    proc = run("train", "--preset", "best", "--distribute", "multiworker", env=env)
    assert proc.returncode == 1 and "time budget cannot be used with --distribute multiworker" in proc.stderr


def test_time_budget_stops_and_keeps_the_best(small_mnist, tmp_path):
    out = tmp_path / "run"
    proc = run("train", "--dataset", str(small_mnist), "--epochs", "50", "--time-budget", "12", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["training"]["stopped_by_time_budget"] is True
    assert 1 <= metrics["training"]["epochs"][0] < 50
    assert metrics["training"]["seconds"] < 30


def test_fast_preset_regression_gate_and_evaluate(mnist, tmp_path):
    out = tmp_path / "fast"
    proc = run("train", "--preset", "fast", "--seed", "0", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    print(f"fast preset, seed 0: test accuracy {metrics['test']['accuracy']:.4f}")
    assert metrics["test"]["accuracy"] >= 0.988
    per_class = metrics["test"]["per_class"]
    assert set(per_class) == {str(i) for i in range(10)} and all(c["f1"] > 0.95 for c in per_class.values())
    assert np.array(metrics["test"]["confusion_matrix"]).sum() == 10000
    assert len(metrics["dataset"]["sha256"]) == 64 and metrics["versions"]["tensorflow"] == "2.21.0"
    cal = metrics["calibration"]  # the temperature, fitted on validation, brings the test ECE down
    print(f"fast preset: temperature {cal['temperature']:.3f}, test ECE {cal['test_ece_before']:.4f} -> "
          f"{metrics['test']['ece']:.4f}")
    assert metrics["test"]["ece"] < cal["test_ece_before"] and metrics["test"]["ece"] <= 0.02
    assert_png(out / "reliability.png")

    before = (out / "metrics.json").read_bytes()
    proc = run("evaluate", "--model", str(out), "--report-dir", str(tmp_path / "report"))
    assert proc.returncode == 0, proc.stderr
    assert f"accuracy: {metrics['test']['accuracy'] * 100:.2f}%" in proc.stdout
    assert (out / "metrics.json").read_bytes() == before  # never the model's own report
    assert json.loads((tmp_path / "report" / "metrics.json").read_text())["test"]["accuracy"] == \
        metrics["test"]["accuracy"]
    assert_png(tmp_path / "report" / "confusion_matrix.png")


def test_image_folder_fine_tuning_from_a_saved_model(mnist, tmp_path):
    """A folder of class subfolders of real-looking images, read through the preprocessing, fine-tuned
    from the shipped model."""
    sys.path.insert(0, os.path.dirname(__file__))
    from digitnet.inference import shipped_model_path
    from renders import coloured, inverted, scaled

    x, y = mnist[1]
    rng = np.random.default_rng(0)
    folder = tmp_path / "mine"
    for i in range(400):
        d = folder / str(int(y[i]))
        d.mkdir(parents=True, exist_ok=True)
        (inverted, scaled, coloured)[i % 3](x[i], rng).save(d / f"{i}.png")
    (folder / "3" / "notes.txt").write_text("not an image")  # ignored
    out = tmp_path / "tuned"
    proc = run("train", "--dataset", str(folder), "--init-from", str(shipped_model_path()), "--epochs", "1",
               "--lr", "0.0005", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["dataset"]["name"] == str(folder) and abs(metrics["dataset"]["test"] - 80) <= 5  # 20% per class
    assert metrics["test"]["accuracy"] >= 0.95  # starts from a 99.6% model; a few steps must not wreck it


def test_fashion_mnist_dry_run(tmp_path):
    out = tmp_path / "fashion"
    proc = run("train", "--dataset", "fashion-mnist", "--dry-run", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["dataset"]["name"] == "fashion-mnist" and metrics["dataset"]["classes"][9] == "Ankle boot"
    assert set(metrics["test"]["per_class"]) == set(metrics["dataset"]["classes"])
