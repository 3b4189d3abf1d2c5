"""The tutorial's five functions on small data made here."""

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from digitnet import (  # noqa: E402  (the tutorial's own import line)
    calculate_cost,
    forward_propagation,
    initialize_parameters,
    predict,
    train_parameters,
)

LAYOUT = {"l0": 784, "l1": 100, "l2": 100, "l3": 60, "l4": 10}


def toy_data(n=400, features=20, classes=3, seed=0):
    """Separable blobs in 0-255 'pixel' units, one-hot labels."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    centers = rng.uniform(0, 255, (classes, features))
    X = np.clip(centers[labels] + rng.normal(0, 20, (n, features)), 0, 255).astype(np.float32)
    return X, np.eye(classes, dtype=np.float32)[labels], labels


def test_initialize_shapes_every_layer():
    p = initialize_parameters(LAYOUT)
    assert sorted(p) == sorted(["W1", "b1", "W2", "b2", "W3", "b3", "W4", "b4"])  # the output layer too
    assert p["W1"].shape == (100, 784) and p["b1"].shape == (100, 1)
    assert p["W4"].shape == (10, 60) and p["b4"].shape == (10, 1)
    assert not np.any(p["b2"].numpy()) and np.std(p["W2"].numpy()) > 0
    limit = np.float32(np.sqrt(6 / (100 + 784)))  # Glorot uniform bound
    assert 0.99 * limit < np.abs(p["W1"].numpy()).max() <= limit
    np.testing.assert_array_equal(p["W3"].numpy(), initialize_parameters(LAYOUT)["W3"].numpy())  # seeded
    assert not np.array_equal(p["W1"].numpy(), initialize_parameters(LAYOUT, seed=2)["W1"].numpy())


@pytest.mark.parametrize("layout", [{"l0": 5, "l1": 3}, {"l0": 5, "l1": 4, "l2": 3},
                                    {f"l{i}": 4 for i in range(8)}])
def test_any_number_of_layers(layout):
    p = initialize_parameters(layout)
    assert len(p) == 2 * (len(layout) - 1)
    out = forward_propagation(np.ones((7, layout["l0"])), p)
    assert out.shape == (7, layout[f"l{len(layout) - 1}"])
    np.testing.assert_allclose(out.numpy().sum(axis=1), 1, rtol=1e-5)


def test_forward_matches_numpy():
    p = initialize_parameters({"l0": 6, "l1": 5, "l2": 4})
    X = np.random.default_rng(1).normal(size=(3, 6)).astype(np.float32)
    n = {k: v.numpy() for k, v in p.items()}
    h = np.maximum(X @ n["W1"].T + n["b1"].T, 0)
    z = h @ n["W2"].T + n["b2"].T
    np.testing.assert_allclose(forward_propagation(X, p, output="sigmoid").numpy(), 1 / (1 + np.exp(-z)), rtol=1e-5)
    soft = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    np.testing.assert_allclose(forward_propagation(X, p).numpy(), soft, rtol=1e-5)


def test_cost_against_hand_computation():
    A = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]], np.float32)
    y = np.array([[1, 0, 0], [0, 1, 0]], np.float32)
    ce = -(np.log(0.7) + np.log(0.1)) / 2
    mse = ((0.3**2 + 0.2**2 + 0.1**2) + (0.1**2 + 0.9**2 + 0.8**2)) / 6
    assert float(calculate_cost(A, y, {})) == pytest.approx(ce, rel=1e-6)
    assert float(calculate_cost(A, y, {}, cost="mse")) == pytest.approx(mse, rel=1e-6)
    with pytest.raises(ValueError, match="cost must be one of"):
        calculate_cost(A, y, {}, cost="hinge")
    with pytest.raises(ValueError, match=r"must both be \(n, classes\)"):
        calculate_cost(A, y[:, :2], {})


@pytest.mark.parametrize("cost,output", [("cross_entropy", "softmax"), ("mse", "sigmoid")])
def test_gradients_match_float64_reference(cost, output):
    layout = {"l0": 8, "l1": 6, "l2": 5, "l3": 3}
    p = initialize_parameters(layout, seed=3)
    rng = np.random.default_rng(2)
    X = rng.normal(size=(16, 8)).astype(np.float32)
    y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 16)]
    with tf.GradientTape() as tape:
        c = calculate_cost(forward_propagation(X, p, output=output), y, p, cost=cost)
    grads = tape.gradient(c, p)

    # Independent float64 reference: plain TF ops, no digitnet code.
    ref = {k: tf.Variable(tf.cast(v, tf.float64)) for k, v in p.items()}
    with tf.GradientTape() as tape64:
        a = tf.constant(X, tf.float64)
        for i in (1, 2, 3):
            z = a @ tf.transpose(ref[f"W{i}"]) + tf.transpose(ref[f"b{i}"])
            a = tf.nn.relu(z) if i < 3 else z
        if cost == "mse":
            c64 = tf.reduce_mean((tf.sigmoid(a) - y) ** 2)
        else:
            c64 = tf.reduce_mean(-tf.reduce_sum(y * tf.nn.log_softmax(a), axis=1))
    ref_grads = tape64.gradient(c64, ref)
    assert float(c) == pytest.approx(float(c64), rel=1e-5)
    for k in p:
        np.testing.assert_allclose(grads[k].numpy(), ref_grads[k].numpy(), rtol=1e-4, atol=1e-6, err_msg=k)


def test_predict_one_vector_and_batch():
    X, y, labels = toy_data()
    layout = {"l0": 20, "l1": 16, "l2": 3}
    params = train_parameters(X, y, X, y, layout, epochs=30, batch_size=50, verbose=False)
    assert all(isinstance(v, np.ndarray) and v.dtype == np.float32 for v in params.values())
    one = predict(X[2], params)
    assert one.shape == (1,) and one.dtype == np.int64 and one[0] == labels[2]
    batch = predict(X, params)
    assert batch.shape == (400,) and (batch == labels).mean() > 0.95
    assert predict(X[:0], params).shape == (0,)


def test_train_prints_the_tutorial_lines(capsys):
    X, y, _ = toy_data()
    train_parameters(X, y, X[:50], y[:50], {"l0": 20, "l1": 8, "l2": 3}, epochs=3, batch_size=100)
    lines = capsys.readouterr().out.splitlines()
    assert [ln.split(":")[0] for ln in lines[:3]] == [f"Cost after epoch {i}" for i in (1, 2, 3)]
    assert lines[3] == "Training complete!"
    assert lines[4].startswith("Accuracy on the training set: ") and lines[4].endswith(" %")
    assert lines[5].startswith("Accuracy on the test set: ")
    costs = [float(ln.split(": ")[1]) for ln in lines[:3]]
    assert costs[2] < costs[0]  # it learns


def test_folded_scaling_gives_same_activations_on_raw_pixels():
    X, y, _ = toy_data()
    params = train_parameters(X, y, X, y, {"l0": 20, "l1": 8, "l2": 3}, epochs=2, batch_size=100, verbose=False)
    unfolded = dict(params, W1=params["W1"] * 255)
    np.testing.assert_allclose(forward_propagation(X, params).numpy(),
                               forward_propagation(X / 255, unfolded).numpy(), rtol=1e-4, atol=1e-6)


def test_literal_recipe_still_available():
    X, y, _ = toy_data()
    params = train_parameters(X, y, X, y, {"l0": 20, "l1": 8, "l2": 3}, epochs=2, batch_size=100,
                              cost="mse", scale_inputs=False, verbose=False)
    assert params["W1"].shape == (8, 20)


def test_bad_input_gives_clear_errors():
    p = initialize_parameters(LAYOUT)
    with pytest.raises(ValueError, match="X has 783 features per row but W1 expects 784"):
        forward_propagation(np.zeros((2, 783)), p)
    with pytest.raises(ValueError, match="X_predict has 10 features per row but W1 expects 784"):
        predict(np.zeros(10), p)
    with pytest.raises(ValueError, match="layout needs 'l0'"):
        initialize_parameters({"l1": 100, "l2": 10})
    with pytest.raises(ValueError, match="consecutive from l0"):
        initialize_parameters({"l0": 784, "l2": 10})
    with pytest.raises(ValueError, match=r"layout\['l1'\] must be a positive integer"):
        initialize_parameters({"l0": 784, "l1": 0})
    bad = np.zeros((2, 784))
    bad[1, 5] = np.nan
    with pytest.raises(ValueError, match="X_predict contains NaN"):
        predict(bad, p)
    with pytest.raises(ValueError, match="X_train contains NaN"):
        train_parameters(bad, np.eye(10)[:2], bad, np.eye(10)[:2], LAYOUT, batch_size=1)
    with pytest.raises(ValueError, match="parameters must hold exactly W1, b1"):
        predict(np.zeros(784), {"W1": p["W1"]})
    with pytest.raises(ValueError, match="y_train must be one-hot of shape"):
        train_parameters(np.zeros((4, 784)), np.zeros((4, 3)), np.zeros((4, 784)), np.eye(10)[:4], LAYOUT,
                         batch_size=2)
    with pytest.raises(ValueError, match="batch_size 1000 is larger than the 4 training rows"):
        train_parameters(np.zeros((4, 784)), np.eye(10)[:4], np.zeros((4, 784)), np.eye(10)[:4], LAYOUT)
