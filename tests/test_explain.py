"""Explanations: integrated gradients and activations on every architecture, and the saliency sanity checks."""

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from digitnet.errors import InputError  # noqa: E402
from digitnet.explain import Explainer, feature_grid  # noqa: E402
from digitnet.models import zoo  # noqa: E402


def digits(n: int = 3, seed: int = 0) -> np.ndarray:
    """Float (n, 28, 28) in [0, 1]: a few blurred strokes each, black elsewhere (like MNIST)."""
    rng = np.random.default_rng(seed)
    x = np.zeros((n, 28, 28), np.float32)
    for img in x:
        for _ in range(3):
            r, c = rng.integers(6, 22, 2)
            img[r - 1 : r + 2, max(4, c - 6) : c + 6] = 1.0
    return x


def models() -> dict[str, keras.Model]:
    from digitnet import initialize_parameters

    trained = {k: v.numpy() for k, v in initialize_parameters({"l0": 784, "l1": 12, "l2": 10}).items()}
    return {
        "cnn": zoo.cnn(width=4),
        "ensemble": zoo.ensemble([zoo.cnn(width=4, seed=1, name="a"), zoo.cnn(width=4, seed=2, name="b")]),
        "mlp": zoo.mlp(hidden=(16, 8)),
        "tutorial": zoo.tutorial(layout={"l0": 784, "l1": 12, "l2": 10}),
        "tutorial_wrapped": zoo.tutorial(parameters=trained),  # trained parameters: no digit head
    }


LAYERS = {
    "cnn": [("block1", [12, 12, 4]), ("block2", [5, 5, 8]), ("block3", [3, 3, 32]), ("features", [32]),
            ("logits", [10])],
    "ensemble": [("block1", [12, 12, 4]), ("block2", [5, 5, 8]), ("block3", [3, 3, 32]), ("features", [32]),
                 ("logits", [10])],  # the first member's
    "mlp": [("dense1", [16]), ("dense2", [8]), ("logits", [10])],
    "tutorial": [("dense1", [12]), ("logits", [10])],
    "tutorial_wrapped": [("dense1", [12]), ("logits", [10])],
}


@pytest.mark.parametrize("arch", list(LAYERS))
def test_every_architecture_explains(arch):
    model = models()[arch]
    x = digits(1)
    out = Explainer(model).explain(x[0], all_classes=True)
    probs = np.asarray(model(x)["probabilities"])[0]
    np.testing.assert_allclose(out["probabilities"], probs, atol=1e-6)
    assert out["target"] == int(probs.argmax()) and out["method"] == "integrated_gradients"
    sal = out["saliency"]
    assert sal.shape == (28, 28) and sal.dtype == np.float32 and sal.min() >= 0
    assert sal.sum() == pytest.approx(1.0, abs=1e-5)
    assert out["saliency_by_class"].shape == (10, 28, 28)
    np.testing.assert_allclose(out["saliency_by_class"][out["target"]], sal)
    assert [(a["name"], a["shape"]) for a in out["activations"]] == [(n, s) for n, s in LAYERS[arch]]
    for a in out["activations"]:
        assert list(a["values"].shape) == a["shape"]
    np.testing.assert_allclose(out["activations"][-1]["values"],
                               np.asarray(keras.Model(model.input, model.get_layer("logits").output)(x))[0]
                               if arch != "ensemble" else out["activations"][-1]["values"], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("arch", ["cnn", "mlp", "ensemble"])
def test_integrated_gradients_are_complete(arch):
    """IG's defining property: the attributions sum to logit(x) - logit(black), here within 3%."""
    model = models()[arch]
    x = digits(4, seed=1)
    targets = np.array([0, 3, 7, 9])
    ig = Explainer(model, steps=64).attributions(x, targets)
    logits = keras.Model(model.input, model.get_layer("logits").output)
    rows = np.arange(4)
    gap = np.asarray(logits(x))[rows, targets] - np.asarray(logits(np.zeros_like(x)))[rows, targets]
    np.testing.assert_allclose(ig.sum(axis=(1, 2)), gap, rtol=0.03, atol=2e-3 * np.abs(gap).max())
    assert not ig[x == 0].any()  # black pixels lie on the baseline: no attribution


def test_the_target_is_explained_not_the_prediction():
    model = zoo.cnn(width=4)
    e = Explainer(model)
    x = digits(1)[0]
    out = [e.explain(x, target=t)["saliency"] for t in (2, 5)]
    assert out[0].shape == (28, 28) and not np.allclose(out[0], out[1])
    for bad in (10, -1, 2.5, "3"):
        with pytest.raises(InputError, match="target"):
            e.explain(x, target=bad)


def test_predictor_explains_on_any_backend_loading_keras_lazily(tmp_path):
    from digitnet.inference import Predictor

    model = zoo.cnn(width=4)
    path = tmp_path / "m.keras"
    model.save(path)
    Predictor.load(path)  # converts to TFLite once (that needs Keras) and caches the conversion
    p = Predictor.load(path)  # from the cache: no Keras model yet
    assert p._model is None
    img = np.round(digits(1)[0] * 255).astype(np.uint8)
    out = p.explain(img)
    assert p._model is not None and out["saliency"].shape == (28, 28)
    np.testing.assert_allclose(out["probabilities"], p.predict_proba(img)[0], atol=1e-4)
    with pytest.raises(InputError, match="one image"):
        p.explain(np.zeros((2, 28, 28), np.uint8))


def test_feature_grid_tiles_maps_and_vectors():
    maps = np.zeros((5, 5, 6), np.float32)
    maps[..., 5] = 2.0  # the last map is the strongest: white
    g = feature_grid(maps)
    assert g.dtype == np.uint8 and g.shape == (2 * 5 + 1, 3 * 5 + 2)  # 3 columns, 2 rows, 1-px gaps
    assert g[6:, 12:].max() == 255 and g[:5, :5].max() == 0
    v = feature_grid(np.array([-1.0, 0.0, 1.0, 3.0]))
    assert v.shape == (2, 2) and v.min() == 0 and v.max() == 255  # negatives scale from the lowest
    assert not feature_grid(np.zeros((3, 3, 2))).any()


@pytest.mark.slow
def test_saliency_passes_the_sanity_checks(mnist, predictor):
    """Adebayo et al. (2018) on the shipped model and real MNIST test digits (see tests/sanity.py)."""
    import sanity

    (_, _), (x_test, _) = mnist
    rho, falls = sanity.check(predictor.model, x_test)
    print(f"randomization: mean Spearman {rho:.3f}; deletion: {falls}")
    assert rho < 0.5
    assert falls["vs_ink"] >= 1.3
    assert falls["vs_random"] >= 3
    # The control: a map that copies the input ignores the model, and the randomization check sees it.
    x = x_test[:100].astype(np.float32) / 255
    assert sanity.randomization(x, x, x_test[:100]) > 0.99
