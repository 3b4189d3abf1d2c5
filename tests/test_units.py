"""Fast unit tests, on small data they make themselves, for pieces the end-to-end tests only reach slowly."""

import asyncio
import dataclasses
import json
import os
import threading
import time

import numpy as np
import pytest

from digitnet.arrays import check_pixels
from digitnet.checkpoints import CheckpointState, new_state, read_state, save_epoch, write_state
from digitnet.errors import CheckpointError, DigitnetError, ImageError, InputError, ModelNotFoundError
from digitnet.evaluation import calibrate
from digitnet.fileio import atomic_replace_dir, atomic_write, atomic_write_json, sha256_file
from digitnet.presets import NO_AUGMENT, make_config

# ------------------------------------------------------------------------------------ array validator


def test_check_pixels_scales_and_refuses_with_the_callers_error():
    np.testing.assert_allclose(check_pixels(np.array([[0, 255]], np.uint8)), [[0.0, 1.0]])
    np.testing.assert_allclose(check_pixels(np.array([65535], np.uint16)), [1.0])
    assert check_pixels(np.array([True, False])).dtype == np.float32
    with pytest.raises(InputError, match=r"float images must lie in \[0, 1\].*got \[0, 2\]"):
        check_pixels(np.array([0.0, 2.0]))
    with pytest.raises(ImageError, match="arrays contain NaN"):
        check_pixels(np.array([np.nan]), error=ImageError, what="arrays")
    with pytest.raises(InputError, match="numeric array, got dtype <U1"):
        check_pixels(np.array(["a"]))


def test_predictor_and_preprocessing_share_the_validator():
    from digitnet import preprocessing
    from digitnet.inference import Predictor

    with pytest.raises(InputError, match=r"must lie in \[0, 1\]"):
        Predictor.to_mnist_batch(np.full((28, 28), 3.0))
    with pytest.raises(ImageError, match=r"must lie in \[0, 1\]"):
        preprocessing.decode(np.full((10, 10), 3.0))
    assert Predictor.to_mnist_batch(np.zeros(784, np.uint8)).shape == (1, 28, 28)


# -------------------------------------------------------------------------------------------- fileio


def test_atomic_write_leaves_the_old_file_when_the_writer_fails(tmp_path):
    path = tmp_path / "f.json"
    atomic_write_json(path, {"a": 1})

    def broken(tmp):
        tmp.write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(path, broken)
    assert json.loads(path.read_text()) == {"a": 1} and os.listdir(tmp_path) == ["f.json"]  # no temp left over


def test_atomic_replace_dir_swaps_whole_folders(tmp_path):
    target = tmp_path / "out"
    atomic_replace_dir(target, lambda d: (d.mkdir(), (d / "a").write_text("1")))
    atomic_replace_dir(target, lambda d: (d.mkdir(), (d / "b").write_text("2")))
    assert sorted(p.name for p in target.iterdir()) == ["b"] and sorted(os.listdir(tmp_path)) == ["out"]
    assert sha256_file(target / "b") == "d4735e3a265e16eee03f59718b9b5d03019c07d8b6c51f90da3a666eec13ab35"


# --------------------------------------------------------------------------------------- checkpoints


class FakeModel:
    """Stands in for a Keras model: save() writes some bytes."""

    def __init__(self, payload: bytes):
        self.payload = payload

    def save(self, path):
        path.write_bytes(self.payload)


def test_checkpoint_state_write_read_and_corruption(tmp_path):
    state = new_state(make_config("cnn", "fast"), member=1)
    for epoch, acc in ((1, 0.9), (2, 0.95), (3, 0.94)):
        state.record({"epoch": epoch, "loss": 0.1, "accuracy": acc, "val_loss": 0.1, "val_accuracy": acc,
                      "seconds": 1.5})
        save_epoch(FakeModel(f"epoch {epoch}".encode()), tmp_path, state)
    assert state.best_epoch == 2 and state.epochs_done == 3 and state.train_seconds == 4.5
    assert sorted(p.name for p in tmp_path.glob("epoch-*")) == ["epoch-0002.keras", "epoch-0003.keras"]
    again = read_state(tmp_path)
    assert isinstance(again, CheckpointState) and again.to_json() == json.loads(json.dumps(state.to_json()))
    (tmp_path / "epoch-0002.keras").write_bytes(b"tampered")
    with pytest.raises(CheckpointError, match="epoch-0002.keras is corrupt or truncated"):
        read_state(tmp_path)
    write_state(tmp_path, CheckpointState(config={}, version=99))
    with pytest.raises(CheckpointError, match="not a digitnet checkpoint state"):
        read_state(tmp_path)
    with pytest.raises(CheckpointError, match="missing"):
        read_state(tmp_path / "nowhere")


# ------------------------------------------------------------------------------------------ training


def test_validation_split_is_fixed_and_disjoint():
    from digitnet.training import split_validation

    x, y = np.arange(100).reshape(100, 1), np.arange(100) % 10
    (xt, yt), (xv, yv) = split_validation(x, y, 20)
    assert len(xv) == 20 and len(xt) == 80 and not set(xt[:, 0]) & set(xv[:, 0])
    (_, _), (xv2, _) = split_validation(x, y, 20)
    np.testing.assert_array_equal(xv, xv2)  # never depends on the training seed or on a global RNG
    with pytest.raises(ValueError, match="val_size must be between 1 and 99"):
        split_validation(x, y, 100)


def test_mnist_is_split_by_writer_half_employees_half_students(monkeypatch):
    import hashlib

    from digitnet.data import mnist

    # 60,000 made-up digits: 300 employees (IDs 0-299) and 300 students (2100-2399), 100 digits each.
    rng = np.random.default_rng(0)
    writers = rng.permutation(np.repeat(np.r_[0:300, 2100:2400], 100)).astype(np.uint16)
    y = rng.integers(0, 10, 60000).astype(np.uint8)
    x = np.arange(60000)
    monkeypatch.setattr(mnist, "mnist_writers", lambda: writers)
    monkeypatch.setattr(mnist, "MNIST_TRAIN_LABELS_SHA256", hashlib.sha256(y.tobytes()).hexdigest())
    (xt, yt), (xv, yv) = mnist.split_validation(x, y, 5000)
    assert len(xt) + len(xv) == 60000 and not set(xt) & set(xv)
    held, kept = set(writers[xv]), set(writers[xt])
    assert not held & kept  # whole writers: none has digits on both sides
    employees = (writers[xv] < mnist.STUDENTS).sum()
    assert employees == len(xv) - employees == 2500  # 25 writers of each group (their 100 digits each)
    np.testing.assert_array_equal(mnist.split_validation(x, y, 5000)[1][0], xv)  # fixed
    assert len(mnist.split_validation(x, y[::-1].copy(), 5000)[1][0]) == 5000  # other labels: a plain permutation
    with pytest.raises(ValueError, match="nearly all of MNIST's employees"):
        mnist.split_validation(x, y, 59950)


def test_training_pools_are_cached_by_what_they_depend_on(tmp_path, monkeypatch, caplog):
    from digitnet.data import captures, negatives
    from digitnet.training import make_pools

    monkeypatch.setenv("DIGITNET_HOME", str(tmp_path))
    rng = np.random.default_rng(0)
    train = (rng.integers(0, 256, (200, 28, 28), dtype=np.uint8), (np.arange(200) % 10).astype(np.uint8))
    cfg = make_config("cnn", "fast", dry_run=True, seed=1)
    first = make_pools(cfg, train)
    files = list((tmp_path / "cache" / "pools").glob("*.npz"))
    assert len(files) == 1 and first.negatives.shape == (64, 28, 28) and first.captures.dtype == np.uint8

    def generated(*args, **kw):
        raise AssertionError("generated again instead of read from the cache")

    with monkeypatch.context() as m:
        m.setattr(negatives, "training_negatives", generated)
        m.setattr(captures, "training_captures", generated)
        again = make_pools(cfg, train)
    for a, b in zip(vars(first).values(), vars(again).values()):
        np.testing.assert_array_equal(a, b)
    other = make_pools(make_config("cnn", "fast", dry_run=True, seed=2), train)  # another seed: other pools
    assert not np.array_equal(other.negatives, first.negatives)
    assert len(list(files[0].parent.glob("*.npz"))) == 2

    files[0].write_bytes(files[0].read_bytes()[:500])  # truncated: generated again, the same
    for a, b in zip(vars(first).values(), vars(make_pools(cfg, train)).values()):
        np.testing.assert_array_equal(a, b)
    files[0].unlink()

    def read_only(path, write):
        raise OSError(30, "Read-only file system", str(path))

    from digitnet import training

    monkeypatch.setattr(training, "atomic_write", read_only)  # a read-only cache: the run goes on, with a warning
    with caplog.at_level("WARNING"):
        np.testing.assert_array_equal(make_pools(cfg, train).negatives, first.negatives)
    assert "could not cache the training pools" in caplog.text and not files[0].exists()


def test_epoch_dataset_is_a_function_of_seed_and_epoch():
    import tensorflow as tf

    from digitnet.training import Pools, epoch_dataset

    rng = np.random.default_rng(0)
    x = tf.constant(rng.integers(0, 256, (40, 28, 28), dtype=np.uint8))
    y = tf.constant(rng.integers(0, 10, 40, dtype=np.uint8))
    cfg = make_config("cnn", "default", batch_size=16, seed=3)

    pools = Pools(negatives=tf.constant(np.full((5, 28, 28), 7, np.uint8)),
                  captures=tf.constant(np.full((3, 28, 28), 9, np.uint8)), capture_labels=tf.constant([4, 4, 4]))

    def batches(cfg, epoch):
        return [(a.numpy(), b.numpy()) for a, b in epoch_dataset(x, y, cfg, epoch, pools)]

    first, again = batches(cfg, 0), batches(cfg, 0)
    assert len(first) == 2 and first[0][0].shape == (16, 28, 28) and first[0][1].shape == (16, 11)
    k = round(cfg.negatives * 16)  # the last k images of each batch are non-digits: label all zeros
    assert k == 2 and (first[0][1][-k:] == 0).all() and (first[0][1][:-k, 10] == 1).all()
    assert (first[0][1][:-k, :10].sum(1) == 1).all()
    captures = first[0][1][-k - round(cfg.captures * 16) : -k]  # before them, the captures: all labelled 4
    assert len(captures) == 2 and (captures[:, 4] == 1).all()
    for (a, b), (c, d) in zip(first, again):
        np.testing.assert_array_equal(a, c)  # augmentation included
        np.testing.assert_array_equal(b, d)
    assert not np.array_equal(first[0][0], batches(cfg, 1)[0][0])
    assert not np.array_equal(first[0][0], batches(make_config("cnn", "default", batch_size=16, seed=4), 0)[0][0])

    # The last clean_epochs epochs are the same batches, not augmented; the epochs before them are augmented.
    clean = dataclasses.replace(cfg, epochs=3, clean_epochs=1)
    plain = dataclasses.replace(clean, augment=NO_AUGMENT)
    for (a, b), (c, d) in zip(batches(clean, 2), batches(plain, 2), strict=True):
        np.testing.assert_array_equal(a, c)
        np.testing.assert_array_equal(b, d)
    assert not np.array_equal(batches(clean, 1)[0][0], batches(plain, 1)[0][0])


def test_augmentation_kernel_samples_as_the_gather_sampler_and_shifts_as_asked():
    import tensorflow as tf

    from digitnet import augment
    from digitnet.presets import Augment

    rng = np.random.default_rng(1)
    images = tf.constant(rng.random((16, 28, 28)).astype(np.float32))
    seed = tf.constant([3, 4])
    # The affine presets go through one ImageProjectiveTransformV3 kernel; an elastic strength of ~0 takes the
    # four-gather sampler with the same draws and the same affine map, so the two must agree.
    fused = augment.augment_batch(images, seed, Augment()).numpy()
    gathered = augment.augment_batch(images, seed, Augment(elastic=1e-7)).numpy()
    assert fused.shape == (16, 28, 28) and not np.allclose(fused, images.numpy(), atol=1e-3)
    np.testing.assert_allclose(fused, gathered, atol=1e-4)

    # A pure shift, checked against NumPy: each image moves by its draw times 2 pixels, sampled bilinearly,
    # zero outside.
    only_shift = Augment(rotate=0, zoom=0, shift=2.0, shear=0)
    u = tf.random.stateless_uniform([16, 5], seed=seed, minval=-1.0, maxval=1.0).numpy()
    out = augment.augment_batch(images, seed, only_shift).numpy()

    def at(image, yi, xi):  # image[yi, xi], 0 outside
        inside = (yi >= 0) & (yi < 28) & (xi >= 0) & (xi < 28)
        return np.where(inside, image[np.clip(yi, 0, 27), np.clip(xi, 0, 27)], 0.0)

    for k, image in enumerate(images.numpy()):
        tx, ty = u[k, 2] * 2, u[k, 3] * 2  # the output at (x, y) reads the input at (x - tx, y - ty)
        xs, ys = np.meshgrid(np.arange(28) - tx, np.arange(28) - ty)
        x0, y0 = np.floor(xs).astype(int), np.floor(ys).astype(int)
        wx, wy = xs - x0, ys - y0
        want = ((1 - wy) * (1 - wx) * at(image, y0, x0) + (1 - wy) * wx * at(image, y0, x0 + 1)
                + wy * (1 - wx) * at(image, y0 + 1, x0) + wy * wx * at(image, y0 + 1, x0 + 1))
        np.testing.assert_allclose(out[k], want, atol=1e-5)


# --------------------------------------------------------------------------------------- calibration


def test_calibrate_flags_at_most_one_percent_of_correct_answers():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, 1000)
    conf = np.where(np.arange(1000) < 900, rng.uniform(0.6, 1.0, 1000), rng.uniform(0.2, 0.5, 1000))
    probs = np.full((1000, 10), 0.0)
    pred = np.where(np.arange(1000) < 900, labels, (labels + 1) % 10)  # the last 100 are wrong, and unsure
    probs[np.arange(1000), pred] = conf
    c = calibrate(probs, labels)
    assert c["flagged_correct"] <= 0.01 and c["flagged_errors"] == 1.0 and 0.5 <= c["min_confidence"] <= 0.61


# ------------------------------------------------------------------------------------- server pieces


def test_gate_queues_up_to_its_limit_then_answers_503():
    from digitnet.server.deps import ApiError, Gate

    async def scenario():
        gate = Gate(workers=1, max_queue=1)
        release = asyncio.Event()
        loop = asyncio.get_running_loop()

        def work(x):
            asyncio.run_coroutine_threadsafe(release.wait(), loop).result(5)
            return x * 2

        running = asyncio.create_task(gate.run(work, 1, deadline=time.monotonic() + 5))
        await asyncio.sleep(0.05)
        waiting = asyncio.create_task(gate.run(work, 2, deadline=time.monotonic() + 5))
        await asyncio.sleep(0.05)
        with pytest.raises(ApiError) as busy:
            await gate.run(work, 3, deadline=time.monotonic() + 5)
        release.set()
        return busy.value, await running, await waiting, gate.waiting

    busy, a, b, waiting = asyncio.run(scenario())
    assert (busy.status, busy.headers) == (503, {"Retry-After": "1"}) and (a, b, waiting) == (2, 4, 0)


def test_a_timed_out_prediction_keeps_its_slot_until_its_thread_stops():
    from digitnet.server.deps import ApiError, Gate

    stop, running, peak = threading.Event(), [0], [0]
    lock = threading.Lock()

    def work():
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        stop.wait(0.6)  # "cooperative": the real work checks its deadline between stages
        with lock:
            running[0] -= 1

    async def scenario():
        gate = Gate(workers=1, max_queue=8)
        t0 = time.monotonic()
        with pytest.raises(ApiError) as first:
            await gate.run(work, deadline=t0 + 0.2)
        answered = time.monotonic() - t0
        second = await gate.run(lambda: running[0], deadline=time.monotonic() + 5)  # waits for the slot
        return first.value.status, answered, second, time.monotonic() - t0

    status, answered, running_when_second_ran, total = asyncio.run(scenario())
    assert status == 504 and answered < 0.4  # the client hears at the deadline...
    assert running_when_second_ran == 0 and peak[0] == 1 and total >= 0.6  # ...but the slot waits for the thread


def test_body_limit_counts_bytes_received_without_a_length_header():
    from digitnet.server.middleware import BodyLimit

    async def app(scope, receive, send):  # reads the whole body, then answers 200
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    async def call(chunks, headers=()):
        sent, queue = [], [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
                           for i, c in enumerate(chunks)]

        async def receive():
            return queue.pop(0)

        async def send(message):
            sent.append(message)

        await BodyLimit(app, max_bytes=100, timeout_s=5)({"type": "http", "headers": list(headers)}, receive, send)
        return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])

    assert asyncio.run(call([b"x" * 60, b"x" * 30])) == (200, b"ok")
    status, body = asyncio.run(call([b"x" * 60, b"x" * 60]))  # chunked: no content-length to trust
    assert status == 413 and json.loads(body) == {"error": "request body over the 100-byte limit"}
    assert asyncio.run(call([b""], [(b"content-length", b"101")]))[0] == 413


# -------------------------------------------------------------------------------------- the CLI's exits


def test_cli_exit_codes_tell_bad_input_from_bugs(monkeypatch, capsys, tmp_path):
    from digitnet import cli

    assert cli.main(["predict", "--model", str(tmp_path / "nope"), "x.png"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("digitnet: error: no model at") and "Traceback" not in err
    assert issubclass(ModelNotFoundError, FileNotFoundError) and issubclass(ModelNotFoundError, DigitnetError)

    def bug(args):
        return 1 // 0

    monkeypatch.setattr(cli, "cmd_export", bug)
    assert cli.main(["export", "--format", "onnx", "--out", str(tmp_path)]) == cli.EX_SOFTWARE == 70
    err = capsys.readouterr().err
    assert "Traceback" in err and "ZeroDivisionError" in err and "this is a bug in digitnet" in err
    with pytest.raises(SystemExit) as usage:
        cli.main(["train", "--preset", "huge"])
    assert usage.value.code == 2


# --------------------------------------------------------------------------------------- temperature


def test_fit_temperature_recovers_a_known_temperature_and_ece_sees_it():
    from digitnet.evaluation import ece, fit_temperature, softmax

    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, (4000, 10))
    truth = softmax(logits)  # the labels really are drawn from these probabilities: calibrated at T = 1
    labels = np.array([rng.choice(10, p=p) for p in truth])
    assert ece(truth, labels) < 0.03
    overconfident = logits * 2.5  # the same model, 2.5x too sure of itself
    assert ece(softmax(overconfident), labels) > 0.1
    t = fit_temperature(overconfident, labels)
    assert 2.2 < t < 2.8
    assert ece(softmax(overconfident, t), labels) < 0.03
    np.testing.assert_array_equal(softmax(overconfident, t).argmax(1), overconfident.argmax(1))  # same answers


def test_with_temperature_divides_the_logits_and_keeps_the_answers():
    from digitnet.evaluation import softmax
    from digitnet.models import zoo

    model = zoo.cnn(width=8, seed=3)
    x = np.random.default_rng(1).uniform(0, 1, (16, 28, 28)).astype(np.float32)
    hot = zoo.with_temperature(model, 0.25)
    assert zoo.temperature_of(model) == 1.0 and zoo.temperature_of(hot) == pytest.approx(0.25)
    logits = np.asarray(zoo.logits_model(hot)(x, training=False))
    np.testing.assert_allclose(np.asarray(hot(x, training=False)["probabilities"]), softmax(logits, 0.25), atol=1e-5)
    np.testing.assert_array_equal(np.asarray(hot(x)["probabilities"]).argmax(1),
                                  np.asarray(model(x)["probabilities"]).argmax(1))
    # The digit score has no temperature: the copy scores exactly as the original.
    np.testing.assert_array_equal(np.asarray(hot(x)["digit_score"]), np.asarray(model(x)["digit_score"]))


def test_digit_score_threshold_rejects_at_most_the_share_asked():
    from digitnet.evaluation import digit_score_threshold

    scores = np.random.default_rng(0).uniform(0, 1, 5000)
    t = digit_score_threshold(scores, 0.003)
    assert (scores < t["min_digit_score"]).mean() <= 0.003 == pytest.approx(t["validation_false_rejection"], abs=3e-4)
    assert (scores < t["min_digit_score"] + 1e-4).mean() > 0.003 - 1e-3  # and it is the highest such threshold
    assert digit_score_threshold(scores, 0.0)["min_digit_score"] <= scores.min()


def test_non_digit_generators_training_and_held_out_are_disjoint_and_seeded():
    from digitnet.data import negatives

    assert not set(negatives.TRAINING) & set(negatives.HELD_OUT)
    assert set(negatives.TRAINING) == set(negatives.TRAINING_MIX)
    ambiguous = set("O0DQIl1JTLS5Z2B8Gb6gq9?$")  # left out of the held-out letters: digits in some hands
    assert not ambiguous & set(negatives.LETTERS)
    rng = np.random.default_rng(0)
    digits, labels = rng.integers(0, 256, (50, 28, 28), dtype=np.uint8), rng.integers(0, 10, 50)
    a = negatives.training_negatives(40, digits, labels, seed=1)
    assert a.shape == (40, 28, 28) and a.dtype == np.uint8 and (a.reshape(40, -1).max(1) > 200).all()
    np.testing.assert_array_equal(a, negatives.training_negatives(40, digits, labels, seed=1))
    assert not np.array_equal(a, negatives.training_negatives(40, digits, labels, seed=2))
    im = negatives.render_glyph("letters", "K", np.random.default_rng(3))  # a whole image, dark on light
    assert im.mode == "L" and np.asarray(im).mean() > 128


def test_captures_are_training_digits_degraded_and_keep_their_labels():
    from digitnet.data.captures import training_captures

    digits = np.zeros((4, 28, 28), np.uint8)
    digits[:, 6:22, 12:16] = 255  # four '1's
    labels = np.array([1, 1, 1, 1])
    images, out_labels = training_captures(12, digits, labels, seed=0)
    assert images.shape == (12, 28, 28) and images.dtype == np.uint8 and (out_labels == 1).all()
    assert (images.reshape(12, -1).max(1) == 255).all()  # MNIST form: peak at full scale
    np.testing.assert_array_equal(images, training_captures(12, digits, labels, seed=0)[0])


def test_members_to_keep_drops_a_cut_last_member_only_when_it_lowers_validation_accuracy():
    from digitnet.training import members_to_keep

    y = np.array([0, 1, 2, 3])
    good = np.eye(10)[[0, 1, 2, 3]] * 4.0  # (4, 10): every answer right
    bad = np.eye(10)[[5, 5, 5, 5]] * 20.0  # confidently wrong: averaged in, it flips every answer
    assert members_to_keep([good, good, bad], y) == 2
    assert members_to_keep([good, good, good * 0.5], y) == 3  # a tie keeps it
    assert members_to_keep([bad], y) == 1  # never an empty ensemble
