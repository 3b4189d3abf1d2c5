"""Training: a seeded ``tf.data`` pipeline, the epoch loop with checkpoints and resume, the final model and its report.

One run writes a *model directory*: ``model.keras`` (the best epoch by validation accuracy),
``metrics.json``, PNG plots, and ``checkpoint/`` (the latest and best epochs, with optimizer state,
and ``state.json`` that pins their sha256). The test set is never used to choose anything: model
selection uses a validation split held out of the training set.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import config
from ._tf import import_tf
from .augment import augment_batch, renormalize
from .checkpoints import load_checkpoint, new_state, read_state, save_epoch, save_model, write_state
from .data.mnist import split_validation  # noqa: F401  (re-exported: training's validation split)
from .errors import CheckpointError, ConfigError, ModelOutputError, TrainingError
from .evaluation import calibrate, digit_score_threshold, ece, evaluate, fit_temperature, nll, softmax
from .fileio import atomic_write, atomic_write_json
from .inference import Predictor
from .presets import NUM_CLASSES, PIPELINE_THREADS, POOLS_CACHED, PRESETS, TrainConfig, make_config  # noqa: F401  (re-exported)

tf = import_tf()
import keras  # noqa: E402  (after TensorFlow, quietly)

from .models import zoo  # noqa: E402
from .models.layers import DigitLoss, accuracy  # noqa: E402
from .models.saving import load_model  # noqa: E402

log = logging.getLogger(__name__)

__all__ = ["PRESETS", "TrainConfig", "load_run_config", "make_config", "train"]



# ---------------------------------------------------------------------------------------------- data


@dataclass
class Pools:
    """Images mixed into every batch besides the training digits: non-digits and degraded captures
    (NumPy arrays or tensors)."""

    negatives: np.ndarray | tf.Tensor | None = None  # uint8 (m, 28, 28), not digits
    captures: np.ndarray | tf.Tensor | None = None  # uint8 (m, 28, 28), digits as a poor capture delivers them
    capture_labels: np.ndarray | tf.Tensor | None = None  # (m,)

    def on_device(self) -> Pools:
        """The same pools as tensors (made once, not per epoch)."""
        return Pools(*(None if a is None else tf.constant(a) for a in (self.negatives, self.captures,
                                                                       self.capture_labels)))


def epoch_dataset(x: tf.Tensor, y: tf.Tensor, cfg: TrainConfig, epoch: int, pools: Pools | None = None
                  ) -> tf.data.Dataset:
    """One epoch of batches: order and augmentation are functions of (seed, epoch) alone; the last
    ``cfg.clean_epochs`` epochs are not augmented.

    Each batch holds ``batch_size`` images: training digits, then a share ``cfg.captures`` of captures
    and a share ``cfg.negatives`` of non-digits from ``pools`` (when given). Labels are (batch, 11): the
    one-hot digit (zeros for a non-digit), then 1 for a digit and 0 for not, as
    :class:`~digitnet.models.layers.DigitLoss` reads them. Every epoch keeps the same number of steps.
    """
    pools = pools or Pools()
    n = int(x.shape[0])
    rng = np.random.default_rng([cfg.seed, epoch])
    perm = rng.permutation(n).astype(np.int32)
    full = n >= cfg.batch_size
    k_neg = int(round(cfg.negatives * cfg.batch_size)) if pools.negatives is not None and full else 0
    k_cap = int(round(cfg.captures * cfg.batch_size)) if pools.captures is not None and full else 0
    steps = n // cfg.batch_size if full else 1
    per = cfg.batch_size - k_neg - k_cap if full else n  # training digits per batch
    digit_idx = perm[: steps * per].reshape(steps, per)
    cap_idx = rng.integers(0, len(pools.captures) if k_cap else 1, (steps, k_cap)).astype(np.int32)
    neg_idx = rng.integers(0, len(pools.negatives) if k_neg else 1, (steps, k_neg)).astype(np.int32)
    ds = tf.data.Dataset.from_tensor_slices((digit_idx, cap_idx, neg_idx))
    # The last epochs train on the images as they are: the weights settle, at the schedule's low learning
    # rates, on the distribution they will read (docs/PERFORMANCE.md).
    aug = cfg.augment if cfg.augment.active and epoch < cfg.epochs - cfg.clean_epochs else None

    def digits(images, labels):  # uint8 (k, 28, 28) and (k,) -> float images, (k, 11) labels
        k = tf.shape(labels)[0]
        return (tf.cast(images, tf.float32) / 255.0,
                tf.concat([tf.one_hot(labels, NUM_CLASSES), tf.ones([k, 1])], axis=1))

    def load(i, batch):  # (per,), (k_cap,), (k_neg,) indices into the training digits and the pools
        idx, cidx, nidx = batch
        images, labels = digits(tf.gather(x, idx), tf.gather(y, idx))  # (per, 28, 28), (per, 11)
        if k_cap:
            more, more_labels = digits(tf.gather(pools.captures, cidx), tf.gather(pools.capture_labels, cidx))
            images, labels = tf.concat([images, more], 0), tf.concat([labels, more_labels], 0)
        if k_neg:
            images = tf.concat([images, tf.cast(tf.gather(pools.negatives, nidx), tf.float32) / 255.0], axis=0)
            labels = tf.concat([labels, tf.zeros([k_neg, NUM_CLASSES + 1])], axis=0)  # (batch, 11)
        if aug is not None:
            images = augment_batch(images, tf.stack([cfg.seed * 1000 + epoch, tf.cast(i, tf.int32)]), aug)
        return renormalize(images), labels

    # Fixed parallelism, no autotuning: destroying an autotuned iterator waits for its optimizer thread's
    # current round, which stalled 2 to 4 of the default preset's 9 epochs by 3.1-3.6 s each on 2 cores
    # (measured: the time sat between the last step and fit()'s return). The augmentation takes about
    # a tenth of an epoch's time, so two threads and two batches ahead keep the training steps fed.
    ds = ds.enumerate().map(load, num_parallel_calls=PIPELINE_THREADS, deterministic=True).prefetch(PIPELINE_THREADS)
    options = tf.data.Options()
    options.autotune.enabled = False
    return ds.with_options(options)


def make_pools(cfg: TrainConfig, train) -> Pools:
    """The run's non-digits and captures, generated from the *training* split with the run's seed.

    They are cached in ``$DIGITNET_HOME/cache/pools`` by everything they depend on (see :func:`pools_key`):
    generating them is a few seconds of every run in one thread, and the same seed and split give the same pools.
    """
    from .data.captures import training_captures
    from .data.negatives import training_negatives

    # A small training set needs few: its epochs have few batches to mix them into.
    size = min(cfg.pool, 64 if cfg.dry_run else max(64, len(train[0]) // 16))
    path = config.home() / "cache" / "pools" / f"{pools_key(cfg, train, size)}.npz"
    # Missing, or damaged (the zip's CRCs catch it): generate them again.
    with contextlib.suppress(OSError, ValueError, EOFError, zipfile.BadZipFile), np.load(path, allow_pickle=False) as f:
        return Pools(*(f.get(k) for k in ("negatives", "captures", "capture_labels")))
    pools = Pools()  # NumPy: TensorFlow's runtime must not start before the distribution strategy is set up
    if cfg.negatives:
        pools.negatives = training_negatives(size, *train, seed=cfg.seed)
    if cfg.captures:
        pools.captures, pools.capture_labels = training_captures(size, *train, seed=cfg.seed)
    arrays = {k: v for k, v in vars(pools).items() if v is not None}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda tmp: np.savez(tmp, **arrays))
        for old in sorted(path.parent.glob("*.npz"), key=lambda p: p.stat().st_mtime)[:-POOLS_CACHED]:
            old.unlink()  # the cache keeps the newest few: a change to the generators makes new keys
    except OSError as e:  # a read-only home: the run goes on without the cache
        log.warning("could not cache the training pools in %s: %s", path.parent, e)
    return pools


def pools_key(cfg: TrainConfig, train, size: int) -> str:
    """The sha256 of what the pools depend on: seed, size, which pools, the training split's bytes, the
    generators' source code (and the preprocessing they use) and the versions of the libraries they draw with."""
    import hashlib
    from importlib import metadata

    from . import preprocessing
    from .data import captures, negatives

    h = hashlib.sha256(f"{cfg.seed} {size} {bool(cfg.negatives)} {bool(cfg.captures)}".encode())
    for a in train:
        h.update(np.ascontiguousarray(a).tobytes())
    for module in (negatives, captures, preprocessing):
        h.update(Path(module.__file__).read_bytes())
    h.update(" ".join(metadata.version(d) for d in ("numpy", "pillow", "scipy")).encode())
    return h.hexdigest()


# ----------------------------------------------------------------------------------------- progress


class TimeBudget(keras.callbacks.Callback):
    """Stops training mid-epoch once ``deadline`` (a ``time.perf_counter()`` value) has passed."""

    def __init__(self, deadline: float | None):
        super().__init__()
        self.deadline = deadline

    @property
    def spent(self) -> bool:
        return self.deadline is not None and time.perf_counter() > self.deadline

    def on_train_batch_end(self, batch, logs=None):
        if self.spent:
            self.model.stop_training = True


class Progress(keras.callbacks.Callback):
    """A per-epoch progress bar (loss, accuracy, ETA) on a TTY; plain lines otherwise."""

    def __init__(self, epochs: int, steps: int, stream=None):
        super().__init__()
        # sys.stderr as it is now, not as it was at import time (a test runner swaps it per test).
        self.epochs, self.steps, self.stream = epochs, steps, stream or sys.stderr
        self.tty = hasattr(stream, "isatty") and stream.isatty()
        self.epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch, self.t0, self.last = epoch, time.perf_counter(), 0.0
        self.first_step = None  # seconds to the end of the epoch's first step (the first epoch's includes tracing)

    def on_train_batch_end(self, batch, logs=None):
        now = time.perf_counter()
        if self.first_step is None:
            self.first_step = now - self.t0
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


# ---------------------------------------------------------------------------------------- training


_MULTIWORKER = None  # made once per process: collective ops are configured when TensorFlow's runtime starts


def _strategy(cfg: TrainConfig):
    global _MULTIWORKER
    if cfg.distribute in (None, "none"):
        return tf.distribute.get_strategy()
    if cfg.distribute == "mirrored":
        if not tf.config.list_physical_devices("GPU"):
            _split_cpu(2)
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices)
    if cfg.distribute == "multiworker":
        if _MULTIWORKER is None:
            _check_tf_config()
            _MULTIWORKER = tf.distribute.MultiWorkerMirroredStrategy()
        return _MULTIWORKER
    raise ConfigError(f"unknown distribution {cfg.distribute!r}; choose 'mirrored', 'multiworker' or none")


def _check_tf_config() -> None:
    """$TF_CONFIG must name the cluster and this worker's place in it (see the README's recipe)."""
    import json

    raw = os.environ.get("TF_CONFIG")
    if not raw:
        raise ConfigError("--distribute multiworker reads the cluster from $TF_CONFIG, which is not set: e.g. "
                          '{"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", '
                          '"index": 0}}')
    try:
        spec = json.loads(raw)
        workers, task = spec["cluster"]["worker"], spec["task"]
        if not (isinstance(workers, list) and workers and task["type"] in ("worker", "chief")
                and isinstance(task["index"], int)):
            raise ValueError
    except (ValueError, KeyError, TypeError) as e:
        raise ConfigError(f"$TF_CONFIG must be JSON with cluster.worker (a list of host:port) and task.type "
                          f"and task.index; got {raw!r}") from e


@dataclass
class Worker:
    """This process's place in a multi-worker run: the chief writes the model directory; the others train
    the same steps beside it and write only scratch copies, removed at the end."""

    index: int = 0
    count: int = 1
    chief: bool = True


def _for_multiworker(model: keras.Model, strategy) -> None:
    """Let Keras 3's fit() run under MultiWorkerMirroredStrategy, which it fails to (keras-team/keras#20585,
    open): it builds the model by averaging a first batch across the workers, and averages each step's
    scalar logs along an axis they lack. So build from this worker's own batch, and give fit() a train
    function that runs Keras's own ``train_step`` on every replica and reports this worker's logs. The
    gradients are summed across the workers by the optimizer either way."""

    built = []

    def build(iterator=None, data_batch=None):
        if built:  # fit() asks on every call: once is enough
            return
        if iterator is not None:
            for _, _, batches in iterator:
                data_batch = tf.nest.map_structure(lambda v: strategy.experimental_local_results(v)[0], next(batches))
                break
        with strategy.scope():
            model._symbolic_build(data_batch=data_batch)
        built.append(True)

    @tf.function
    def step(batch):
        logs = strategy.run(model.train_step, args=(batch,))
        return tf.nest.map_structure(lambda v: strategy.experimental_local_results(v)[0], logs)

    model._maybe_symbolic_build = build
    model.train_function = lambda iterator: step(next(iterator))


def _worker(strategy) -> Worker:
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return Worker()
    cluster = resolver.cluster_spec().as_dict()
    chief = resolver.task_type == "chief" or ("chief" not in cluster and resolver.task_id == 0)
    return Worker(resolver.task_id, sum(len(v) for v in cluster.values()), chief)


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


def build_model(cfg: TrainConfig, member: int, steps_per_epoch: int) -> keras.Model:
    """Member ``member``'s training view (both heads, (batch, 11)), compiled with DigitLoss and Adam on the
    one-cycle schedule over ``cfg.epochs * steps_per_epoch`` steps: what each run trains."""
    seed = cfg.seed * 100 + member
    kwargs = {"cnn": dict(width=cfg.width), "mlp": dict(hidden=cfg.hidden, dropout=cfg.dropout)}.get(cfg.arch, {})
    model = zoo.training_view(zoo.build(cfg.arch, seed=seed, **kwargs))  # (batch, 11): both heads
    total = max(1, cfg.epochs * steps_per_epoch)
    warm = int(cfg.warmup * total)
    schedule = keras.optimizers.schedules.CosineDecay(
        cfg.lr / 10, decay_steps=max(1, total - warm), warmup_target=cfg.lr, warmup_steps=warm, alpha=0.01)
    model.compile(
        optimizer=keras.optimizers.Adam(schedule),
        loss=DigitLoss(label_smoothing=cfg.label_smoothing),
        metrics=[accuracy],
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


def _copy_weights(source, target: keras.Model) -> None:
    """Fine-tuning's start: every layer of ``target`` that ``source`` has by name takes its weights (a
    model saved without a digit head keeps ``target``'s freshly initialized one)."""
    have = {layer.name: layer for layer in source.layers}
    for layer in target.layers:
        if layer.weights and layer.name in have:
            layer.set_weights(have[layer.name].get_weights())
        elif layer.weights:
            log.warning("%s has no layer %r: it starts from its initial weights", getattr(source, "name", "the model"),
                        layer.name)


def train_member(
    cfg: TrainConfig, train, val, ckpt_dir: Path, member: int = 0, resume: bool = False,
    deadline: float | None = None, on_epoch_end: EpochHook | None = None, init_from=None,
    pools: Pools | None = None,
) -> RunResult:
    """Train one model, checkpointing each epoch into ``ckpt_dir``; resume from it if asked. ``pools``
    are the non-digits and captures mixed into each batch (see :func:`epoch_dataset`)."""
    (x_tr, y_tr), (x_va, y_va) = train, val
    strategy = _strategy(cfg)
    steps = len(x_tr) // cfg.batch_size if len(x_tr) >= cfg.batch_size else 1
    if cfg.dry_run:
        steps = min(steps, 3)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    state = new_state(cfg, member)
    with strategy.scope():
        if resume and (ckpt_dir / "state.json").exists():
            state = read_state(ckpt_dir)
            if state.finished:
                return RunResult(load_checkpoint(ckpt_dir / state.best_file), strategy.num_replicas_in_sync,
                                 state.history, state.train_seconds, state.epochs_done, False)
            model = load_checkpoint(ckpt_dir / state.last_file)
            log.info("resuming member %d after epoch %d", member, state.epochs_done)
        else:
            model = build_model(cfg, member, steps)
            if init_from is not None:
                _copy_weights(load_model(init_from), model)
    if cfg.distribute == "multiworker":
        _for_multiworker(model, strategy)
    # Validation runs the Keras model directly (its shipped form, sharing the weights): no conversion, ever,
    # inside the epoch loop.
    predictor = Predictor(zoo.shipped_view(model), backend="tf")
    x_t, y_t = tf.constant(x_tr), tf.constant(y_tr)
    pools = (pools or Pools()).on_device()
    budget = TimeBudget(deadline)
    progress = Progress(cfg.epochs, steps)
    stopped = False
    for epoch in range(state.epochs_done, cfg.epochs):
        ds = epoch_dataset(x_t, y_t, cfg, epoch, pools).take(steps)
        t0 = time.perf_counter()
        hist = model.fit(ds, initial_epoch=epoch, epochs=epoch + 1, verbose=0, shuffle=False,
                         callbacks=[progress, budget, keras.callbacks.TerminateOnNaN()])
        fit_seconds, t0 = time.perf_counter() - t0, time.perf_counter()
        try:
            if not np.isfinite(hist.history["loss"][-1]):
                raise ModelOutputError(f"loss {hist.history['loss'][-1]}")
            probs = predictor.predict_proba(x_va)  # NaN weights show here even when the last loss was finite
        except ModelOutputError as e:  # never checkpoint, nor ship, a diverged model
            raise TrainingError(f"training diverged in epoch {epoch + 1} (lr {cfg.lr:g}): the model's numbers "
                                f"became NaN or infinite; try a lower --lr. Checkpoints so far stay in {ckpt_dir}"
                                ) from e
        row = {"epoch": epoch + 1, "loss": float(hist.history["loss"][-1]),
               "accuracy": float(hist.history["accuracy"][-1]), "val_loss": nll(probs, y_va),
               "val_accuracy": float((probs.argmax(1) == y_va).mean()), "seconds": round(fit_seconds, 3),
               # Where the epoch's time went (bench/train_speed.py --breakdown): its first step, validation.
               "first_step_seconds": round(progress.first_step or 0.0, 3),
               "validation_seconds": round(time.perf_counter() - t0, 3)}
        progress.epoch_line(row)
        state.record(row)
        t0 = time.perf_counter()
        save_epoch(model, ckpt_dir, state)
        row["checkpoint_seconds"] = round(time.perf_counter() - t0, 3)  # written with the next state
        if on_epoch_end is not None:
            on_epoch_end(epoch + 1, predictor.model)  # the shipped form, e.g. for the benchmark's test evaluation
        if budget.spent:
            log.info("time budget reached after epoch %d; keeping the best epoch", epoch + 1)
            stopped = True
            break
    state.finished = True
    write_state(ckpt_dir, state)
    best_model = model if state.best_epoch == state.epochs_done else load_checkpoint(ckpt_dir / state.best_file)
    return RunResult(best_model, strategy.num_replicas_in_sync, state.history, state.train_seconds,
                     state.epochs_done, stopped)


# ----------------------------------------------------------------------------------------- the run


def final_model(models: list[keras.Model]) -> keras.Model:
    """The model for ``model.keras``, in the shipped form of the output contract: uncompiled (no optimizer
    state), built from Keras's own layers only (loads without digitnet), one model or the average of several."""
    from .models.layers import portable_config

    copies = []
    for i, m in enumerate(models):
        config = portable_config(m.get_config())
        if len(models) > 1:
            config["name"] = f"member{i}"
        c = keras.Model.from_config(config)
        c.set_weights(m.get_weights())
        copies.append(c)
    return zoo.shipped_view(copies[0]) if len(copies) == 1 else zoo.ensemble(copies)


def members_to_keep(member_logits: list[np.ndarray], y_val: np.ndarray) -> int:
    """How many members (first ones first) an ensemble whose last member the time budget cut short keeps: all,
    unless averaging that member's (n, 10) validation logits in lowers validation accuracy (a tie keeps it).
    A member stopped a few epochs into its one-cycle schedule can be far weaker than the rest (98.84% against
    99.44-99.58%, see docs/PERFORMANCE.md)."""
    if len(member_logits) < 2:
        return len(member_logits)

    def accuracy_of(logits):  # the ensemble averages its members' logits
        return float((np.mean(logits, axis=0).argmax(1) == y_val).mean())

    n = len(member_logits)
    return n - 1 if accuracy_of(member_logits) < accuracy_of(member_logits[:-1]) else n


def calibrate_model(model: keras.Model, x_val: np.ndarray, y_val: np.ndarray
                    ) -> tuple[keras.Model, dict, np.ndarray]:
    """The one calibration step, on validation data only: fit the temperature on the raw logits, put it
    into the model, then choose the low-confidence threshold on the calibrated probabilities and the
    digit-score threshold on the validation digits' scores.

    Returns the calibrated model (same weights), the ``calibration`` section of metrics.json, and the
    calibrated model's (n, 10) validation probabilities.
    """
    out = Predictor(model, backend="tf").run(x_val, ("digit_score", "logits"))  # logits before any temperature
    temperature = fit_temperature(out["logits"], y_val)
    model = zoo.with_temperature(model, temperature)
    probs = softmax(out["logits"], temperature)  # what the calibrated model answers, without running it again
    scores = digit_score_threshold(out["digit_score"]) if zoo.has_digit_head(model) else {}
    return model, {**calibrate(probs, y_val), "temperature": round(temperature, 6), **scores,
                   "validation_ece": {"before": ece(softmax(out["logits"]), y_val), "after": ece(probs, y_val)}}, probs


def run_config_path(out_dir: str | os.PathLike) -> Path:
    return Path(out_dir) / "checkpoint" / "run.json"


def load_run_config(out_dir: str | os.PathLike) -> TrainConfig:
    """The config of a run, to resume it."""
    import json

    path = run_config_path(out_dir)
    if not path.is_file():
        raise CheckpointError(f"{out_dir} holds no run to resume ({path} is missing)")
    try:
        return TrainConfig.from_json(json.loads(path.read_text()))
    except (ValueError, TypeError) as e:  # bad JSON, or a ConfigError naming the field
        raise CheckpointError(f"{path} is corrupt: {e}") from e


def train(
    cfg: TrainConfig, out_dir: str | os.PathLike, *, resume: bool = False, data_dir=None, cache_dir=None,
    on_epoch_end: EpochHook | None = None, init_from: str | os.PathLike | None = None,
) -> dict:
    """Train ``cfg`` into the model directory ``out_dir`` and return its metrics (also ``metrics.json``).

    With ``resume=True`` a run killed at any point continues from its last complete epoch. With
    ``init_from`` a saved model's weights are the starting point (fine-tuning).
    """
    import shutil

    from .data.datasets import load

    started = time.perf_counter()
    cfg.validate()
    # A multi-worker strategy first: it must exist before TensorFlow's runtime starts.
    worker = _worker(_strategy(cfg)) if cfg.distribute == "multiworker" else Worker()
    if cfg.deterministic:
        keras.utils.set_random_seed(cfg.seed)
        tf.config.experimental.enable_op_determinism()
    chief_dir = Path(out_dir)
    out = chief_dir if worker.chief else chief_dir / f".worker-{worker.index}"  # a non-chief's scratch copy
    if not worker.chief:
        shutil.rmtree(out, ignore_errors=True)
        if resume:  # start from the chief's checkpoints (a shared filesystem), as the chief does
            shutil.copytree(chief_dir / "checkpoint", out / "checkpoint")
    (out / "checkpoint").mkdir(parents=True, exist_ok=True)
    if not resume:
        atomic_write_json(run_config_path(out), cfg.to_json())

    phases, t = {}, time.perf_counter()  # seconds per phase of the run, for metrics.json
    (x_train, y_train), (x_test, y_test), info = load(cfg.dataset, data_dir, cache_dir)
    train_split, val_split = split_validation(x_train, y_train, min(cfg.val_size, len(x_train) // 5 or 1))
    if cfg.dry_run:  # a few batches and small evaluations: checks the whole path in seconds
        val_split = (val_split[0][:256], val_split[1][:256])
        x_test, y_test = x_test[:512], y_test[:512]

    spent = 0.0
    if resume:
        states = {m: read_state(out / "checkpoint" / f"member-{m}") for m in range(cfg.ensemble)
                  if (out / "checkpoint" / f"member-{m}" / "state.json").exists()}
        # Members train one after another: resumable checkpoints are members 0..k-1, all but the last
        # finished. A gap, or a finished run with no checkpoint left, means checkpoints were deleted, and
        # retraining from scratch would silently overwrite model.keras.
        members = sorted(states)
        in_order = members == list(range(len(members))) and all(states[m].finished for m in members[:-1])
        if not in_order or (not members and (out / "model.keras").exists()):
            gaps = sorted(set(range(max(members, default=0) + 1)) - set(members))
            what = (f"the checkpoint of member {gaps[0]} ({out / 'checkpoint' / f'member-{gaps[0]}' / 'state.json'}) "
                    "is missing" if gaps else "a member started before the one before it finished")
            raise CheckpointError(f"cannot resume {out}: {what}; train into a new --out instead")
        spent = sum(state.train_seconds for state in states.values())
    deadline = started + cfg.time_budget - spent if cfg.time_budget else None

    phases["data"], t = time.perf_counter() - t, time.perf_counter()
    pools = make_pools(cfg, train_split)
    phases["pools"], t = time.perf_counter() - t, time.perf_counter()
    results = []
    for member in range(cfg.ensemble):
        r = train_member(cfg, train_split, val_split, out / "checkpoint" / f"member-{member}", member, resume,
                         deadline, on_epoch_end, init_from, pools)
        results.append(r)
        if deadline is not None and time.perf_counter() > deadline:
            break
    trained = results  # every member trained, for the report; the model averages those kept
    if len(results) > 1 and results[-1].stopped_early:  # only then is a member in doubt
        logits = [Predictor(zoo.shipped_view(r.model), backend="tf").run(val_split[0], ("logits",))["logits"]
                  for r in results]  # (n, 10) each
        results = results[:members_to_keep(logits, val_split[1])]
        if len(results) < len(trained):
            log.warning("member %d, cut short by the time budget, lowered validation accuracy: the model averages "
                        "the first %d", len(trained) - 1, len(results))
    phases["members"], t = time.perf_counter() - t, time.perf_counter()  # build, epochs, validation, checkpoints
    model, calibration, val_probs = calibrate_model(final_model([r.model for r in results]), *val_split)
    save_model(model, out / "model.keras")
    phases["calibration"], t = time.perf_counter() - t, time.perf_counter()

    # No conversion: the report scores the Keras model itself, with the thresholds just chosen.
    predictor = Predictor(model, {"calibration": calibration}, backend="tf")
    # Reported only (the test set chooses nothing): what the temperature did to the test set's calibration.
    calibration["test_ece_before"] = ece(softmax(predictor.run(x_test, ("logits",))["logits"]), y_test)
    phases["test"], t = time.perf_counter() - t, time.perf_counter()  # this pass, then evaluate()'s scoring
    extra = {
        "model": {"arch": cfg.arch, "name": model.name, "parameters": int(model.count_params()),
                  "members": len(results), "file": "model.keras",
                  "trained_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
        "validation": {"accuracy": float((val_probs.argmax(1) == val_split[1]).mean()), "n": len(val_split[1])},
        "calibration": calibration,
        "training": {
            "seconds": round(sum(r.train_seconds for r in trained), 2),
            "wall_seconds": round(time.perf_counter() - started, 2),
            "epochs": [r.epochs_run for r in trained],
            "members_left_out": len(trained) - len(results),  # cut short by the budget, and worse on validation
            "replicas": max(r.replicas for r in trained),
            "stopped_by_time_budget": any(r.stopped_early for r in trained) or len(trained) < cfg.ensemble,
            "config": cfg.to_json(),
            "history": [r.history for r in trained],
        },
        "dataset": {"train": len(train_split[1]), "validation": len(val_split[1])},
    }
    if cfg.distribute == "multiworker":  # every worker's trainable weights are the same: its fingerprint shows it
        extra["training"]["cluster"] = {"workers": worker.count, "task": worker.index, "chief": worker.chief,
                                        "weights_sha256": weights_sha256(model)}
    metrics = evaluate(predictor, (x_test, y_test), info, out, extra=extra, history=results[0].history)
    phases["test"] += metrics["test"]["seconds"]
    phases["report"] = time.perf_counter() - t - metrics["test"]["seconds"]  # metrics.json and the plots
    metrics["training"]["phases"] = {k: round(v, 3) for k, v in phases.items()}
    metrics["training"]["wall_seconds"] = round(time.perf_counter() - started, 2)
    atomic_write_json(out / "metrics.json", metrics)  # again, with the report's own time
    if not worker.chief:
        shutil.rmtree(out, ignore_errors=True)
    return metrics


def weights_sha256(model: keras.Model) -> str:
    """The sha256 of a model's trainable weights, in order: equal on replicas that stayed in sync."""
    import hashlib

    h = hashlib.sha256()
    for w in model.trainable_weights:
        h.update(np.ascontiguousarray(keras.ops.convert_to_numpy(w), np.float32).tobytes())
    return h.hexdigest()
