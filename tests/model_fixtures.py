"""Helpers shared by the model, export, import and training tests."""

import csv
from collections.abc import Callable
from pathlib import Path

import numpy as np
import tensorflow as tf
import tf_keras as keras

from pynet_tf.data.pipeline import PipelineOptions, make_dataset
from pynet_tf.data.sources import parse_source

OFFICIAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "pynet_official"
"""The shared fixture describing an official PyNET checkpoint variable by variable (see its README)."""


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


def official_table() -> list[dict]:
    """``variables.tsv`` of the shared fixture: index, name, shape, kind, created_by of each official variable."""
    with (OFFICIAL / "variables.tsv").open() as file:
        return list(csv.DictReader(file, delimiter="\t"))


def official_fill(index: int, shape: tuple[int, ...], kind: str) -> np.ndarray:
    """The fixture README's fill rule: variable ``index``'s value from its shape and kind."""
    rng = np.random.default_rng(1000 + index)
    if kind == "conv_kernel":
        k, _, fan_in, out = shape
        value = rng.normal(0, (0.5 if out == 3 else 1.0) * np.sqrt(2 / (k * k * fan_in)), shape)
    elif kind == "tconv_kernel":
        value = rng.normal(0, np.sqrt(2 / (shape[0] * shape[1] * shape[3])), shape)
    elif kind == "conv_bias":
        value = rng.normal(0, 0.05, shape)
    elif kind == "inorm_scale":
        value = 1 + 0.1 * rng.normal(size=shape)
    else:
        assert kind == "inorm_shift", kind
        value = 0.1 * rng.normal(size=shape)
    return value.astype(np.float32)


def save_checkpoint(prefix: Path, values: dict[str, np.ndarray]) -> Path:
    """A TF1-style name-based checkpoint (``prefix.index`` + data), as ``tf.compat.v1.train.Saver`` writes."""
    prefix.parent.mkdir(parents=True, exist_ok=True)
    tf.raw_ops.SaveV2(
        prefix=str(prefix),
        tensor_names=list(values),
        shape_and_slices=[""] * len(values),
        tensors=list(values.values()),
    )
    return prefix


def official_checkpoint(folder: Path, table: list[dict] | None = None) -> Path:
    """The fixture's checkpoint (47.5M values, seconds), alone in ``folder``: ``folder/pynet_level_0.ckpt``."""
    values = {
        row["name"]: official_fill(int(row["index"]), tuple(map(int, row["shape"].split("x"))), row["kind"])
        for row in table or official_table()
    }
    return save_checkpoint(folder / "pynet_level_0.ckpt", values)
