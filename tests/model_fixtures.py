"""Helpers shared by the model and export tests."""

from collections.abc import Callable

import numpy as np
import tensorflow as tf
import tf_keras as keras

from pynet_tf.data.pipeline import PipelineOptions, make_dataset
from pynet_tf.data.sources import parse_source


def informative(model: keras.Model, seed: int = 5) -> keras.Model:
    """Redraw every conv kernel He-normal (std sqrt(2 / fan_in)) so that each level's output carries signal.

    The reference initialisation (std 0.01) is what training starts from, but it makes the levels without
    instance norm (1 and 0) output a near-constant image, against which a comparison proves little, and
    it makes the instance norms divide variances of ~1e-8 by sqrt(1e-3 + var), where float32 rounding is
    amplified level after level (up to 6e-4 apart between two correct float32 implementations).
    """
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            weights = layer.get_weights()
            k_h, k_w, *channels = weights[0].shape
            fan_in = k_h * k_w * channels[1 if isinstance(layer, keras.layers.Conv2DTranspose) else 0]
            weights[0] = rng.normal(0.0, np.sqrt(2.0 / fan_in), weights[0].shape).astype(np.float32)
            layer.set_weights(weights)
    return model


def fit(
    model: keras.Model,
    loss: Callable[[tf.Tensor, tf.Tensor], tf.Tensor],
    *,
    level: int,
    patch: int,
    batch_size: int,
    steps: int,
    lr: float = 1e-3,
    seed: int = 0,
) -> keras.Model:
    """``model`` after ``steps`` Adam steps of ``loss(target, prediction)`` (a scalar) on the sample photos'
    training crops: a subject with real activation ranges for int8 tests (random or informative weights give
    outputs int8 cannot follow)."""
    options = PipelineOptions(level=level, patch=patch, batch_size=batch_size, seed=seed)
    batches = iter(make_dataset(parse_source("samples"), "train", options))
    optimizer = keras.optimizers.Adam(lr)

    @tf.function
    def step(raw: tf.Tensor, target: tf.Tensor) -> None:
        with tf.GradientTape() as tape:
            value = loss(target, model(raw, training=True))
        variables = model.trainable_variables
        optimizer.apply_gradients(zip(tape.gradient(value, variables), variables))

    for _ in range(steps):
        step(*next(batches))
    return model
