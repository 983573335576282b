"""PyNET's non-standard operations as small registered Keras layers.

Python ``Lambda`` layers do not reload from ``.keras`` files and tfmot rejects TF-op lambdas, so every
operation that is not a stock Keras layer lives here, registered under the ``pynet_tf`` package name.
Both are written with plain TF ops that the TFLite converter maps to builtins in fp32, fp16,
dynamic-range and full-integer int8 (``tf_keras.layers.GroupNormalization(groups=-1)`` is not used: its
BROADCAST_TO breaks int8 calibration with a dynamic batch in TF 2.21).
"""

from __future__ import annotations

import tensorflow as tf
import tf_keras as keras

from pynet_tf.shapes import validate_input_shape


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

    def call(self, x: tf.Tensor) -> tf.Tensor:
        mean = tf.reduce_mean(x, axis=[1, 2], keepdims=True)
        centered = x - mean
        variance = tf.reduce_mean(tf.square(centered), axis=[1, 2], keepdims=True)
        return centered * tf.math.rsqrt(variance + self.epsilon) * self.scale + self.shift

    def get_config(self) -> dict:
        return {**super().get_config(), "epsilon": self.epsilon}


@keras.saving.register_keras_serializable(package="pynet_tf")
class ScaledTanh(keras.layers.Layer):
    """PyNET's output activation ``tanh(x) * scale + offset``; the reference's 0.58/0.5 reach [-0.08, 1.08].

    The range slightly wider than [0, 1] lets the network reach pure black and white without saturating tanh.
    """

    def __init__(self, scale: float = 0.58, offset: float = 0.5, **kwargs):
        super().__init__(**kwargs)
        self.scale = scale
        self.offset = offset

    def call(self, x: tf.Tensor) -> tf.Tensor:
        return tf.tanh(x) * self.scale + self.offset

    def get_config(self) -> dict:
        return {**super().get_config(), "scale": self.scale, "offset": self.offset}
