"""On-graph augmentation for batches of MNIST digits: affine and elastic warps, pen, resolution, focus and ink.

Randomness is stateless, drawn from an explicit seed, so (seed, epoch, batch) always gives the same
batch: resuming a run replays it exactly, and parallel ``tf.data`` maps stay deterministic.
"""

from __future__ import annotations

import math

from ._tf import import_tf
from .presets import IMAGE_SIZE as SIZE
from .presets import Augment

tf = import_tf()

__all__ = ["Augment", "augment_batch", "renormalize"]
CENTER = (SIZE - 1) / 2


def _gaussian_kernel(sigma: float) -> tf.Tensor:
    radius = max(1, int(round(2 * sigma)))
    x = tf.range(-radius, radius + 1, dtype=tf.float32)
    k = tf.exp(-0.5 * (x / sigma) ** 2)
    return k / tf.reduce_sum(k)


def _smooth(field: tf.Tensor, sigma: float) -> tf.Tensor:
    """Separable Gaussian blur of (batch, 28, 28) fields."""
    k = _gaussian_kernel(sigma)
    f = field[..., None]
    f = tf.nn.conv2d(f, tf.reshape(k, [-1, 1, 1, 1]), 1, "SAME")
    f = tf.nn.conv2d(f, tf.reshape(k, [1, -1, 1, 1]), 1, "SAME")
    return f[..., 0]


def _bilinear(images: tf.Tensor, ys: tf.Tensor, xs: tf.Tensor) -> tf.Tensor:
    """Sample (batch, 28, 28) images at source coordinates ys, xs (batch, 28, 28); outside is 0."""
    flat = tf.reshape(images, [-1, SIZE * SIZE])
    y0, x0 = tf.floor(ys), tf.floor(xs)
    wy, wx = ys - y0, xs - x0

    def at(yi, xi):
        inside = (yi >= 0) & (yi <= SIZE - 1) & (xi >= 0) & (xi <= SIZE - 1)
        idx = tf.cast(tf.clip_by_value(yi, 0, SIZE - 1) * SIZE + tf.clip_by_value(xi, 0, SIZE - 1), tf.int32)
        v = tf.gather(flat, tf.reshape(idx, [-1, SIZE * SIZE]), batch_dims=1)
        return tf.where(inside, tf.reshape(v, tf.shape(ys)), 0.0)

    return ((1 - wy) * (1 - wx) * at(y0, x0) + (1 - wy) * wx * at(y0, x0 + 1)
            + wy * (1 - wx) * at(y0 + 1, x0) + wy * wx * at(y0 + 1, x0 + 1))


def _some(images: tf.Tensor, changed: tf.Tensor, share: float, u: tf.Tensor) -> tf.Tensor:
    """``changed`` for the images whose draw ``u`` (batch,) in [0, 1) falls under ``share``, else ``images``;
    both (1, 28, 28, batch)."""
    return tf.where(tf.reshape(u < share, [1, 1, 1, -1]), changed, images)


def _degrade(images: tf.Tensor, seed: tf.Tensor, aug: Augment) -> tf.Tensor:
    """What real capture does to a digit before the preprocessing fits it back to MNIST form: a thicker
    or thinner pen, too few pixels, a blur, ink that fades. Each applies to its share of the batch."""
    b = tf.shape(images)[0]
    u = tf.random.stateless_uniform([b, 5], seed=seed + 2)
    # Images as channels, (1, 28, 28, batch): pooling and convolution are then one vectorized pass, not
    # a batch of single-channel images (3x faster here).
    x = tf.transpose(images, [1, 2, 0])[None]
    if aug.stroke:
        thick = tf.nn.max_pool2d(x, 3, 1, "SAME")  # a marker: strokes 2 px wider
        thin = -tf.nn.max_pool2d(-x, 2, 1, "SAME")  # a fine pen: 1 px narrower
        x = _some(x, _some(thin, thick, 0.5, u[:, 1]), aug.stroke, u[:, 0])
    if aug.lowres:
        side = 7 + tf.cast(u[0, 4] * 8, tf.int32)  # one size per batch: 7 to 14 pixels
        small = tf.image.resize(x, tf.stack([side, side]), method="area")
        x = _some(x, tf.image.resize(small, [SIZE, SIZE], method="bilinear"), aug.lowres, u[:, 2])
    if aug.blur:
        k = _gaussian_kernel(1.0)
        kx = tf.tile(tf.reshape(k, [1, -1, 1, 1]), [1, 1, b, 1])
        ky = tf.tile(tf.reshape(k, [-1, 1, 1, 1]), [1, 1, b, 1])
        soft = tf.nn.depthwise_conv2d(tf.nn.depthwise_conv2d(x, kx, [1, 1, 1, 1], "SAME"), ky, [1, 1, 1, 1], "SAME")
        x = _some(x, soft, aug.blur, u[:, 3])
    if aug.ink:
        # A smooth random field: 4x4 noise, upsampled. Strokes fade by up to ``ink`` on one side of the digit.
        coarse = tf.random.stateless_uniform([1, 4, 4, b], seed=seed + 3)
        x = x * (1 - aug.ink * tf.image.resize(coarse, [SIZE, SIZE], method="bicubic"))
    return tf.transpose(x[0], [2, 0, 1])  # (batch, 28, 28)


def renormalize(images: tf.Tensor) -> tf.Tensor:
    """Scale each image to a peak of 1, as ``preprocessing.to_mnist`` leaves every real image (the model's
    own ``saturate`` layers then stretch every input the same way). Training digits, captures and
    non-digits share one look, so the digit score cannot learn to tell them apart by it."""
    peak = tf.reduce_max(images, axis=[1, 2], keepdims=True)
    return images / tf.maximum(peak, 1e-3)


def augment_batch(images: tf.Tensor, seed: tf.Tensor, aug: Augment) -> tf.Tensor:
    """Randomly transform a batch of (batch, 28, 28) float images; ``seed`` is a shape-[2] int tensor."""
    b = tf.shape(images)[0]
    u = tf.random.stateless_uniform([b, 5], seed=seed, minval=-1.0, maxval=1.0)
    angle = u[:, 0] * (aug.rotate * math.pi / 180)
    scale = 1 + u[:, 1] * aug.zoom
    cos, sin = tf.cos(angle) / scale, tf.sin(angle) / scale
    tx, ty = u[:, 2] * aug.shift, u[:, 3] * aug.shift
    shear = u[:, 4] * aug.shear
    grid_y, grid_x = tf.meshgrid(tf.range(SIZE, dtype=tf.float32) - CENTER,
                                 tf.range(SIZE, dtype=tf.float32) - CENTER, indexing="ij")
    r = lambda t: t[:, None, None]  # noqa: E731  (batch,) -> (batch, 1, 1)
    # For each output pixel, where it comes from in the input: inverse rotation and zoom, shear, then shift.
    xs = r(cos) * grid_x - r(sin) * grid_y + CENTER - r(tx) + r(shear) * grid_y
    ys = r(sin) * grid_x + r(cos) * grid_y + CENTER - r(ty)
    if aug.elastic:
        noise = tf.random.stateless_uniform([2, b, SIZE, SIZE], seed=seed + 1, minval=-1.0, maxval=1.0)
        # Normalize the smoothed field so that `elastic` is the typical displacement in pixels.
        dx, dy = (_smooth(noise[i], aug.elastic_sigma) for i in range(2))
        norm = tf.sqrt(tf.reduce_mean(dx**2 + dy**2, axis=[1, 2], keepdims=True)) + 1e-6
        xs += aug.elastic * dx / norm
        ys += aug.elastic * dy / norm
    warped = _bilinear(images, ys, xs)
    return _degrade(warped, seed, aug) if aug.stroke or aug.lowres or aug.blur or aug.ink else warped
