"""Training: presets, a seeded ``tf.data`` pipeline, atomic per-epoch checkpoints and resume.

One run writes a *model directory*: ``model.keras`` (the best epoch by validation accuracy),
``metrics.json``, PNG plots, and ``checkpoint/`` (the latest and best epochs, with optimizer state,
and ``state.json`` that pins their sha256). The test set is never used to choose anything: model
selection uses a validation split held out of the training set.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ._tf import import_tf
from .augment import Augment, augment_batch
from .data.fetch import sha256_file
from .evaluation import nll

tf = import_tf()
import keras  # noqa: E402  (after TensorFlow, quietly)

from .models import zoo  # noqa: E402

log = logging.getLogger(__name__)

STATE_VERSION = 1
VAL_SEED = 20260101  # fixed: the validation split never depends on the training seed


@dataclass
class TrainConfig:
    """Everything that defines a run. Saved in checkpoints so that ``--resume`` needs nothing else."""

    arch: str = "cnn"
    dataset: str = "mnist"
    epochs: int = 10
    batch_size: int = 128
    lr: float = 5e-3  # peak learning rate of the one-cycle schedule
    warmup: float = 0.25  # fraction of steps spent warming up to the peak
    label_smoothing: float = 0.1
    seed: int = 0
    width: int = 32  # cnn: channels of the first convolution
    hidden: tuple[int, ...] = (800, 800)  # mlp
    dropout: float = 0.2  # mlp
    augment: Augment = field(default_factory=Augment)
    val_size: int = 5000
    ensemble: int = 1  # cnn: number of members averaged
    time_budget: float | None = None  # seconds for the whole run; stop and keep the best model
    deterministic: bool = False
    dry_run: bool = False
    distribute: str | None = None  # None or "mirrored"

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, d: dict) -> TrainConfig:
        d = dict(d)
        d["augment"] = Augment(**d.get("augment", {}))
        d["hidden"] = tuple(d.get("hidden", (800, 800)))
        return cls(**d)


NO_AUGMENT = Augment(rotate=0, zoom=0, shift=0, elastic=0)

# Presets per architecture: measured on a 2-core CPU (see docs/PERFORMANCE.md).
PRESETS: dict[str, dict[str, dict]] = {
    "cnn": {
        "fast": dict(epochs=1, lr=7e-3, augment=NO_AUGMENT),
        "default": dict(epochs=9),
        # Four default-size CNNs trained twice as long, averaged; stops within 14 minutes whatever happens.
        "best": dict(epochs=18, ensemble=4, time_budget=840.0),
    },
    "mlp": {
        # One wide hidden layer at batch 256: the most accuracy per second on 2 cores (bench/sweep.py).
        "fast": dict(epochs=2, hidden=(1024,), batch_size=256, augment=NO_AUGMENT),
        "default": dict(epochs=5, hidden=(1024,), batch_size=256, augment=NO_AUGMENT),
        "best": dict(epochs=30, hidden=(1200, 1200), dropout=0.3),
    },
    "tutorial": {"fast": dict(epochs=5), "default": dict(epochs=20), "best": dict(epochs=40)},
}


def make_config(arch: str = "cnn", preset: str = "default", **overrides) -> TrainConfig:
    """A config from a preset, with explicit overrides (``None`` values are ignored)."""
    if arch not in PRESETS:
        raise ValueError(f"unknown architecture {arch!r}; choose one of {', '.join(PRESETS)}")
    if preset not in PRESETS[arch]:
        raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS[arch])}")
    values = {**PRESETS[arch][preset], **{k: v for k, v in overrides.items() if v is not None}}
    return TrainConfig(arch=arch, **values)


# ---------------------------------------------------------------------------------------------- data


def split_validation(x: np.ndarray, y: np.ndarray, val_size: int):
    """Hold ``val_size`` samples out of the training set with a fixed permutation."""
    if not 0 < val_size < len(x):
        raise ValueError(f"val_size must be between 1 and {len(x) - 1}, got {val_size}")
    perm = np.random.default_rng(VAL_SEED).permutation(len(x))
    tr, va = perm[:-val_size], perm[-val_size:]
    return (x[tr], y[tr]), (x[va], y[va])


def epoch_dataset(x: tf.Tensor, y: tf.Tensor, cfg: TrainConfig, epoch: int) -> tf.data.Dataset:
    """One epoch of batches: order and augmentation are functions of (seed, epoch) alone."""
    n = int(x.shape[0])
    perm = np.random.default_rng([cfg.seed, epoch]).permutation(n).astype(np.int32)
    ds = tf.data.Dataset.from_tensor_slices(perm).batch(cfg.batch_size, drop_remainder=n >= cfg.batch_size)
    aug = cfg.augment if cfg.augment.active else None

    def load(i, idx):  # idx: (batch,) indices into the training arrays
        images = tf.cast(tf.gather(x, idx), tf.float32) / 255.0  # (batch, 28, 28)
        if aug is not None:
            images = augment_batch(images, tf.stack([cfg.seed * 1000 + epoch, tf.cast(i, tf.int32)]), aug)
        return images, tf.one_hot(tf.gather(y, idx), 10)

    ds = ds.enumerate().map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.prefetch(tf.data.AUTOTUNE)


def predict_proba(model: keras.Model, x: np.ndarray) -> np.ndarray:
    """(n, 10) probabilities for (n, 28, 28) images, through the model's cached :class:`Predictor`."""
    from .inference import Predictor

    predictor = getattr(model, "_digitnet_predictor", None)
    if predictor is None:
        predictor = model._digitnet_predictor = Predictor(model)
    return predictor.predict_proba(x)


# ----------------------------------------------------------------------------------------- progress


class Progress(keras.callbacks.Callback):
    """A per-epoch progress bar (loss, accuracy, ETA) on a TTY; plain lines otherwise. Also enforces
    the time budget mid-epoch."""

    def __init__(self, epochs: int, steps: int, deadline: float | None, stream=sys.stderr):
        super().__init__()
        self.epochs, self.steps, self.deadline, self.stream = epochs, steps, deadline, stream
        self.tty = hasattr(stream, "isatty") and stream.isatty()
        self.epoch = 0
        self.out_of_time = False

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch, self.t0, self.last = epoch, time.perf_counter(), 0.0

    def on_train_batch_end(self, batch, logs=None):
        now = time.perf_counter()
        if self.deadline is not None and now > self.deadline:
            self.out_of_time = True
            self.model.stop_training = True
        if self.tty and (now - self.last > 0.2 or batch + 1 == self.steps):
            self.last = now
            done = batch + 1
            eta = (now - self.t0) / done * (self.steps - done)
            bar = "#" * int(24 * done / self.steps)
            self.stream.write(f"\repoch {self.epoch + 1}/{self.epochs} [{bar:<24}] {done}/{self.steps} "
                              f"loss {logs['loss']:.4f} acc {logs['accuracy']:.4f} ETA {eta:4.0f}s ")
            self.stream.flush()

    def epoch_line(self, row: dict) -> None:
        line = (f"epoch {row['epoch']}/{self.epochs}: loss {row['loss']:.4f} acc {row['accuracy']:.4f} "
                f"val_loss {row['val_loss']:.4f} val_acc {row['val_accuracy']:.4f} ({row['seconds']:.1f} s)")
        self.stream.write(("\r" + line + " " * 8 if self.tty else line) + "\n")
        self.stream.flush()


# ------------------------------------------------------------------------------------- checkpoints


class CheckpointError(RuntimeError):
    """A checkpoint is missing, corrupt or from another version."""


def _atomic_write_json(path: Path, obj) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _atomic_save(model: keras.Model, path: Path) -> str:
    """Save to a temp file, then rename; return the sha256 of what was written."""
    tmp = path.with_name(f".tmp-{path.name}")  # Keras insists on the .keras suffix
    model.save(tmp)
    digest = sha256_file(tmp)
    os.replace(tmp, path)
    return digest


def read_state(ckpt_dir: Path) -> dict:
    """Load ``state.json`` from a checkpoint folder and verify the sha256 of the files it pins."""
    state_path = Path(ckpt_dir) / "state.json"
    if not state_path.is_file():
        raise CheckpointError(f"no checkpoint to resume: {state_path} is missing")
    try:
        state = json.loads(state_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{state_path} is corrupt: {e}") from e
    if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
        raise CheckpointError(f"{state_path} is not a digitnet checkpoint state (version {STATE_VERSION})")
    for name, digest in state["files"].items():
        path = state_path.parent / name
        if not path.is_file():
            raise CheckpointError(f"checkpoint file {path} is missing")
        if sha256_file(path) != digest:
            raise CheckpointError(f"checkpoint file {path} is corrupt or truncated (sha256 mismatch)")
    return state


def _load_model_file(path) -> keras.Model:
    """A saved model to start from: a model directory or a .keras file."""
    path = Path(path)
    path = path / "model.keras" if path.is_dir() else path
    if not path.is_file():
        raise FileNotFoundError(f"no model at {path}")
    return keras.models.load_model(path, safe_mode=True, compile=False)


def load_checkpoint(path: Path) -> keras.Model:
    try:
        return keras.models.load_model(path, safe_mode=True)
    except Exception as e:  # Keras raises many types for damaged archives
        raise CheckpointError(f"cannot load checkpoint {path}: {e}") from e


# ---------------------------------------------------------------------------------------- training


def _strategy(cfg: TrainConfig):
    if cfg.distribute in (None, "none"):
        return tf.distribute.get_strategy()
    if cfg.distribute == "mirrored":
        if not tf.config.list_physical_devices("GPU"):
            _split_cpu(2)
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices)
    raise ValueError(f"unknown distribution {cfg.distribute!r}; choose 'mirrored' or none")


def _split_cpu(n: int) -> None:
    """Show TensorFlow n logical CPU devices, so MirroredStrategy has replicas without a GPU. Only
    possible before the runtime starts; afterwards the devices it already has are used."""
    cpu = tf.config.list_physical_devices("CPU")[0]
    if len(tf.config.get_logical_device_configuration(cpu) or []) >= n:
        return
    try:
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * n)
    except RuntimeError:
        log.warning("TensorFlow has started already: MirroredStrategy keeps its current CPU devices")


def _build(cfg: TrainConfig, member: int, steps_per_epoch: int) -> keras.Model:
    seed = cfg.seed * 100 + member
    if cfg.arch == "cnn":
        model = zoo.cnn(width=cfg.width, seed=seed)
    elif cfg.arch == "mlp":
        model = zoo.mlp(hidden=cfg.hidden, dropout=cfg.dropout, seed=seed)
    else:
        model = zoo.tutorial(seed=seed)
    total = max(1, cfg.epochs * steps_per_epoch)
    warm = int(cfg.warmup * total)
    schedule = keras.optimizers.schedules.CosineDecay(
        cfg.lr / 10, decay_steps=max(1, total - warm), warmup_target=cfg.lr, warmup_steps=warm, alpha=0.01)
    model.compile(
        optimizer=keras.optimizers.Adam(schedule),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=cfg.label_smoothing),
        metrics=["accuracy"],
        jit_compile=False,  # XLA was about 2x slower on CPU here
    )
    return model


@dataclass
class RunResult:
    model: keras.Model
    replicas: int
    history: list[dict]
    train_seconds: float
    epochs_run: int
    stopped_early: bool


EpochHook = Callable[[int, keras.Model], None]


def train_member(
    cfg: TrainConfig, train, val, ckpt_dir: Path, member: int = 0, resume: bool = False,
    deadline: float | None = None, on_epoch_end: EpochHook | None = None, init_from=None,
) -> RunResult:
    """Train one model, checkpointing each epoch into ``ckpt_dir``; resume from it if asked."""
    (x_tr, y_tr), (x_va, y_va) = train, val
    strategy = _strategy(cfg)
    steps = len(x_tr) // cfg.batch_size if len(x_tr) >= cfg.batch_size else 1
    if cfg.dry_run:
        steps = min(steps, 3)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    state = {"version": STATE_VERSION, "config": cfg.to_json(), "member": member, "epochs_done": 0,
             "history": [], "best_epoch": None, "train_seconds": 0.0, "finished": False, "files": {}}
    with strategy.scope():
        if resume and (ckpt_dir / "state.json").exists():
            state = read_state(ckpt_dir)
            if state["finished"]:
                best = load_checkpoint(ckpt_dir / state["best_file"])
                return RunResult(best, 1, state["history"], state["train_seconds"], state["epochs_done"], False)
            model = load_checkpoint(ckpt_dir / state["last_file"])
            log.info("resuming member %d after epoch %d", member, state["epochs_done"])
        else:
            model = _build(cfg, member, steps)
            if init_from is not None:
                model.set_weights(_load_model_file(init_from).get_weights())
    x_t, y_t = tf.constant(x_tr), tf.constant(y_tr)
    progress = Progress(cfg.epochs, steps, deadline)
    stopped = False
    for epoch in range(state["epochs_done"], cfg.epochs):
        ds = epoch_dataset(x_t, y_t, cfg, epoch).take(steps)
        t0 = time.perf_counter()
        hist = model.fit(ds, initial_epoch=epoch, epochs=epoch + 1, verbose=0, shuffle=False,
                         callbacks=[progress])
        probs = predict_proba(model, x_va)
        seconds = time.perf_counter() - t0
        row = {"epoch": epoch + 1, "loss": float(hist.history["loss"][-1]),
               "accuracy": float(hist.history["accuracy"][-1]), "val_loss": nll(probs, y_va),
               "val_accuracy": float((probs.argmax(1) == y_va).mean()), "seconds": round(seconds, 3)}
        progress.epoch_line(row)
        state["history"].append(row)
        state["train_seconds"] += seconds
        state["epochs_done"] = epoch + 1
        best = state["best_epoch"]
        # ">=": on a tie the later epoch wins; later epochs have seen more of the schedule.
        if best is None or row["val_accuracy"] >= state["history"][best - 1]["val_accuracy"]:
            state["best_epoch"] = epoch + 1
        _save_epoch(model, ckpt_dir, state)
        if on_epoch_end is not None:
            on_epoch_end(epoch + 1, model)  # e.g. the benchmark's test evaluation; not training time
        if progress.out_of_time or (deadline is not None and time.perf_counter() > deadline):
            log.info("time budget reached after epoch %d; keeping the best epoch", epoch + 1)
            stopped = True
            break
    state["finished"] = True
    _atomic_write_json(ckpt_dir / "state.json", state)
    best_model = model if state["best_epoch"] == state["epochs_done"] else load_checkpoint(
        ckpt_dir / state["best_file"])
    return RunResult(best_model, strategy.num_replicas_in_sync, state["history"], state["train_seconds"],
                     state["epochs_done"], stopped)


def _save_epoch(model: keras.Model, ckpt_dir: Path, state: dict) -> None:
    """Write this epoch's checkpoint, then the state that points to it; drop files no longer needed."""
    name = f"epoch-{state['epochs_done']:04d}.keras"
    digest = _atomic_save(model, ckpt_dir / name)
    best_name = f"epoch-{state['best_epoch']:04d}.keras"
    files = {name: digest}
    if best_name != name:
        files[best_name] = state["files"][best_name]
    state.update(files=files, last_file=name, best_file=best_name)
    _atomic_write_json(ckpt_dir / "state.json", state)  # the commit point
    for old in ckpt_dir.glob("epoch-*.keras"):
        if old.name not in files:
            old.unlink()


# ----------------------------------------------------------------------------------------- the run


def final_model(models: list[keras.Model]) -> keras.Model:
    """The model for ``model.keras``: uncompiled (no optimizer state), built from Keras's own layers
    only (loads without digitnet), one model or the average of several."""
    from .models.layers import portable_config

    copies = []
    for i, m in enumerate(models):
        config = portable_config(m.get_config())
        if len(models) > 1:
            config["name"] = f"member{i}"
        c = keras.Model.from_config(config)
        c.set_weights(m.get_weights())
        copies.append(c)
    return copies[0] if len(copies) == 1 else zoo.ensemble(copies)


def run_config_path(out_dir: str | os.PathLike) -> Path:
    return Path(out_dir) / "checkpoint" / "run.json"


def load_run_config(out_dir: str | os.PathLike) -> TrainConfig:
    """The config of a run, to resume it."""
    path = run_config_path(out_dir)
    if not path.is_file():
        raise CheckpointError(f"{out_dir} holds no run to resume ({path} is missing)")
    try:
        return TrainConfig.from_json(json.loads(path.read_text()))
    except (json.JSONDecodeError, TypeError) as e:
        raise CheckpointError(f"{path} is corrupt: {e}") from e


def train(
    cfg: TrainConfig, out_dir: str | os.PathLike, *, resume: bool = False, data_dir=None, cache_dir=None,
    on_epoch_end: EpochHook | None = None, init_from: str | os.PathLike | None = None,
) -> dict:
    """Train ``cfg`` into the model directory ``out_dir`` and return its metrics (also ``metrics.json``).

    With ``resume=True`` a run killed at any point continues from its last complete epoch. With
    ``init_from`` a saved model's weights are the starting point (fine-tuning).
    """
    from . import evaluation
    from .data.datasets import load
    from .inference import calibrate

    started = time.perf_counter()
    if cfg.arch not in PRESETS:
        raise ValueError(f"unknown architecture {cfg.arch!r}; choose one of {', '.join(PRESETS)}")
    if cfg.epochs < 1 or cfg.batch_size < 1 or cfg.ensemble < 1:
        raise ValueError("epochs, batch_size and ensemble must be at least 1")
    if cfg.deterministic:
        keras.utils.set_random_seed(cfg.seed)
        tf.config.experimental.enable_op_determinism()
    out = Path(out_dir)
    (out / "checkpoint").mkdir(parents=True, exist_ok=True)
    if not resume:
        _atomic_write_json(run_config_path(out), cfg.to_json())

    (x_train, y_train), (x_test, y_test), info = load(cfg.dataset, data_dir, cache_dir)
    train_split, val_split = split_validation(x_train, y_train, min(cfg.val_size, len(x_train) // 5 or 1))
    if cfg.dry_run:  # a few batches and small evaluations: checks the whole path in seconds
        val_split = (val_split[0][:256], val_split[1][:256])
        x_test, y_test = x_test[:512], y_test[:512]

    spent = 0.0
    if resume:
        for member_dir in sorted((out / "checkpoint").glob("member-*")):
            if (member_dir / "state.json").exists():
                spent += read_state(member_dir)["train_seconds"]
    deadline = started + cfg.time_budget - spent if cfg.time_budget else None

    results = []
    for member in range(cfg.ensemble):
        r = train_member(cfg, train_split, val_split, out / "checkpoint" / f"member-{member}", member, resume,
                         deadline, on_epoch_end, init_from)
        results.append(r)
        if deadline is not None and time.perf_counter() > deadline:
            break
    model = final_model([r.model for r in results])
    _atomic_save(model, out / "model.keras")

    probs = predict_proba(model, x_test)
    val_probs = predict_proba(model, val_split[0])
    metrics = {
        "model": {"arch": cfg.arch, "name": model.name, "parameters": int(model.count_params()),
                  "members": len(results), "file": "model.keras",
                  "trained_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
        "test": evaluation.scores(probs, y_test, info.classes),
        "validation": {"accuracy": float((val_probs.argmax(1) == val_split[1]).mean()), "n": len(val_split[1])},
        "calibration": calibrate(val_probs, val_split[1]),
        "training": {
            "seconds": round(sum(r.train_seconds for r in results), 2),
            "wall_seconds": round(time.perf_counter() - started, 2),
            "epochs": [r.epochs_run for r in results],
            "replicas": max(r.replicas for r in results),
            "stopped_by_time_budget": any(r.stopped_early for r in results)
            or len(results) < cfg.ensemble,
            "config": cfg.to_json(),
            "history": [r.history for r in results],
        },
        "dataset": {"name": info.name, "sha256": info.sha256, "classes": list(info.classes),
                    "train": len(train_split[1]), "validation": len(val_split[1]), "test": len(y_test)},
        "versions": evaluation.versions(),
    }
    evaluation.write_report(out, metrics, x_test, y_test, probs, info.classes, history=results[0].history)
    return metrics
