"""The command line as a user runs it: real processes."""

import os
import subprocess
import sys
import time

import pytest

import digitnet

EXE = [sys.executable, "-m", "digitnet"]


def run(*args, env=None, timeout=600):
    return subprocess.run([*EXE, *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def test_help_and_version_are_fast_and_do_not_import_tensorflow():
    code = ("import sys, time; t=time.perf_counter(); from digitnet.cli import main\n"
            "try: main(['--help'])\nexcept SystemExit: pass\n"
            "print('TF' if 'tensorflow' in sys.modules else 'noTF', time.perf_counter()-t)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout
    flag, seconds = out.split()[-2:]
    assert flag == "noTF" and float(seconds) < 0.5
    start = time.perf_counter()
    proc = run("--version")
    assert proc.returncode == 0 and proc.stdout.strip() == f"digitnet {digitnet.__version__}"
    assert time.perf_counter() - start < 2.0  # including the interpreter's own start-up


def test_no_command_prints_help_and_exits_2():
    proc = run()
    assert proc.returncode == 2 and "tutorial" in proc.stdout and "data" in proc.stdout


def test_data_fetch_with_a_bad_data_dir_is_a_clear_error(tmp_path):
    proc = run("data", "fetch", "--data-dir", str(tmp_path))
    assert proc.returncode == 1
    assert proc.stderr.startswith("digitnet: error: ") and "nor mnist.npz" in proc.stderr


def test_unknown_command_is_a_usage_error():
    proc = run("frobnicate")
    assert proc.returncode == 2 and "invalid choice" in proc.stderr


def test_entry_returns_mains_status_and_skips_the_final_collection_only_after_tensorflow(monkeypatch):
    import gc
    import types

    from digitnet import cli

    frozen = []
    monkeypatch.setattr(cli, "main", lambda: 3)
    monkeypatch.setattr(gc, "freeze", lambda: frozen.append(True))
    monkeypatch.setitem(sys.modules, "tensorflow", types.ModuleType("tensorflow"))
    assert cli.entry() == 3 and frozen == [True]
    monkeypatch.delitem(sys.modules, "tensorflow")  # `digitnet --help`: an ordinary exit
    assert cli.entry() == 3 and frozen == [True]


@pytest.mark.slow
def test_data_fetch_is_verified_and_second_run_is_instant(mnist):
    proc = run("data", "fetch")
    assert proc.returncode == 0, proc.stderr
    assert "mnist: verified (sha256) in" in proc.stdout and "train-images-idx3-ubyte" in proc.stdout
    start = time.perf_counter()
    assert run("-q", "data", "fetch").returncode == 0
    assert time.perf_counter() - start < 3.0


@pytest.mark.slow
def test_tutorial_command_stdout_is_clean(mnist):
    proc = run("tutorial", "--epochs", "2")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "X_train (56000, 784), X_test (14000, 784), y_train (56000, 10), y_test (14000, 10)"
    assert [ln for ln in lines if ln.startswith("Cost after epoch")][-1].startswith("Cost after epoch 2: ")
    assert "Predicted label: 8" in lines and "Actual label: 8" in lines
    assert not any("oneDNN" in ln or "absl" in ln for ln in lines)  # TensorFlow's chatter stays off stdout
