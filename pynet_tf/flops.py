"""Floating-point operations of a Keras image model, counted from its layers' shapes.

Convolutions are nearly all of an image CNN's arithmetic: a k x k conv from c_in to c_out channels costs
2 * k * k * c_in * c_out per output pixel (a multiply and an add), a stride-2 transposed conv the same per
input pixel, plus one addition per output value for a bias. Other layers are counted per element as
TensorFlow's profiler counts their ops: one for activations, pooling and additions, six for instance norm
(two means, subtract, square, scale, shift), so the total is comparable with the profiler's.
A training step costs about three forward passes (forward, gradients of activations and of weights).
"""

from __future__ import annotations

import numpy as np
import tf_keras as keras

from pynet_tf.nets.pynet.layers import InstanceNorm

TRAIN_STEP_FORWARDS = 3
INSTANCE_NORM_OPS = 6


def forward_flops(model: keras.Model, input_size: tuple[int, int] | None = None) -> int:
    """FLOPs of one forward pass of ``model`` for one image of its static input size, or of ``input_size``
    (height, width) for a model built for run-time sizes (counted on a clone built at that size)."""
    if input_size is not None:
        channels = model.input_shape[-1]
        model = keras.models.clone_model(model, input_tensors=keras.Input((*input_size, channels)))
    if any(size is None for size in model.input_shape[1:]):
        raise ValueError(
            f"count FLOPs on a model built for a fixed input size, got input {model.input_shape}"
        )
    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2DTranspose):
            kh, kw, c_out, c_in = layer.kernel.shape
            _, h, w, _ = layer.input_shape
            total += 2 * h * w * kh * kw * c_in * c_out
        elif isinstance(layer, keras.layers.Conv2D):
            kh, kw, c_in, c_out = layer.kernel.shape
            _, h, w, _ = layer.output_shape
            total += 2 * h * w * kh * kw * c_in * c_out + (h * w * c_out if layer.use_bias else 0)
        elif isinstance(layer, InstanceNorm):
            total += INSTANCE_NORM_OPS * _elements(layer.output_shape)
        elif not isinstance(layer, keras.layers.InputLayer):
            total += _elements(layer.output_shape)
    return int(total)


def _elements(shape) -> int:
    shapes = shape if isinstance(shape, list) else [shape]
    return int(sum(np.prod(s[1:]) for s in shapes))
