"""The registered custom layers against direct NumPy formulas."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from pynet_tf.layers import PER_IMAGE_MIN_AREA, SameConv2D, ScaledTanh, same_conv2d
from pynet_tf.nets.pynet.layers import InstanceNorm

# float32 arithmetic on O(1) values: the formulas agree to a few ulps; 1e-5 leaves room for the
# different summation order of reduce_mean, nothing more.
FLOAT32_TOL = 1e-5


def test_instance_norm_matches_reference_formula():
    rng = np.random.default_rng(0)
    x = rng.normal(3.0, 2.0, size=(2, 5, 7, 4)).astype(np.float32)
    layer = InstanceNorm()
    layer.build(x.shape)
    scale = rng.uniform(0.5, 2.0, 4).astype(np.float32)
    shift = rng.normal(size=4).astype(np.float32)
    layer.set_weights([scale, shift])

    mean = x.mean(axis=(1, 2), keepdims=True)
    var = x.var(axis=(1, 2), keepdims=True)
    expected = (x - mean) / np.sqrt(var + 1e-3) * scale + shift
    np.testing.assert_allclose(layer(x).numpy(), expected, atol=FLOAT32_TOL, rtol=0)


def test_instance_norm_normalises_each_image_and_channel_separately():
    x = np.zeros((2, 4, 4, 2), np.float32)
    x[0, ..., 0] = np.arange(16).reshape(4, 4)  # image 0, channel 0 varies; the rest is constant
    y = InstanceNorm()(x).numpy()
    assert abs(y[0, ..., 0].mean()) < FLOAT32_TOL
    # unit variance up to epsilon: var / (var + 1e-3) with var = 21.25
    np.testing.assert_allclose(y[0, ..., 0].var(), 21.25 / (21.25 + 1e-3), rtol=1e-5)
    np.testing.assert_array_equal(y[1], 0.0)  # a constant plane stays 0, no NaN from the zero variance
    np.testing.assert_array_equal(y[0, ..., 1], 0.0)


def test_scaled_tanh_is_reference_output_activation():
    x = np.linspace(-20, 20, 101, dtype=np.float32)
    y = ScaledTanh()(x).numpy()
    np.testing.assert_allclose(y, np.tanh(x) * 0.58 + 0.5, atol=FLOAT32_TOL, rtol=0)
    assert y.min() >= 0.5 - 0.58 and y.max() <= 0.5 + 0.58


def test_layers_are_registered_for_serialisation():
    for layer in (InstanceNorm(epsilon=1e-4, name="n"), ScaledTanh(scale=0.5, offset=0.25, name="t")):
        config = keras.saving.serialize_keras_object(layer)
        clone = keras.saving.deserialize_keras_object(config)
        assert type(clone) is type(layer)
        assert clone.get_config() == layer.get_config()


LOAD_THE_KERAS_WAY = """
import sys
import pynet_tf, tf_keras
for path in sys.argv[1:]:
    print(type(tf_keras.models.load_model(path, compile=False)).__name__)
"""


def test_saved_models_load_the_keras_way_once_the_package_is_imported(tmp_path):
    """A fresh process that imports only ``pynet_tf`` loads both networks' files with plain ``load_model``:
    importing the package registers every custom layer (before, it failed with "'str' object is not
    callable" until the layer modules were imported by hand)."""
    import subprocess
    import sys

    from pynet_tf.architectures import ARCHITECTURES

    paths = []
    for arch in ARCHITECTURES.values():
        path = tmp_path / f"{arch.name}.keras"
        arch.build(arch.levels[-1], 4, init="reference", instance_norm=True).save(path)
        paths.append(str(path))
    done = subprocess.run(
        [sys.executable, "-c", LOAD_THE_KERAS_WAY, *paths], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["Functional"] * len(paths)


# same_conv2d's gradients against TF's own (Conv2DBackpropInput / Conv2DBackpropFilter): the same sums in
# another order. Measured: relative max error <= 4e-6 on O(1) inputs with sums of up to 9*9*6*W*H terms;
# 2e-5 leaves room for XLA's order, nothing more (a wrong tap, flip or channel swap is an O(1) error).
GRADIENT_RTOL = 2e-5


def _reference_and_fast_gradients(shape, kernel_size, channels_out, jit):
    rng = np.random.default_rng(kernel_size)
    x = tf.constant(rng.normal(size=shape).astype(np.float32))
    kernel = tf.constant(
        rng.normal(size=(kernel_size, kernel_size, shape[-1], channels_out)).astype(np.float32)
    )
    weights = tf.constant(rng.normal(size=(*shape[:3], channels_out)).astype(np.float32))

    def gradients(conv):
        with tf.GradientTape() as tape:
            tape.watch([x, kernel])
            loss = tf.reduce_sum(conv(x, kernel) * weights)  # d loss / d output = weights: not uniform
        return tape.gradient(loss, [x, kernel])

    stock = tf.function(lambda: gradients(lambda a, b: tf.nn.conv2d(a, b, 1, "SAME")), jit_compile=jit)
    fast = tf.function(lambda: gradients(same_conv2d), jit_compile=jit)
    return [g.numpy() for g in stock()], [g.numpy() for g in fast()]


@pytest.mark.parametrize(
    "shape, kernel_size, jit",
    [
        ((1, 48, 56, 6), 9, False),  # 2688 px: the per-image kernel gradient
        ((3, 48, 48, 5), 5, True),  # several images summed, under XLA
        ((2, 20, 24, 4), 3, False),  # 480 px: below PER_IMAGE_MIN_AREA, TF's own kernel gradient
    ],
)
def test_same_conv2d_gradients_match_tensorflow(shape, kernel_size, jit):
    assert (shape[1] * shape[2] >= PER_IMAGE_MIN_AREA) == (shape[1] * shape[2] > 2000)
    (dx_ref, dk_ref), (dx, dk) = _reference_and_fast_gradients(shape, kernel_size, 7, jit)
    np.testing.assert_allclose(dx, dx_ref, rtol=0, atol=GRADIENT_RTOL * np.abs(dx_ref).max())
    np.testing.assert_allclose(dk, dk_ref, rtol=0, atol=GRADIENT_RTOL * np.abs(dk_ref).max())


def test_same_conv2d_layer_is_keras_conv2d_forward_and_round_trips(tmp_path):
    rng = np.random.default_rng(1)
    inputs = keras.Input((None, None, 3))
    model = keras.Model(inputs, SameConv2D(4, 5, name="conv")(inputs))
    stock = keras.Model(inputs, keras.layers.Conv2D(4, 5, padding="same", name="conv")(inputs))
    stock.set_weights(model.get_weights())
    x = rng.normal(size=(2, 17, 23, 3)).astype(np.float32)
    np.testing.assert_array_equal(model(x).numpy(), stock(x).numpy())
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert type(loaded.get_layer("conv")) is SameConv2D
    np.testing.assert_array_equal(loaded(x).numpy(), model(x).numpy())


@pytest.mark.parametrize(
    "arguments",
    [
        {"kernel_size": 4},
        {"kernel_size": 3, "strides": 2},
        {"kernel_size": 3, "padding": "valid"},
        {"kernel_size": (3, 5)},
    ],
)
def test_same_conv2d_refuses_what_its_gradient_does_not_cover(arguments):
    with pytest.raises(ValueError, match="SameConv2D .*odd square kernel"):
        SameConv2D(4, **arguments)
