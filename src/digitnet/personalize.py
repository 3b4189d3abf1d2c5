"""Teach a model its user's handwriting: fine-tuning with rehearsal, gated on MNIST, published as a version.

The user's samples, augmented anew each time, are mixed with replayed MNIST training digits and the
procedural non-digits of ``data.negatives``, so that neither ordinary digits nor "not a digit" are
forgotten. Batch norm statistics stay frozen (the base's, from all of MNIST). Part of each digit's
samples is held out to measure the user's style before and after. The result is recalibrated on MNIST
validation data, gated on it, scored on the test set (reported only), converted once to TFLite (so
servers load it without TensorFlow) and published as the next personal version (``digitnet.versions``).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .errors import InputError, TrainingError
from .presets import MIN_SAMPLES_PER_LABEL, NUM_CLASSES, Augment, PersonalizeConfig, TrainConfig

log = logging.getLogger(__name__)
Progress = Callable[[float, str], None]  # (fraction done, what is happening)


def check_samples(y: np.ndarray) -> dict[int, int]:
    """Samples per digit; raises :class:`InputError` when none, or when a digit has 1 or 2."""
    counts = {d: int((y == d).sum()) for d in range(NUM_CLASSES)}
    if not len(y):
        raise InputError("no samples to learn from: correct some answers on the page, or give --samples DIR "
                         "with images in subfolders 0/ ... 9/")
    few = {d: n for d, n in counts.items() if 0 < n < MIN_SAMPLES_PER_LABEL}
    if few:
        listed = ", ".join(f"digit {d} has {n}" for d, n in few.items())
        raise InputError(f"{listed}: personalize needs at least {MIN_SAMPLES_PER_LABEL} samples of each digit it "
                         "learns (digits with none are kept as they are)")
    return counts


def holdout_split(y: np.ndarray, share: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, held out): ``share`` of each digit's samples, at least one, held out."""
    rng = np.random.default_rng(seed)
    held = []
    for d in range(NUM_CLASSES):
        idx = rng.permutation(np.flatnonzero(y == d))
        if len(idx):
            held += list(idx[: max(1, int(round(share * len(idx))))])
    mask = np.zeros(len(y), bool)
    mask[held] = True
    return np.flatnonzero(~mask), np.flatnonzero(mask)


def fine_tune(base, x_user: np.ndarray, y_user: np.ndarray, replay: tuple[np.ndarray, np.ndarray],
              negatives: np.ndarray, cfg: PersonalizeConfig, progress: Progress | None = None):
    """A fine-tuned copy of ``base`` (shipped form), trained on ``cfg.epochs`` x ``cfg.steps_per_epoch``
    batches: the user's samples at ``cfg.user_share``, non-digits at ``cfg.negatives``, MNIST replay the rest."""
    import keras

    from ._tf import import_tf
    from .models import zoo
    from .models.layers import DigitLoss, accuracy
    from .training import Pools, epoch_dataset

    tf = import_tf()
    keras.utils.set_random_seed(cfg.seed)
    # A plain clone: the saved model holds an Identity where training scaled the digit score's gradient, and
    # the whole gradient learns a user's style better at the same MNIST accuracy (docs/PERFORMANCE.md).
    model = keras.models.clone_model(base)
    model.set_weights(base.get_weights())
    for layer in model.layers:  # frozen batch norm: inference statistics, untouched by a few hundred batches
        if "BatchNorm" in type(layer).__name__:
            layer.trainable = False
    view = zoo.training_view(model)
    steps = cfg.epochs * cfg.steps_per_epoch
    schedule = keras.optimizers.schedules.CosineDecay(cfg.lr / 10, decay_steps=max(1, steps - steps // 5),
                                                      warmup_target=cfg.lr, warmup_steps=steps // 5, alpha=0.05)
    view.compile(optimizer=keras.optimizers.Adam(schedule), loss=DigitLoss(label_smoothing=0.1),
                 metrics=[accuracy], jit_compile=False)
    # One pool of digits per epoch, ten classes in equal numbers (a class the user taught must not become
    # more likely overall): in each taught class, a share cfg.user_share is the user's samples, repeated.
    per_class = cfg.steps_per_epoch * (cfg.batch_size - int(round(cfg.negatives * cfg.batch_size))) // NUM_CLASSES
    rng = np.random.default_rng(cfg.seed)
    train_cfg = TrainConfig(batch_size=cfg.batch_size, negatives=cfg.negatives, captures=0.0, augment=Augment(),
                            seed=cfg.seed)
    pools = Pools(negatives=negatives).on_device()
    by_class = [np.flatnonzero(replay[1] == d) for d in range(NUM_CLASSES)]
    for epoch in range(cfg.epochs):
        xs, ys = [], []
        for d in range(NUM_CLASSES):
            mine = np.flatnonzero(y_user == d)
            n_user = int(round(cfg.user_share * per_class)) if len(mine) else 0
            users, rep = rng.choice(mine, n_user), rng.choice(by_class[d], per_class - n_user, replace=False)
            xs += [x_user[users], replay[0][rep]]
            ys += [y_user[users], replay[1][rep]]
        x, y = tf.constant(np.concatenate(xs)), tf.constant(np.concatenate(ys))
        hist = view.fit(epoch_dataset(x, y, train_cfg, epoch, pools).take(cfg.steps_per_epoch), verbose=0)
        loss = hist.history["loss"][-1]
        if not np.isfinite(loss):
            raise TrainingError(f"fine-tuning diverged in epoch {epoch + 1} (loss {loss})")
        if progress:
            progress((epoch + 1) / cfg.epochs, f"epoch {epoch + 1}/{cfg.epochs}, loss {loss:.4f}")
    return zoo.shipped_view(model)


def gate(before: float, cfg: PersonalizeConfig) -> float:
    """The MNIST validation accuracy a version must reach: the lower of ``cfg.min_val_accuracy`` and the base's
    own accuracy less ``cfg.max_val_drop`` (a base near or under the first is not held to more than it had)."""
    return min(cfg.min_val_accuracy, before - cfg.max_val_drop)


def personalize(samples: tuple[np.ndarray, np.ndarray], base_path: str | os.PathLike, out: Path,
                cfg: PersonalizeConfig | None = None, *, data_dir=None, cache_dir=None,
                progress: Progress | None = None) -> dict:
    """Fine-tune the model at ``base_path`` on ``samples`` (uint8 (n, 28, 28), labels (n,)) into the model
    directory ``out`` (model.keras, metrics.json, report plots, MODEL_CARD.md); return its metrics.

    Raises :class:`InputError` for too few samples and :class:`TrainingError` when the result fails the
    MNIST gate (nothing is written then).
    """
    from .checkpoints import save_model
    from .data.datasets import load
    from .data.mnist import split_validation
    from .data.negatives import training_negatives
    from .evaluation import evaluate
    from .fileio import sha256_file
    from .inference import Predictor
    from .models.saving import load_model, resolve_model_path
    from .training import calibrate_model, final_model

    started = time.perf_counter()
    cfg = cfg or PersonalizeConfig()
    step = progress or (lambda f, what: log.info("%s", what))
    x_s, y_s = np.asarray(samples[0], np.uint8), np.asarray(samples[1], np.uint8)
    counts = check_samples(y_s)
    tr, ho = holdout_split(y_s, cfg.holdout, cfg.seed)
    base_file = resolve_model_path(base_path)
    step(0.02, f"base {base_file}; {len(y_s)} samples ({len(tr)} to learn from, {len(ho)} held out)")
    base = load_model(base_file)
    (x_train, y_train), (x_test, y_test), info = load("mnist", data_dir, cache_dir)
    train_split, (x_val, y_val) = split_validation(x_train, y_train)
    negatives = training_negatives(1000, *train_split, seed=cfg.seed)

    def scores(model) -> dict:
        p = Predictor(model, backend="tf")
        return {"user": float((p.predict(x_s[ho]) == y_s[ho]).mean()),
                "validation": float((p.predict(x_val) == y_val).mean()),
                "test": float((p.predict(x_test) == y_test).mean())}

    before = scores(base)
    step(0.08, f"before: your held-out samples {before['user']:.1%}, MNIST validation {before['validation']:.2%}")
    tuned = fine_tune(base, x_s[tr], y_s[tr], train_split, negatives, cfg,
                      lambda f, what: step(0.1 + 0.7 * f, what))
    model, calibration, val_probs = calibrate_model(final_model([tuned]), x_val, y_val)
    after = scores(model)
    needed = gate(before["validation"], cfg)
    if after["validation"] < needed:
        raise TrainingError(f"the personalized model reads {after['validation']:.2%} of MNIST validation digits, "
                            f"under the gate of {needed:.2%} (the base: {before['validation']:.2%}): not published. "
                            "Samples that contradict MNIST (a 1 labelled 7) can do this; check them")
    step(0.85, f"after: your held-out samples {after['user']:.1%}, MNIST validation {after['validation']:.2%}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    save_model(model, out / "model.keras")
    extra = {
        "model": {"arch": "cnn" if "cnn" in model.name else model.name, "name": model.name,
                  "parameters": int(model.count_params()), "file": "model.keras",
                  "trained_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
        "base": {"path": str(base_file), "sha256": sha256_file(base_file)},
        "personalization": {
            "samples": {str(d): n for d, n in counts.items()}, "learned_from": len(tr), "held_out": len(ho),
            "before": before, "after": after, "gate": needed,
            "config": {k: getattr(cfg, k) for k in cfg.__dataclass_fields__},
        },
        "validation": {"accuracy": float((val_probs.argmax(1) == y_val).mean()), "n": len(y_val)},
        "calibration": calibration,
    }
    predictor = Predictor(model, {"calibration": calibration}, backend="tf")
    metrics = evaluate(predictor, (x_test, y_test), info, out, extra=extra)
    step(0.92, "converting to TFLite (cached: servers load it without TensorFlow)")
    Predictor.load(out / "model.keras")  # converts and caches by the file's sha256, which renaming keeps
    metrics["personalization"]["seconds"] = round(time.perf_counter() - started, 1)
    from .fileio import atomic_write_json

    atomic_write_json(out / "metrics.json", metrics)
    _write_card(out, metrics)
    step(1.0, f"done in {metrics['personalization']['seconds']} s")
    return metrics


def _write_card(out: Path, m: dict) -> None:
    from .fileio import atomic_write_text

    p = m["personalization"]
    b, a = p["before"], p["after"]
    samples = ", ".join(f"{d}: {n}" for d, n in p["samples"].items() if n)
    atomic_write_text(out / "MODEL_CARD.md", f"""# Model card: a personalized digitnet model

- **What**: `{m['model']['name']}` fine-tuned from `{m['base']['path']}` (sha256 `{m['base']['sha256']}`) on one
  user's handwriting samples, with MNIST replay and procedural non-digits (`digitnet personalize`).
- **Samples**: {samples}; {p['learned_from']} learned from, {p['held_out']} held out to measure.
- **The user's held-out samples**: {b['user']:.1%} before, {a['user']:.1%} after (few samples: a rough figure).
- **MNIST validation**: {b['validation']:.2%} before, {a['validation']:.2%} after (gate {p['gate']:.2%}).
- **MNIST test** (reported only, chose nothing): {b['test']:.2%} before, {a['test']:.2%} after.
- **Calibration**: temperature {m['calibration']['temperature']}, `min_confidence` {m['calibration']['min_confidence']},
  `min_digit_score` {m['calibration'].get('min_digit_score')}, refitted on MNIST validation digits.
- **Intended use**: reading this user's digits through `digitnet predict` and `digitnet serve`; it stands in
  for the default model only while the default is the base above.
- **Privacy**: the samples stay in `$DIGITNET_HOME/samples`; nothing is sent anywhere.
""")


def run_job(samples: tuple[np.ndarray, np.ndarray], base_path, cfg: PersonalizeConfig | None = None, *,
            data_dir=None, cache_dir=None, progress: Progress | None = None) -> tuple[int, dict]:
    """The whole job behind ``digitnet personalize`` and the page's button: under the job lock, with its
    status file kept current (``versions.read_status``), publish a new personal version. Returns the
    version number and its metrics. Raises :class:`~digitnet.errors.BusyError` when a job is running.
    """
    from . import versions

    with versions.job_lock():
        versions.write_status(state="running", progress=0.0, before=None, after=None, version=None, error=None,
                              pid=os.getpid(), message="starting")

        def step(fraction: float, what: str) -> None:
            versions.write_status(progress=round(fraction, 3), message=what)
            (progress or (lambda f, w: log.info("%s", w)))(fraction, what)

        try:
            box = {}
            number = versions.publish(lambda tmp: box.setdefault(
                "metrics", personalize(samples, base_path, tmp, cfg, data_dir=data_dir, cache_dir=cache_dir,
                                       progress=step)))
        except Exception as e:
            versions.write_status(state="failed", error=str(e))
            raise
        p = box["metrics"]["personalization"]
        versions.write_status(state="done", progress=1.0, version=number, before=p["before"], after=p["after"],
                              message=f"version {number} published")
        return number, box["metrics"]
