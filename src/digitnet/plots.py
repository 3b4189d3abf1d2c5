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


def explanation(crop: np.ndarray, e: dict, path: Path, title: str = "") -> Path:
    """One digit explained (``Predictor.explain``'s dict ``e``): the input crop as found in the image, the
    28x28 the model saw, the saliency of the explained class over it, the top-3 probabilities and the
    feature maps of the first two layers shown (the first two convolution blocks of a CNN)."""
    from .explain import feature_grid

    layers = e["activations"][:2]
    fig, axes = plt.subplots(1, 4 + len(layers), figsize=(3 * (4 + len(layers)), 3.3),
                             gridspec_kw={"width_ratios": [1, 1, 1, 1.2] + [1.3] * len(layers)})
    ax_crop, ax_seen, ax_sal, ax_top, *ax_maps = axes
    ax_crop.imshow(crop, cmap="gray" if crop.ndim == 2 else None, vmin=0, vmax=1)
    ax_crop.set_title("input crop")
    ax_seen.imshow(e["image"], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax_seen.set_title("what the model saw (28x28)")
    ax_sal.imshow(e["image"], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    sal = e["saliency"] / max(float(e["saliency"].max()), 1e-12)
    ax_sal.imshow(np.ma.masked_less(sal, 0.02), cmap="autumn_r", alpha=0.75, vmin=0, vmax=1, interpolation="nearest")
    ax_sal.set_title(f"saliency for {e['target']}")
    probs = e["probabilities"]
    top = np.argsort(-probs)[:3][::-1]
    ax_top.barh([str(d) for d in top], probs[top] * 100, color=["C7", "C7", "C2"][-len(top):])
    for i, d in enumerate(top):
        ax_top.text(min(probs[d] * 100 + 2, 70), i, f"{probs[d]:.1%}", va="center", fontsize=9)
    ax_top.set(xlim=(0, 100), xlabel="probability (%)", title="top 3")
    for ax, layer in zip(ax_maps, layers):
        ax.imshow(feature_grid(layer["values"]), cmap="viridis", interpolation="nearest")
        ax.set_title(f"{layer['name']} {'x'.join(map(str, layer['shape']))}", fontsize=10)
    for ax in (ax_crop, ax_seen, ax_sal, *ax_maps):
        ax.axis("off")
    if title:
        fig.suptitle(title)
    return _save(fig, path)
