"""PyNET's own layers: the input-size check and the reference's instance norm, registered under ``pynet_tf``.

Written with plain TF ops the TFLite converter maps to builtins in every format (see ``pynet_tf.layers``).
"""

from __future__ import annotations

from collections.abc import Callable

import tensorflow as tf
import tf_keras as keras

from pynet_tf.nets.pynet.levels import validate_input_shape


@keras.saving.register_keras_serializable(package="pynet_tf")
class InputShapeCheck(keras.layers.Layer):
    """Identity that raises ``InputShapeError`` (naming the shape and the nearest valid one) when a model
    built for run-time sizes is called on a packed input PyNET cannot take.

    It checks the static shape while Keras calls or traces the model, so it adds no op to the graph or to
    an exported TFLite file; without it a bad size fails deep inside as a concatenation shape mismatch.
    """

    def call(self, x: tf.Tensor) -> tf.Tensor:
        validate_input_shape(*x.shape[1:])
        return x


@keras.saving.register_keras_serializable(package="pynet_tf")
class InstanceNorm(keras.layers.Layer):
    """Instance normalisation as in the reference PyNET: per image and channel, over H and W.

    ``(x - mean) / sqrt(var + epsilon) * scale + shift`` with a learnable per-channel scale (init 1) and
    shift (init 0); epsilon 1e-3 is the reference value.
    """

    def __init__(self, epsilon: float = 1e-3, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = epsilon

    def build(self, input_shape: tf.TensorShape) -> None:
        channels = int(input_shape[-1])
        self.scale = self.add_weight(name="scale", shape=(channels,), initializer="ones")
        self.shift = self.add_weight(name="shift", shape=(channels,), initializer="zeros")
        super().build(input_shape)

    POINTS = ("mean", "centered", "squared", "variance", "variance_eps", "inv_std", "factor", "normalized")
    """The tensors between the norm's ops, in order: each gets its own int8 range in a quantized file, so
    quantization-aware training (``export.qat``) fake-quantizes each of them."""

    def call(self, x: tf.Tensor) -> tf.Tensor:
        return self.normalize(x, lambda name, tensor: tensor)

    def normalize(self, x: tf.Tensor, point: Callable[[str, tf.Tensor], tf.Tensor]) -> tf.Tensor:
        """The norm, passing each tensor of ``POINTS`` through ``point(name, tensor)`` (the identity here)."""
        mean = point("mean", tf.reduce_mean(x, axis=[1, 2], keepdims=True))
        centered = point("centered", x - mean)
        # centered * centered, not tf.square(x - mean): the converter fuses the latter into SQUARED_DIFFERENCE,
        # which NNAPI does not support (every norm then split the graph); the per-channel factor is formed
        # before it meets the full-size map, one multiplication of the map fewer
        squared = point("squared", centered * centered)
        variance = point("variance", tf.reduce_mean(squared, axis=[1, 2], keepdims=True))
        inv_std = point("inv_std", tf.math.rsqrt(point("variance_eps", variance + self.epsilon)))
        return point("normalized", centered * point("factor", inv_std * self.scale)) + self.shift

    def get_config(self) -> dict:
        return {**super().get_config(), "epsilon": self.epsilon}
