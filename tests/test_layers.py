"""The registered custom layers against direct NumPy formulas."""

import numpy as np
import tf_keras as keras

from pynet_tf.layers import InstanceNorm, ScaledTanh

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
