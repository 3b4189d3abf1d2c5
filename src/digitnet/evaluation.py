"""Score a predictor on a test set and write the report (metrics.json and plots); calibrate its thresholds."""

from __future__ import annotations

import os
import platform
import time
from importlib import metadata
from pathlib import Path

import numpy as np

from . import config
from ._version import __version__
from .fileio import atomic_write_json
from .presets import MAX_FALSE_REJECTION


def nll(probs: np.ndarray, labels: np.ndarray) -> float:
    """Mean negative log-likelihood of the true labels (the cross-entropy loss, unsmoothed)."""
    if len(labels) == 0:
        return 0.0
    return float(-np.log(np.clip(probs[np.arange(len(labels)), labels], 1e-7, 1.0)).mean())


def reliability_bins(probs: np.ndarray, labels: np.ndarray, bins: int = 15):
    """Per equal-width confidence bin: how many answers, their accuracy and their mean confidence
    (three (bins,) arrays; NaN where a bin is empty). What ECE and the reliability diagram are made of."""
    conf, correct = probs.max(axis=1), probs.argmax(axis=1) == labels
    which = np.minimum((conf * bins).astype(int), bins - 1)  # (n,) bin of each answer
    counts = np.bincount(which, minlength=bins)
    with np.errstate(invalid="ignore"):  # empty bins: 0 / 0 -> NaN, on purpose
        accuracy = np.bincount(which, weights=correct, minlength=bins) / counts
        confidence = np.bincount(which, weights=conf, minlength=bins) / counts
    return counts, accuracy, confidence


def ece(probs: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """Expected calibration error: the mean |accuracy - confidence| over equal-width confidence bins,
    weighted by how many answers fall in each (the usual 15 bins)."""
    if len(labels) == 0:
        return 0.0
    counts, accuracy, confidence = reliability_bins(probs, labels, bins)
    return float(np.nansum(counts * np.abs(accuracy - confidence)) / len(labels))


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = logits / temperature
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature T minimizing the NLL of softmax(logits / T) on held-out data (Guo et al., 2017).

    One scalar: it changes how confident the answers are, never which digit wins.
    """
    from scipy.optimize import minimize_scalar

    def loss(log_t: float) -> float:
        return nll(softmax(logits, float(np.exp(log_t))), labels)

    best = minimize_scalar(loss, bounds=(np.log(0.05), np.log(20.0)), method="bounded", options={"xatol": 1e-4})
    return float(np.exp(best.x))


def scores(probs: np.ndarray, labels: np.ndarray, classes: tuple[str, ...]) -> dict:
    """Metrics of (n, k) probabilities against integer labels (n,)."""
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    k = len(classes)
    pred = probs.argmax(axis=1)
    p, r, f1, support = precision_recall_fscore_support(labels, pred, labels=range(k), zero_division=0)
    return {
        "accuracy": float((pred == labels).mean()) if len(labels) else 0.0,
        "loss": nll(probs, labels),
        "ece": ece(probs, labels),  # 15 bins
        "n": int(len(labels)),
        "errors": int((pred != labels).sum()),
        "per_class": {
            classes[i]: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f1[i]),
                         "support": int(support[i])}
            for i in range(k)
        },
        "confusion_matrix": confusion_matrix(labels, pred, labels=range(k)).tolist(),  # rows: true
    }


def _dist_version(*names: str) -> str | None:
    for name in names:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return None


def versions() -> dict:
    """Library versions, read from the installed packages' metadata (no TensorFlow import)."""
    return {"digitnet": __version__, "python": platform.python_version(),
            "tensorflow": _dist_version("tensorflow-cpu", "tensorflow"), "keras": _dist_version("keras"),
            "numpy": np.__version__, "scikit-learn": _dist_version("scikit-learn")}


def calibrate(probs: np.ndarray, labels: np.ndarray, max_flagged_correct: float = 0.01) -> dict:
    """Pick ``min_confidence`` on validation data: the highest threshold that flags at most
    ``max_flagged_correct`` of the correct answers; report what share of the errors it flags."""
    conf, correct = probs.max(axis=1), probs.argmax(axis=1) == labels
    best = 0.0
    for t in np.round(np.arange(0.30, 0.995, 0.01), 2):
        if correct.any() and (correct & (conf < t)).sum() / correct.sum() <= max_flagged_correct:
            best = float(t)
    wrong = ~correct
    return {"min_confidence": best, "flagged_correct": float((correct & (conf < best)).sum() / max(correct.sum(), 1)),
            "flagged_errors": float((wrong & (conf < best)).sum() / max(wrong.sum(), 1)),
            "n": int(len(labels)), "rule": f"highest threshold flagging <= {max_flagged_correct:.0%} of correct "
                                           "validation answers"}


def digit_score_threshold(scores: np.ndarray, max_rejected: float = MAX_FALSE_REJECTION) -> dict:
    """Pick ``min_digit_score`` on validation *digits*: the highest threshold that rejects at most
    ``max_rejected`` of them (a score under the threshold is "not a digit")."""
    scores = np.sort(np.asarray(scores, np.float64).ravel())
    k = int(np.floor(max_rejected * len(scores)))  # at most k scores may lie under the threshold
    threshold = float(np.floor(scores[k] * 1e6) / 1e6) if len(scores) else 0.0  # rounded down: never more
    return {"min_digit_score": threshold,
            "validation_false_rejection": float((scores < threshold).mean()) if len(scores) else 0.0,
            "digit_score_rule": f"highest threshold rejecting <= {max_rejected:.1%} of validation digits"}


def default_report_dir(dataset_name: str) -> Path:
    """A new folder for one evaluation: ``$DIGITNET_HOME/reports/<time>-<dataset>``."""
    return config.reports_dir() / f"{time.strftime('%Y%m%d-%H%M%S')}-{Path(dataset_name).name}"


def evaluate(predictor, test: tuple[np.ndarray, np.ndarray], info, report_dir: str | os.PathLike, *,
             tta: bool = False, extra: dict | None = None, history: list[dict] | None = None) -> dict:
    """Score ``predictor`` on ``test`` = (uint8 images (n, 28, 28), labels (n,)) from the data set
    ``info`` (a ``DatasetInfo``), write the report into ``report_dir`` and return its metrics.

    ``extra`` adds sections to metrics.json (training adds "training", "validation"...; its "model"
    and "dataset" entries extend the defaults); ``history`` adds the learning curves.
    """
    x_test, y_test = test
    started = time.perf_counter()
    out = predictor.run(x_test, ("digit_score", "probabilities"))  # one pass; TTA averages its own views
    probs = predictor.predict_proba(x_test, tta=True) if tta else out["probabilities"]
    digit_scores = out["digit_score"]  # (n,)
    extra = dict(extra or {})
    metrics = {
        "model": {"file": str(predictor.path) if predictor.path else None, "backend": predictor.backend,
                  "tta": tta, **extra.pop("model", {})},
        # False rejection: test digits whose digit score falls under the model's threshold ("not a digit").
        "test": {**scores(probs, y_test, info.classes),
                 "false_rejection": float((digit_scores < predictor.min_digit_score).mean()) if len(y_test) else 0.0,
                 "seconds": round(time.perf_counter() - started, 3)},  # the scoring, not the report
        **{k: v for k, v in extra.items() if k != "dataset"},
        "dataset": {"name": info.name, "sha256": info.sha256, "classes": list(info.classes),
                    **extra.get("dataset", {}), "test": len(y_test)},
        "versions": versions(),
    }
    write_report(report_dir, metrics, x_test, y_test, probs, info.classes, history=history)
    return metrics


def write_report(
    out_dir: str | os.PathLike, metrics: dict, images: np.ndarray, labels: np.ndarray, probs: np.ndarray,
    classes: tuple[str, ...], history: list[dict] | None = None,
) -> dict[str, Path]:
    """Write ``metrics.json`` and the PNG plots into ``out_dir``; return their paths."""
    from . import plots

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"metrics": atomic_write_json(out / "metrics.json", metrics)}
    cm = np.array(metrics["test"]["confusion_matrix"])
    paths["confusion_matrix"] = plots.confusion_matrix(cm, classes, out / "confusion_matrix.png")
    paths["misclassified"] = plots.misclassified(images, labels, probs, classes, out / "misclassified.png")
    paths["reliability"] = plots.reliability(*reliability_bins(probs, labels), metrics["test"]["ece"],
                                             out / "reliability.png")
    if history:
        paths["learning_curves"] = plots.learning_curves(history, out / "learning_curves.png")
    return paths
