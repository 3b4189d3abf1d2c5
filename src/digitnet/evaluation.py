"""Scores and reports: accuracy, loss, per-class precision/recall/F1, confusion matrix, plots."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

import numpy as np

from . import __version__


def nll(probs: np.ndarray, labels: np.ndarray) -> float:
    """Mean negative log-likelihood of the true labels (the cross-entropy loss, unsmoothed)."""
    if len(labels) == 0:
        return 0.0
    return float(-np.log(np.clip(probs[np.arange(len(labels)), labels], 1e-7, 1.0)).mean())


def scores(probs: np.ndarray, labels: np.ndarray, classes: tuple[str, ...]) -> dict:
    """Metrics of (n, k) probabilities against integer labels (n,)."""
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    k = len(classes)
    pred = probs.argmax(axis=1)
    p, r, f1, support = precision_recall_fscore_support(labels, pred, labels=range(k), zero_division=0)
    return {
        "accuracy": float((pred == labels).mean()) if len(labels) else 0.0,
        "loss": nll(probs, labels),
        "n": int(len(labels)),
        "errors": int((pred != labels).sum()),
        "per_class": {
            classes[i]: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f1[i]),
                         "support": int(support[i])}
            for i in range(k)
        },
        "confusion_matrix": confusion_matrix(labels, pred, labels=range(k)).tolist(),  # rows: true
    }


def versions() -> dict:
    import keras
    import sklearn
    import tensorflow as tf

    return {"digitnet": __version__, "python": platform.python_version(), "tensorflow": tf.__version__,
            "keras": keras.__version__, "numpy": np.__version__, "scikit-learn": sklearn.__version__}


def write_report(
    out_dir: str | os.PathLike, metrics: dict, images: np.ndarray, labels: np.ndarray, probs: np.ndarray,
    classes: tuple[str, ...], history: list[dict] | None = None,
) -> dict[str, Path]:
    """Write ``metrics.json`` and the PNG plots into ``out_dir``; return their paths."""
    from . import plots

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"metrics": out / "metrics.json"}
    tmp = out / ".metrics.json.tmp"
    tmp.write_text(json.dumps(metrics, indent=2) + "\n")
    os.replace(tmp, paths["metrics"])
    cm = np.array(metrics["test"]["confusion_matrix"])
    paths["confusion_matrix"] = plots.confusion_matrix(cm, classes, out / "confusion_matrix.png")
    paths["misclassified"] = plots.misclassified(images, labels, probs, classes, out / "misclassified.png")
    if history:
        paths["learning_curves"] = plots.learning_curves(history, out / "learning_curves.png")
    return paths
