"""Every choice and default digitnet offers, in one TensorFlow-free module: the CLI's help is built from it.

Training presets were measured on a 2-core CPU (see docs/PERFORMANCE.md). Change a default here and
the library, ``digitnet --help`` and the server all follow.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field

from .errors import ConfigError

# ------------------------------------------------------------------------------------- the data form

IMAGE_SIZE = 28  # MNIST: 28x28 grey images, white ink on black
PIXELS = IMAGE_SIZE * IMAGE_SIZE  # 784: the tutorial's flattened input
NUM_CLASSES = 10  # digits 0-9

# ------------------------------------------------------------------------------------------ inference

BACKENDS = ("tflite", "onnx", "tf", "tflite-int8")
DEFAULT_BACKEND = "tflite"  # 16x lower single-image latency than tf; see docs/PERFORMANCE.md
BACKEND_HELP = {
    "tflite": "the LiteRT interpreter on a float32 conversion (no TensorFlow once cached)",
    "onnx": "ONNX Runtime on a tf2onnx conversion",
    "tf": "the Keras model itself, as one traced tf.function",
    "tflite-int8": "full-integer LiteRT: twice the batch throughput, probabilities in steps of 1/256",
}
# Images per runtime call, in every backend and export: bounds memory, and 256 keeps a chunk's activations in
# cache: 10k-image throughput at 256 vs 2048 was tflite 33.2k vs 25.5k, onnx 38.4k vs 28.0k, tf 31.8k vs 29.6k,
# tflite-int8 53.0k vs 47.9k img/s (2026-11-28, 2 cores).
CHUNK = 256
OUTPUTS = ("digit_score", "logits", "probabilities")  # every runtime's and export's named outputs, sorted
DEFAULT_MIN_CONFIDENCE = 0.5  # used only when a model carries no calibrated value
DEFAULT_MIN_DIGIT_SCORE = 0.0  # a model with no calibrated digit-score threshold rejects nothing
MAX_FALSE_REJECTION = 0.003  # min_digit_score is the highest threshold rejecting at most this of validation digits
IG_STEPS = 32  # integrated-gradients steps per explained image (see explain.py)
TTA_ANGLES = (-6.0, 6.0)  # test-time augmentation: small rotations inside the training range (+-10 deg)

# ------------------------------------------------------------------------------------------- exports

FORMATS = ("savedmodel", "tflite", "tflite-int8", "onnx")
FORMAT_HELP = {
    "savedmodel": "TensorFlow Serving's versioned layout, DIR/1/",
    "tflite": "DIR/model.tflite, float32",
    "tflite-int8": "DIR/model.tflite, full-integer",
    "onnx": "DIR/model.onnx, opset 17",
}
INT8_CALIBRATION_SIZE = 500  # training images (never test images) that calibrate int8 quantization

# ------------------------------------------------------------------------------------------- serving


@dataclass(frozen=True)
class Limits:
    """What one ``digitnet serve`` process accepts and how much it does at once."""

    max_upload_bytes: int = 5 * 1024 * 1024  # per request body
    max_pixels: int = 25_000_000  # decoded image size
    max_batch: int = 64  # files per batch request
    workers: int = 2  # predictions running at once
    max_queue: int = 128  # requests waiting for a worker before 503
    timeout_s: float = 30.0  # per request, waiting included: a batch shares one deadline
    max_response_bytes: int = 4 * 1024 * 1024  # a batch answer stops adding results past this
    request_timeout_s: float = 20.0  # a connection must send a whole request (headers and body) within this


SWAP_POLL_S = 2.0  # a server serving the default model looks for a new personal version this often
SWAP_CHECK_IMAGES = 1000  # MNIST validation images a new version must read ...
SWAP_MIN_ACCURACY = 0.99  # ... at least this well before it is swapped in

SERVE_HOST = "127.0.0.1"  # loopback only unless the user says otherwise
SERVE_PORT = 8000
SERVE_PROCESSES = 1  # `serve --processes`: server processes on the one port, each with its own model

# `predict --jobs`: a process pool preprocesses the files only when there are more than this many (a pool
# costs about 0.3 s to start: with 2 jobs, 33 to 64 one-megapixel photos took the same time either way, 128
# took 0.25 s less; one file keeps its fast start), and hands the model this many files' marks at a time.
POOL_MIN_FILES = 32
POOL_BATCH_FILES = 64
POOL_TASK_FILES = 8  # files per task sent to a worker: fewer round trips, still an even spread


def default_jobs() -> int:
    """The cores this process may use: `predict --jobs`'s default."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1

# --------------------------------------------------------------------------------- personalization

SAMPLES_PER_LABEL = 50  # the store's caps: per digit ...
SAMPLES_TOTAL = 500  # ... and in all
MIN_SAMPLES_PER_LABEL = 3  # personalize refuses a label with fewer (labels with none are kept by the replay)
PERSONAL_VERSIONS_KEPT = 5  # the newest personal versions kept; older ones are removed


@dataclass(frozen=True)
class PersonalizeConfig:
    """Fine-tuning with rehearsal: the user's samples, augmented, mixed with replayed MNIST and non-digits."""

    epochs: int = 6
    steps_per_epoch: int = 40
    batch_size: int = 128
    user_share: float = 0.3  # of each taught digit's examples: the user's samples (augmented anew each time)
    negatives: float = 0.1  # of each batch: procedural non-digits, so that rejection is not forgotten
    lr: float = 2e-4  # peak of a short one-cycle schedule: 25 times below training's, the base must not drift
    holdout: float = 0.25  # of each label's samples, kept out of training to measure before/after
    min_val_accuracy: float = 0.995  # MNIST validation accuracy a version must keep (see personalize.gate) ...
    max_val_drop: float = 0.002  # ... or, if lower, its base's less this: about 10 of the 5,128 validation digits
    seed: int = 0


# ------------------------------------------------------------------------------------------ tutorial

TUTORIAL_LAYOUT = {"l0": PIXELS, "l1": 100, "l2": 100, "l3": 60, "l4": NUM_CLASSES}  # the tutorial's network
# The tutorial's train_parameters() defaults, and the seed `digitnet tutorial` uses.
TUTORIAL = {"learning_rate": 0.005, "epochs": 20, "batch_size": 1000, "seed": 1}

# ------------------------------------------------------------------------------------------ training

VAL_SIZE = 5000  # training digits held out for validation (whole writers, for MNIST): every run's and check's
PIPELINE_THREADS = 2  # tf.data threads that build (and augment) training batches, and batches prefetched
POOLS_CACHED = 16  # runs' non-digit and capture pools kept in $DIGITNET_HOME/cache/pools (the newest)

ARCHS = ("tutorial", "mlp", "cnn")
# cnn: the share of the digit-score loss's gradient that reaches the shared convolutions (a quarter: most of
# the digits' accuracy back, most of the rejection kept; docs/PERFORMANCE.md).
SCORE_GRADIENT = 0.25
DISTRIBUTIONS = ("mirrored", "multiworker")


@dataclass(frozen=True)
class Augment:
    """On-graph augmentation strengths (see ``digitnet.augment``)."""

    rotate: float = 10.0  # max degrees either way
    zoom: float = 0.10  # max relative scale change
    shift: float = 2.0  # max pixels in x and in y
    elastic: float = 0.0  # elastic displacement strength in pixels (0 = off)
    elastic_sigma: float = 4.0  # smoothness of the elastic field in pixels
    shear: float = 0.15  # max horizontal shear (slant), as a fraction of the height
    # Capture damage (low resolution, pens, blur, fading ink) is the captures pool's: data/captures.py.

    @property
    def active(self) -> bool:
        return any((self.rotate, self.zoom, self.shift, self.elastic, self.shear))


NO_AUGMENT = Augment(**{f.name: 0 for f in dataclasses.fields(Augment) if f.name != "elastic_sigma"})


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
    clean_epochs: int = 0  # the last this many epochs train on un-augmented images (all of a shorter run)
    val_size: int = VAL_SIZE
    negatives: float = 0.15  # share of each batch that is a procedural non-digit (data/negatives.py); 0 = none
    captures: float = 0.1  # share of each batch that is a degraded capture of a digit (data/captures.py)
    pool: int = 3000  # non-digits and captures generated per run (each), augmented anew every time they are drawn
    ensemble: int = 1  # number of members averaged
    time_budget: float | None = None  # seconds for the whole run; stop and keep the best model
    deterministic: bool = False
    dry_run: bool = False
    distribute: str | None = None  # None, "mirrored" or "multiworker" (the cluster in $TF_CONFIG)

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, d: dict) -> TrainConfig:
        """Rebuild (and validate) a config saved with :meth:`to_json`; :class:`ConfigError` names what is wrong."""
        if not isinstance(d, dict):
            raise ConfigError(f"a training config must be a JSON object, got {type(d).__name__}")
        unknown = sorted(set(d) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ConfigError(f"unknown training options {unknown}")
        d = dict(d)
        augment = d.get("augment", {})
        if not isinstance(augment, dict) or set(augment) - {f.name for f in dataclasses.fields(Augment)}:
            raise ConfigError(f"augment must be an object of {[f.name for f in dataclasses.fields(Augment)]}, "
                              f"got {augment!r}")
        d["augment"] = Augment(**augment)
        if not isinstance(d.get("hidden", []), list | tuple):
            raise ConfigError(f"hidden must be a list of layer widths, got {d['hidden']!r}")
        d["hidden"] = tuple(d.get("hidden", (800, 800)))
        return cls(**d).validate()

    def validate(self) -> TrainConfig:
        """Raise :class:`ConfigError` for values of the wrong type or that no run can use; return self."""
        import math

        for f in dataclasses.fields(self):
            value, kinds = getattr(self, f.name), _FIELD_TYPES[f.name]
            if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
                raise ConfigError(f"{f.name} must be {' or '.join(k.__name__ for k in kinds)}, got {value!r}")
            if isinstance(value, float) and not math.isfinite(value):
                raise ConfigError(f"{f.name} must be finite, got {value!r}")
        if not all(isinstance(h, int) and h >= 1 for h in self.hidden):
            raise ConfigError(f"hidden must be positive layer widths, got {self.hidden!r}")
        if self.lr <= 0 or not 0 <= self.label_smoothing < 1 or not 0 <= self.warmup <= 1 or not 0 <= self.dropout < 1:
            raise ConfigError(f"need lr > 0, label_smoothing and dropout in [0, 1), warmup in [0, 1]; got "
                              f"lr={self.lr}, label_smoothing={self.label_smoothing}, dropout={self.dropout}, "
                              f"warmup={self.warmup}")
        if self.clean_epochs < 0:
            raise ConfigError(f"clean_epochs must be 0 or more, got {self.clean_epochs}")
        if self.time_budget is not None and self.time_budget <= 0:
            raise ConfigError(f"time_budget must be positive seconds, got {self.time_budget}")
        if self.arch not in ARCHS:
            raise ConfigError(f"unknown architecture {self.arch!r}; choose one of {', '.join(ARCHS)}")
        if self.epochs < 1 or self.batch_size < 1 or self.ensemble < 1 or self.width < 1 or self.val_size < 1:
            raise ConfigError(f"epochs, batch_size and ensemble must be at least 1, got {self.epochs}, "
                              f"{self.batch_size} and {self.ensemble}")
        if not (self.negatives >= 0 and self.captures >= 0 and self.negatives + self.captures < 1) or self.pool < 1:
            raise ConfigError(f"negatives and captures must be shares of a batch (together under 1) and pool at "
                              f"least 1, got {self.negatives}, {self.captures} and {self.pool}")
        if self.distribute not in (None, "none", *DISTRIBUTIONS):
            raise ConfigError(f"unknown distribution {self.distribute!r}; choose one of {', '.join(DISTRIBUTIONS)} "
                              "or none")
        if self.distribute == "multiworker" and self.time_budget is not None:
            # Each worker's clock would stop it at a different step, and the others would wait for it forever.
            raise ConfigError("a time budget cannot be used with --distribute multiworker: every worker must run the "
                              "same steps; give --epochs instead")
        return self


_NUM = (int, float)
_FIELD_TYPES = {  # what TrainConfig.validate accepts per field (run.json is read back through it)
    "arch": (str,), "dataset": (str,), "epochs": (int,), "batch_size": (int,), "lr": _NUM, "warmup": _NUM,
    "label_smoothing": _NUM, "seed": (int,), "width": (int,), "hidden": (tuple,), "dropout": _NUM,
    "augment": (Augment,), "clean_epochs": (int,), "val_size": (int,), "negatives": _NUM, "captures": _NUM,
    "pool": (int,), "ensemble": (int,), "time_budget": (*_NUM, type(None)),
    "deterministic": (bool,), "dry_run": (bool,), "distribute": (str, type(None)),
}

# Presets per architecture: only what differs from TrainConfig's defaults.
PRESETS: dict[str, dict[str, dict]] = {
    "cnn": {
        "fast": dict(epochs=1, lr=7e-3, augment=NO_AUGMENT, pool=1000),
        # The last epoch without augmentation: +0.02 points of validation, +0.06 of test over 5 seeds, more
        # letters rejected, no time added (docs/PERFORMANCE.md).
        "default": dict(epochs=9, clean_epochs=1),
        # Two 1.5x-wide CNNs, 12 epochs each (the last un-augmented), averaged; stops within 14 minutes whatever
        # happens. Fewer, wider members beat four default-size ones on validation in less time (docs/PERFORMANCE.md).
        "best": dict(epochs=12, clean_epochs=1, ensemble=2, width=48, time_budget=840.0),
    },
    "mlp": {
        # One wide hidden layer at batch 256: the most accuracy per second on 2 cores (bench/sweep.py).
        "fast": dict(epochs=2, hidden=(1024,), batch_size=256, augment=NO_AUGMENT, pool=1000),
        "default": dict(epochs=5, hidden=(1024,), batch_size=256, augment=NO_AUGMENT, pool=1000),
        "best": dict(epochs=30, hidden=(1200, 1200), dropout=0.3),
    },
    "tutorial": {"fast": dict(epochs=5), "default": dict(epochs=20), "best": dict(epochs=40)},
}
PRESET_NAMES = ("fast", "default", "best")
DEFAULT_ARCH, DEFAULT_PRESET = "cnn", "default"
# What each cnn preset reaches (measured; docs/PERFORMANCE.md), for the help text. Times are whole processes on
# the 2-core machines measured: Intel (fast 16 s), AMD EPYC (fast 22-33 s, default 143-187 s at 170k parameters,
# best 650-747 s, the high ends in a slow spell) and a Zen 4 AMD EPYC (with the input crop: fast 19-21 s, default
# 110-111 s, best 478-521 s; with the 5x5 first convolution: fast 19-27 s, default 108-139 s, best 582-596 s).
PRESET_NOTES = {
    ("cnn", "fast"): "~99.0% in 15-35 s",
    ("cnn", "default"): "~99.6% in 1.5-3.5 min",
    ("cnn", "best"): "~99.7% (99.68-99.71% test) in 10-13 min",
    ("mlp", "default"): "~98.7% in ~16 s",
}


def make_config(arch: str = DEFAULT_ARCH, preset: str = DEFAULT_PRESET, **overrides) -> TrainConfig:
    """A config from a preset, with explicit overrides (``None`` values are ignored)."""
    if arch not in PRESETS:
        raise ConfigError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHS)}")
    if preset not in PRESETS[arch]:
        raise ConfigError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS[arch])}")
    values = {**PRESETS[arch][preset], **{k: v for k, v in overrides.items() if v is not None}}
    unknown = sorted(set(values) - {f.name for f in dataclasses.fields(TrainConfig)})
    if unknown:
        raise ConfigError(f"unknown training options {unknown}")
    return TrainConfig(arch=arch, **values).validate()


def describe_preset(arch: str, preset: str) -> str:
    """What a preset sets, in words: ``"epochs=1, lr=0.007, augment=off"``."""
    parts = []
    for key, value in PRESETS[arch][preset].items():
        if isinstance(value, Augment):
            value = "off" if not value.active else ", ".join(
                f"{f.name}={getattr(value, f.name):g}" for f in dataclasses.fields(Augment)
                if getattr(value, f.name) != getattr(Augment(), f.name))
        elif isinstance(value, tuple):
            value = "x".join(str(v) for v in value)
        elif isinstance(value, float):
            value = f"{value:g}"
        parts.append(f"{key}={value}")
    return ", ".join(parts)


def _fmt(value) -> str:
    if value is None:
        return "none"
    return f"{value:g}" if isinstance(value, float) else str(value)


def default_for(name: str) -> str:
    """A training option's default for the help text: TrainConfig's value, plus the presets that differ."""
    tables = [values for presets in PRESETS.values() for values in presets.values()]
    if all(name in values for values in tables):
        return "set by --arch and --preset, listed below"
    base = getattr(TrainConfig(), name)
    differ = [f"{arch} {preset}: {_fmt(values[name])}" for arch, presets in PRESETS.items()
              for preset, values in presets.items() if name in values and values[name] != base]
    return _fmt(base) + (f"; {', '.join(differ)}" if differ else "")
