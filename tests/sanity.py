"""Sanity checks for saliency maps (Adebayo et al., "Sanity Checks for Saliency Maps", 2018), as measures.

One definition for ``tests/test_explain.py`` (which asserts margins), ``bench/saliency.py`` (which prints the
figures, on validation digits for choosing and test digits for reporting) and ``bench/pick_weights.py`` (which
``make weights`` ships a seed by): :func:`check` runs both checks the way the test asserts them.

- :func:`randomization`: the mean Spearman rank correlation, over each digit's ink pixels only, between
  the maps of a trained model and those of the same architecture re-initialized. A map that ignores the
  model scores about 1; one that depends on it, much less.
- :func:`deletion`: zero each digit's :data:`FRACTION` most salient pixels, and as many at random from its
  ink, and as many at random anywhere; the ratios of the mean falls of the predicted class's
  probability. A map that merely copies the input scores about 1 on the first.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

FRACTION = 0.10  # of the 784 pixels: 78


def randomization(maps: np.ndarray, random_maps: np.ndarray, images: np.ndarray) -> float:
    """Mean Spearman correlation over ink pixels (image > 0) of paired (n, 28, 28) maps."""
    rs = []
    for m, r, img in zip(maps, random_maps, images):
        ink = img > 0
        rho = stats.spearmanr(m[ink], r[ink]).statistic
        rs.append(0.0 if np.isnan(rho) else rho)  # a constant map correlates with nothing
    return float(np.mean(rs))


def deletion(proba, images: np.ndarray, maps: np.ndarray, seed: int = 0) -> dict[str, float]:
    """``proba``: float (n, 28, 28) in [0, 1] -> (n, 10). Returns the mean falls and their two ratios."""
    rng = np.random.default_rng(seed)
    x = images.astype(np.float32) / 255 if images.dtype == np.uint8 else images.astype(np.float32)
    n, k = len(x), int(round(FRACTION * x[0].size))
    p0 = proba(x)
    cls = p0.argmax(1)
    flat = x.reshape(n, -1)
    salient, ink, anywhere = flat.copy(), flat.copy(), flat.copy()
    for i in range(n):
        salient[i, np.argsort(-maps[i].ravel(), kind="stable")[:k]] = 0
        where = np.flatnonzero(flat[i] > 0)
        ink[i, rng.choice(where, size=min(k, len(where)), replace=False)] = 0
        anywhere[i, rng.choice(flat.shape[1], size=k, replace=False)] = 0
    rows = np.arange(n)
    falls = {name: float(np.mean(p0[rows, cls] - proba(v.reshape(x.shape))[rows, cls]))
             for name, v in (("salient", salient), ("random_ink", ink), ("random", anywhere))}
    falls["vs_ink"] = falls["salient"] / max(falls["random_ink"], 1e-9)
    falls["vs_random"] = falls["salient"] / max(falls["random"], 1e-9)
    return falls


def check(model, images: np.ndarray) -> tuple[float, dict[str, float]]:
    """Both checks on a Keras digit model's integrated-gradient maps, as ``tests/test_explain.py`` asserts them
    and ``make weights`` picks by: randomization on ``images[:100]`` (uint8 (n, 28, 28)) against the same
    architecture re-initialized, deletion on ``images[:200]``."""
    import keras

    from digitnet.explain import Explainer

    trained, random = Explainer(model), Explainer(keras.models.clone_model(model))  # re-initialized weights
    x = images[:200].astype(np.float32) / 255

    def proba(v):
        return np.asarray(model.predict_on_batch(v)["probabilities"])

    pred = proba(x).argmax(1)
    rho = randomization(trained.saliency(x[:100], pred[:100]), random.saliency(x[:100], pred[:100]), images[:100])
    return rho, deletion(proba, images[:200], trained.saliency(x, pred))
