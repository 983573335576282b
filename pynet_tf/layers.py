"""The networks' shared non-standard operations as small registered Keras layers.

Python ``Lambda`` layers do not reload from ``.keras`` files and tfmot rejects TF-op lambdas, so every
operation that is not a stock Keras layer is a layer registered under the ``pynet_tf`` package name: the ones
both networks use live here, a network's own in its folder (``pynet_tf/nets/*/``). ``SameConv2D`` is Keras'
Conv2D with faster gradients (training speed only). PyNET's norm and the output
activation are written with plain TF ops that the TFLite converter maps to builtins in fp32, fp16,
dynamic-range and full-integer int8 (``tf_keras.layers.GroupNormalization(groups=-1)`` is not used: its
BROADCAST_TO breaks int8 calibration with a dynamic batch in TF 2.21).
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

import tensorflow as tf
import tf_keras as keras


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


PER_IMAGE_MIN_AREA = 2048
"""Feature maps of at least this many pixels (H x W) get ``same_conv2d``'s per-image kernel gradient.

Measured here (2 cores, XLA and graph mode alike): a 9x9 128->32 conv at 224x224, batch 1, gets its kernel
gradient 8.5x faster this way (0.75 s against 6.4 s; TF's Conv2DBackpropFilter runs at 5-9 GFLOP/s there
against 35-45 for a forward convolution); at 56x56, batch 18, 1.2-2x faster; at 28x28, batch 48, the same;
at 14x14, batch 50, 2x slower (one small convolution per image). Smaller maps keep TF's own kernel gradient.
"""


def _kernel_gradient(x: tf.Tensor, dy: tf.Tensor, kernel_shape: tf.TensorShape) -> tf.Tensor:
    """d loss / d kernel of a stride-1 ``same`` convolution with an odd square kernel.

    For each image, the padded input with its channels as the batch is correlated with the output gradient
    as the filter (``VALID``: one output per kernel tap), and the images are summed: a forward convolution,
    which TF's CPU kernels and XLA run several times faster than ``Conv2DBackpropFilter`` on large maps.
    Unknown batch sizes and small maps use ``Conv2DBackpropFilter`` itself (``PER_IMAGE_MIN_AREA``).
    """
    batch, height, width = x.shape[:3]
    if batch is None or height is None or width is None or height * width < PER_IMAGE_MIN_AREA:
        return tf.raw_ops.Conv2DBackpropFilter(
            input=x, filter_sizes=kernel_shape, out_backprop=dy, strides=[1, 1, 1, 1], padding="SAME"
        )
    pad = kernel_shape[0] // 2
    per_image = []
    for index in range(batch):
        image = tf.pad(x[index : index + 1], [[0, 0], [pad, pad], [pad, pad], [0, 0]])
        # (C_in, H + 2p, W + 2p, 1) correlated with (H, W, 1, C_out) -> (C_in, k, k, C_out)
        per_image.append(
            tf.nn.conv2d(
                tf.transpose(image, [3, 1, 2, 0]),
                tf.transpose(dy[index : index + 1], [1, 2, 0, 3]),
                1,
                "VALID",
            )
        )
    return tf.transpose(tf.add_n(per_image), [1, 2, 0, 3])


_TF_GRADIENTS = contextvars.ContextVar("tf_gradients", default=False)


@contextlib.contextmanager
def tf_gradients() -> Iterator[None]:
    """Inside, ``SameConv2D`` traces as plain Conv2D, with TF's own gradients: for graphs that are never
    trained, such as a TFLite conversion's. The converter saves its input as a SavedModel, which traces
    the gradient function of every custom gradient (PyNET level 0 at width 4: 28 of its 45 s)."""
    token = _TF_GRADIENTS.set(True)
    try:
        yield
    finally:
        _TF_GRADIENTS.reset(token)


@tf.custom_gradient
def same_conv2d(x: tf.Tensor, kernel: tf.Tensor):
    """``tf.nn.conv2d(x, kernel, 1, "SAME")`` (NHWC, odd square kernel) with its gradients computed as forward
    convolutions: the input gradient correlates the output gradient with the kernel rotated by 180 degrees and
    its channel axes swapped (4x faster than ``Conv2DBackpropInput`` without XLA, the same with it), the kernel
    gradient as ``_kernel_gradient``. The values equal TF's own gradients up to float32 summation order.
    """

    def gradient(dy: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        rotated = tf.reverse(tf.transpose(kernel, [0, 1, 3, 2]), [0, 1])
        return tf.nn.conv2d(dy, rotated, 1, "SAME"), _kernel_gradient(x, dy, kernel.shape)

    return tf.nn.conv2d(x, kernel, 1, "SAME"), gradient


@keras.saving.register_keras_serializable(package="pynet_tf")
class SameConv2D(keras.layers.Conv2D):
    """``keras.layers.Conv2D`` with stride 1, an odd square kernel and ``same`` padding, trained through
    ``same_conv2d``'s gradients: PyNET's convolutions. The forward graph, weights and exported ops are
    Conv2D's own; only training is faster (a full-width level-0 step: see ``benchmarks/train_step.py``).
    """

    def __init__(self, filters: int, kernel_size: int, padding: str = "same", **kwargs):
        super().__init__(filters, kernel_size, padding=padding, **kwargs)
        size = self.kernel_size
        if (
            size[0] != size[1]
            or size[0] % 2 != 1
            or self.padding != "same"
            or self.strides != (1, 1)
            or self.dilation_rate != (1, 1)
            or self.groups != 1
            or self.data_format != "channels_last"
        ):
            raise ValueError(
                f"SameConv2D {self.name}: needs an odd square kernel, 'same' padding, stride 1, no dilation or "
                f"groups, channels_last; got kernel {size}, {self.padding!r}, strides {self.strides}, dilation "
                f"{self.dilation_rate}, groups {self.groups}, {self.data_format} (use keras.layers.Conv2D)"
            )

    def convolution_op(self, inputs: tf.Tensor, kernel: tf.Tensor) -> tf.Tensor:
        if _TF_GRADIENTS.get():
            return super().convolution_op(inputs, kernel)
        return same_conv2d(inputs, kernel)
