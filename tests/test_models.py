"""One contract for every architecture in the registry (and the ensemble): digit probabilities and a digit score."""

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from digitnet.models import zoo  # noqa: E402

ARCHS = {
    "tutorial": lambda: zoo.build("tutorial"),
    "mlp": lambda: zoo.build("mlp", hidden=(128,), dropout=0.1),
    "cnn": lambda: zoo.build("cnn", width=16),
    "ensemble": lambda: zoo.ensemble([zoo.cnn(width=8, seed=1, name="a"), zoo.cnn(width=8, seed=2, name="b")]),
}


@pytest.fixture
def batch():
    rng = np.random.default_rng(0)
    return rng.uniform(0, 1, (64, 28, 28)).astype(np.float32), rng.integers(0, 10, 64)


def probabilities(model, x):
    return np.asarray(model(x, training=False)["probabilities"])


@pytest.mark.parametrize("arch", ARCHS)
def test_outputs_are_probabilities_and_a_digit_score(arch, batch):
    out = ARCHS[arch]()(batch[0][:7], training=False)
    assert set(out) == {"probabilities", "digit_score"}
    probs, score = np.asarray(out["probabilities"]), np.asarray(out["digit_score"])
    assert probs.shape == (7, 10) and probs.dtype == np.float32 and score.shape == (7, 1)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    assert (probs >= 0).all() and ((score > 0) & (score < 1)).all()


@pytest.mark.parametrize("arch", ARCHS)
def test_save_load_round_trip_is_identical(arch, batch, tmp_path):
    model = ARCHS[arch]()
    before = model(batch[0], training=False)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras", safe_mode=True, compile=False)(batch[0], training=False)
    for name in before:
        np.testing.assert_array_equal(np.asarray(loaded[name]), np.asarray(before[name]))


@pytest.mark.parametrize("arch", ARCHS)
def test_overfits_64_samples_through_the_training_view(arch, batch):
    from digitnet.models.layers import DigitLoss, accuracy

    x, labels = batch  # random images with random labels, half of them "not a digit": only memorization fits
    is_digit = np.arange(64) % 2 == 0
    y = np.concatenate([np.eye(10)[labels] * is_digit[:, None], is_digit[:, None]], axis=1).astype(np.float32)
    model = ARCHS[arch]()
    train = zoo.training_view(model)
    train.compile(keras.optimizers.Adam(3e-3), DigitLoss(), metrics=[accuracy], jit_compile=False)
    train.fit(x, y, epochs=150, batch_size=64, verbose=0, shuffle=False)
    out = model(x, training=False)  # the shipped view shares the weights
    assert (probabilities(model, x).argmax(1) == labels)[is_digit].all()
    assert ((np.asarray(out["digit_score"])[:, 0] > 0.5) == is_digit).all()


def test_tutorial_wraps_trained_parameters():
    from digitnet import initialize_parameters, predict

    layout = {"l0": 784, "l1": 20, "l2": 10}
    params = {k: v.numpy() * 0.01 for k, v in initialize_parameters(layout, seed=3).items()}  # raw-pixel scale
    x = np.random.default_rng(1).integers(0, 256, (50, 784)).astype(np.float32)
    wrapped = zoo.tutorial(params)
    out = wrapped(x.reshape(-1, 28, 28) / 255, training=False)
    assert set(out) == {"probabilities"}  # a network trained without non-digits has no digit head
    np.testing.assert_array_equal(np.asarray(out["probabilities"]).argmax(1), predict(x, params))


@pytest.mark.parametrize("arch", ARCHS)
def test_every_model_ends_in_linear_logits_then_a_softmax(arch, batch):
    model = ARCHS[arch]()
    assert isinstance(model.get_layer("probabilities"), keras.layers.Softmax)
    logits_layer = model.get_layer("logits")  # linear: a Dense without activation, or an average of such
    assert getattr(logits_layer, "activation", keras.activations.linear) is keras.activations.linear
    logits = np.asarray(zoo.logits_model(model)(batch[0][:5], training=False))
    soft = np.exp(logits - logits.max(1, keepdims=True))
    np.testing.assert_allclose(soft / soft.sum(1, keepdims=True), probabilities(model, batch[0][:5]),
                               rtol=1e-5, atol=1e-6)


def test_every_preset_architecture_has_a_builder():
    from digitnet.presets import ARCHS as PRESET_ARCHS

    assert set(zoo.BUILDERS) == set(PRESET_ARCHS)


def test_unknown_arch_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown architecture 'resnet'; choose one of tutorial, mlp, cnn"):
        zoo.build("resnet")


def test_fused_batch_norm_matches_keras_batch_norm():
    from digitnet.models.layers import FusedBatchNorm

    x = np.random.default_rng(2).normal(2, 3, (16, 5, 5, 4)).astype(np.float32)
    ours, ref = FusedBatchNorm(momentum=0.9, epsilon=1e-3), keras.layers.BatchNormalization(momentum=0.9,
                                                                                            epsilon=1e-3)
    np.testing.assert_allclose(np.asarray(ours(x, training=True)), np.asarray(ref(x, training=True)), atol=1e-4)
    np.testing.assert_allclose(ours.moving_mean.numpy(), ref.moving_mean.numpy(), atol=1e-4)
    # Moving variance: ours uses the unbiased batch variance (as TF's fused kernel does).
    n = 16 * 5 * 5
    np.testing.assert_allclose(ours.moving_variance.numpy(), 0.9 + 0.1 * x.var(axis=(0, 1, 2)) * n / (n - 1),
                               rtol=1e-4)
    np.testing.assert_allclose(np.asarray(ours(x, training=False)), np.asarray(
        keras.layers.BatchNormalization(epsilon=1e-3, moving_mean_initializer=keras.initializers.Constant(
            ours.moving_mean.numpy()), moving_variance_initializer=keras.initializers.Constant(
            ours.moving_variance.numpy()))(x, training=False)), atol=1e-4)


def test_gradient_scale_is_the_identity_forward_and_scales_the_gradient_back():
    import tensorflow as tf

    from digitnet.models.layers import GradientScale

    x = tf.constant(np.random.default_rng(3).normal(size=(4, 6)).astype(np.float32))
    layer = GradientScale(0.25)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x)
        loss = tf.reduce_sum(y * tf.range(6, dtype=tf.float32))
    np.testing.assert_array_equal(np.asarray(y), np.asarray(x))
    np.testing.assert_allclose(np.asarray(tape.gradient(loss, x)), 0.25 * np.tile(np.arange(6.0), (4, 1)), atol=1e-6)
    assert GradientScale.from_config(layer.get_config()).scale == 0.25


def test_cnn_digit_score_trains_the_shared_layers_at_a_quarter_of_its_gradient(batch):
    """The digit-score loss reaches the convolutions scaled by 0.25; the digit logits' loss reaches them whole."""
    import tensorflow as tf

    from digitnet.presets import SCORE_GRADIENT

    full, quarter = (zoo.training_view(zoo.cnn(width=4, seed=1, score_gradient=s)) for s in (1.0, 0.25))
    quarter.set_weights(full.get_weights())
    x = tf.constant(batch[0][:8])

    def conv_gradient(model, column):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(model(x, training=False)[:, column])
        return np.asarray(tape.gradient(loss, model.get_layer("conv1").kernel))

    np.testing.assert_allclose(conv_gradient(quarter, 10), 0.25 * conv_gradient(full, 10), rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(conv_gradient(quarter, 3), conv_gradient(full, 3), rtol=1e-5, atol=1e-7)
    assert zoo.cnn(width=4).get_layer("score_gradient").scale == SCORE_GRADIENT == 0.25  # what presets train


def test_saved_final_model_loads_with_plain_keras(batch, tmp_path):
    import subprocess
    import sys

    from digitnet.training import final_model

    a, b = (zoo.training_view(zoo.cnn(width=8, seed=s, name=n)) for s, n in ((1, "a"), (2, "b")))
    for m in (a, b):  # give the moving statistics non-trivial values
        m(batch[0], training=True)
    for models in ([a], [a, b]):
        portable = final_model(models)
        # An ensemble averages its members' logits (and digit logits), then applies the softmax (and sigmoid).
        heads = np.mean([np.asarray(m(batch[0], training=False)) for m in models], axis=0)  # (n, 11)
        expected = np.exp(heads[:, :10]) / np.exp(heads[:, :10]).sum(axis=1, keepdims=True)
        out = portable(batch[0], training=False)
        np.testing.assert_allclose(np.asarray(out["probabilities"]), expected, atol=1e-5)
        np.testing.assert_allclose(np.asarray(out["digit_score"])[:, 0], 1 / (1 + np.exp(-heads[:, 10])), atol=1e-5)
        portable.save(tmp_path / "m.keras")
        np.save(tmp_path / "x.npy", batch[0])
        code = ("import sys, numpy as np, keras; assert 'digitnet' not in sys.modules; "
                f"m = keras.models.load_model({str(tmp_path / 'm.keras')!r}, safe_mode=True); "
                f"p = m(np.load({str(tmp_path / 'x.npy')!r}))['probabilities']; "
                f"np.save({str(tmp_path / 'p.npy')!r}, np.asarray(p))")
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr[-2000:]
        np.testing.assert_allclose(np.load(tmp_path / "p.npy"), expected, atol=1e-5)
