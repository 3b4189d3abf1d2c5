"""PNG plots for reports (matplotlib, headless). Imported only when a report is written."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np

from .fileio import atomic_write

matplotlib.use("Agg")  # no display needed, ever
import matplotlib.pyplot as plt  # noqa: E402


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    try:
        return atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=100, format="png"))
    finally:
        plt.close(fig)


def learning_curves(history: list[dict], path: Path) -> Path:
    epochs = [h["epoch"] for h in history]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax1.plot(epochs, [h["loss"] for h in history], "o-", label="train (with label smoothing)")
    ax1.plot(epochs, [h["val_loss"] for h in history], "o-", label="validation")
    ax1.set(xlabel="epoch", ylabel="loss", title="Loss")
    ax2.plot(epochs, [100 * h["accuracy"] for h in history], "o-", label="train")
    ax2.plot(epochs, [100 * h["val_accuracy"] for h in history], "o-", label="validation")
    ax2.set(xlabel="epoch", ylabel="accuracy (%)", title="Accuracy")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
        ax.legend()
    return _save(fig, path)


def confusion_matrix(cm: np.ndarray, classes: tuple[str, ...], path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(7, 6))
    # Log colour scale: the diagonal is ~1000, errors are ~1; both must stay visible.
    ax.imshow(np.log1p(cm), cmap="Blues")
    for i in range(len(cm)):
        for j in range(len(cm)):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=8,
                    color="white" if i == j else "black")
    ax.set(xticks=range(len(classes)), yticks=range(len(classes)), xticklabels=classes, yticklabels=classes,
           xlabel="predicted", ylabel="true", title=f"Confusion matrix ({cm.sum() - np.trace(cm)} errors)")
    return _save(fig, path)


def misclassified(images: np.ndarray, labels: np.ndarray, probs: np.ndarray, classes: tuple[str, ...],
                  path: Path, limit: int = 64) -> Path:
    """A grid of the most confident mistakes, each titled with its true and predicted label."""
    pred = probs.argmax(axis=1)
    wrong = np.flatnonzero(pred != labels)
    wrong = wrong[np.argsort(-probs[wrong, pred[wrong]])][:limit]
    cols = 8
    rows = max(1, -(-len(wrong) // cols))
    cell_h, cell_w = images.shape[1] + 12, images.shape[2] + 4  # room for two lines of text above each
    # One mosaic image and one axes: far faster than a subplot per digit.
    mosaic = np.full((rows * cell_h, cols * cell_w), 255.0)
    fig, ax = plt.subplots(figsize=(cols * 1.25, rows * 1.55 + 0.4))
    for k, i in enumerate(wrong):
        r, c = divmod(k, cols)
        y0, x0 = r * cell_h + 12, c * cell_w + 2
        mosaic[y0 : y0 + images.shape[1], x0 : x0 + images.shape[2]] = 255 - images[i]
        ax.text(x0 + images.shape[2] / 2, y0 - 1, f"true {classes[labels[i]]}\npred {classes[pred[i]]} "
                f"{probs[i, pred[i]]:.0%}", ha="center", va="bottom", fontsize=6.5, linespacing=0.95)
    ax.imshow(mosaic, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    ax.axis("off")
    ax.set_title(f"Misclassified test images ({len(wrong)} shown of {int((pred != labels).sum())})", fontsize=9)
    return _save(fig, path)


def reliability(counts: np.ndarray, accuracy: np.ndarray, confidence: np.ndarray, ece: float, path: Path) -> Path:
    """The reliability diagram from ``evaluation.reliability_bins``: accuracy against confidence per bin,
    and how many answers each bin holds."""
    bins = len(counts)
    centres = (np.arange(bins) + 0.5) / bins
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(5.5, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    ax1.plot([0, 1], [0, 1], "--", color="grey", label="perfect calibration")
    ax1.bar(centres, accuracy, width=1 / bins, edgecolor="black", alpha=0.7, label="accuracy in the bin")
    ax1.plot(centres, confidence, "o", color="C3", ms=4, label="mean confidence in the bin")  # gap = miscalibration
    ax1.set(ylabel="accuracy", ylim=(0, 1), title=f"Reliability (ECE {ece:.4f}, {bins} bins, n={int(counts.sum())})")
    ax1.legend(loc="upper left", fontsize=8)
    ax2.bar(centres, counts, width=1 / bins, edgecolor="black", color="C7")
    ax2.set(xlabel="confidence (top probability)", ylabel="answers", yscale="log", xlim=(0, 1))
    return _save(fig, path)
