"""A mobile-sized learned ISP: packed Bayer (H x W x 4, [0, 1]) -> RGB at 2H x 2W, as PyNET level 0.

In the spirit of PyNET-V2 Mobile, MicroISP and the Mobile AI ISP challenge winners: a small U-net over three
scales (H, H/2, H/4) instead of PyNET's five, 3x3 stride-2 convolutions instead of max-pooling, ReLU (fused
into the convolution in TFLite) instead of LeakyReLU + instance norm, residual blocks with channel attention,
1x1 conv + depth_to_space upsampling with the encoder's features ADDed back, and a depth_to_space output head.
Every op is one the NNAPI 1.2 and TFLite GPU delegates and full-integer int8 TFLite support: CONV_2D, ADD,
MUL, MEAN / REDUCE_MAX / REDUCE_MIN (global pooling), CONCATENATION, LEAKY_RELU, LOGISTIC, DEPTH_TO_SPACE,
TANH; no RSQRT (no normalisation), so int8 keeps its speed (with instance norm, int8 was no faster).

The scales are data (``STAGES``) built by one loop; ``width`` scales every channel count. Two stride-2
convolutions need H and W to be multiples of 4 (``DOWNSAMPLING``), so a 12 MP frame (1500 x 2000 packed)
goes through whole; other sizes are an ``InputShapeError`` naming the nearest valid size.

Budget, measured 2026-11-25 on this 2-core AMD EPYC (AVX2, no AVX-512/VNNI), random He-normal weights:

| width | params | GFLOP per output MP | vs PyNET (3,349) | GFLOP at 12 MP | int8 12 MP, s | fp32 12 MP, s |
| ---: | ---: | ---: | ---: | ---: | ---: | ---: |
| 8 | 59,830 | 3.9 | 1/855 | 47 | | |
| **12** | 133,371 | 8.3 | 1/402 | 100 | **1.14-1.25** | 1.45 |
| 16 | 236,000 | 14.4 | 1/232 | 173 | 1.52 | |

MicroISP fp32 (``../shared/data/third_party/MicroISP.tflite``, 42 GFLOP) in the same interleaved run: 2.29 s
(init 14.5 s, 10.4 GB peak). An earlier round under another job's load, before the attention had its
minimum, gave MicroISP 3.80 s, width 12 2.46 s, width 16 3.03 s, width 8 1.25 s. So ``DEFAULT_WIDTH`` 12: its
int8 file took 0.50-0.65x MicroISP's time in every round, where width 16 took 0.66-0.80x. int8 is only 1.2x
faster than fp32 here (no VNNI: XNNPACK's int8 GEMMs gain little on AVX2).
FLOPs: ``pynet_tf.flops.forward_flops`` of ``build_pynet(0)`` (width 32) and ``build_mobile(w)`` at 64x64
packed. Every file: XNNPACK took all nodes (one partition); ``export.delegates.delegate_report``: GPU full,
NNAPI full from API 29, float32 and int8 alike; ``export.formats.float_ops`` of the int8 file: none.

How: the int8 files were converted at 1x1500x2000x4 with ``convert_int8``'s converter settings
(``export.tflite.converter_for``, ``Optimize.DEFAULT``, ``TFLITE_BUILTINS_INT8``, representative data: two
``default_calibration((192, 256))`` crops resized to 1500x2000) but without its QuantizationDebugger analysis,
which at 12 MP was OOM-killed past 20 GB here (it keeps every float intermediate), and without its held-out
fidelity (the embedded sample photos are smaller than a 12 MP frame); fp32 with ``convert_float32``. Timed with
``python -m android_bench.host FILE --delegate xnnpack --threads 2 --warmup 1 --runs 3`` (``measure``), one
fresh process per file, files interleaved.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import tensorflow as tf
import tf_keras as keras

from pynet_tf import shapes
from pynet_tf.layers import SameConv2D, ScaledTanh

DEFAULT_WIDTH = 12
"""Channels at full (packed) resolution; coarser stages multiply it (``Stage.channels``)."""
ATTENTION_REDUCTION = 4
"""Channel attention squeezes C channels to C / 4 (at least 1) between its two 1x1 convolutions."""
OUTPUT_BLOCK = 2
"""The head's depth_to_space block: one packed pixel is a 2x2 Bayer quad, so the photo is 2H x 2W."""
SQUEEZE_SLOPE = 0.2
"""The attention's squeeze uses LeakyReLU, not ReLU: its few units (width / 4 at full resolution) can all be
negative on every calibration image, and the int8 file then gives that tensor a scale of ~1e-8, which XNNPACK
refuses (a conv rescale of 1.5e4 > 256), crashing LiteRT 2.3's delegate set-up (double free): measured with
width 8 at random init. A LeakyReLU output always varies with its input."""
_INIT = "he_normal"  # ReLU networks without normalisation keep their activations' scale with He init


@dataclass(frozen=True)
class Stage:
    """One scale of the U-net, finest first: ``channels`` x width feature maps, ``encoder`` residual blocks
    on the way down (their output is the skip ADDed to the upsampled coarser features) and ``decoder``
    blocks on the way up. The coarsest stage runs its encoder then its decoder blocks, with no skip.
    """

    channels: int
    encoder: int
    decoder: int


STAGES: tuple[Stage, ...] = (
    Stage(channels=1, encoder=0, decoder=1),  # H x W: a stem conv down, one block up (full size is dear)
    Stage(channels=2, encoder=1, decoder=1),  # H/2
    Stage(channels=4, encoder=1, decoder=1),  # H/4: the bottleneck, where most blocks are cheap
)
DOWNSAMPLING = 2 ** (len(STAGES) - 1)
"""One stride-2 convolution between consecutive stages: H and W must be multiples of this."""


def validate_input_shape(height: int | None, width: int | None, channels: int | None = 4) -> None:
    """Raise ``InputShapeError`` unless a packed input of this size fits the strides (None: run time)."""
    shapes.check_input_shape(
        height,
        width,
        channels,
        downsampling=DOWNSAMPLING,
        network="the mobile ISP",
        why=f"the mobile ISP has {len(STAGES) - 1} stride-2 convolutions",
    )


@keras.saving.register_keras_serializable(package="pynet_tf")
class MobileInputCheck(keras.layers.Layer):
    """Identity that raises ``InputShapeError`` when the model meets a packed size its strides cannot take
    (checked on the static shape while Keras calls or traces: no op in the graph or an exported file)."""

    def call(self, x: tf.Tensor) -> tf.Tensor:
        validate_input_shape(*x.shape[1:])
        return x


@keras.saving.register_keras_serializable(package="pynet_tf")
class DepthToSpace(keras.layers.Layer):
    """``tf.nn.depth_to_space`` as a registered layer (a ``Lambda`` would not reload from a .keras file):
    C x b^2 channels at H x W -> C channels at bH x bW, TFLite's DEPTH_TO_SPACE."""

    def __init__(self, block_size: int, **kwargs):
        super().__init__(**kwargs)
        self.block_size = block_size

    def call(self, x: tf.Tensor) -> tf.Tensor:
        return tf.nn.depth_to_space(x, self.block_size)

    def compute_output_shape(self, input_shape: Sequence[int | None]) -> tuple[int | None, ...]:
        batch, height, width, channels = input_shape
        grow = lambda size: None if size is None else size * self.block_size
        return batch, grow(height), grow(width), channels // self.block_size**2

    def get_config(self) -> dict:
        return {**super().get_config(), "block_size": self.block_size}


@keras.saving.register_keras_serializable(package="pynet_tf")
class GlobalMinPooling(keras.layers.Layer):
    """Each channel's minimum over H and W as a 1 x 1 map (TFLite's REDUCE_MIN); Keras has no such layer."""

    def call(self, x: tf.Tensor) -> tf.Tensor:
        return tf.reduce_min(x, axis=[1, 2], keepdims=True)

    def compute_output_shape(self, input_shape: Sequence[int | None]) -> tuple[int | None, ...]:
        return input_shape[0], 1, 1, input_shape[-1]


def build_mobile(
    width: int = DEFAULT_WIDTH, input_shape: Sequence[int | None] = (None, None, 4)
) -> keras.Model:
    """The mobile ISP: packed Bayer ``input_shape`` (H, W, 4) in [0, 1] -> RGB (2H, 2W, 3), PyNET level 0's
    contract (input ``raw``, output layer ``level_0``, ``tanh(x) * 0.58 + 0.5``)."""
    if not isinstance(width, int) or isinstance(width, bool) or width < 1:
        raise ValueError(f"width must be a positive integer, got {width!r}")
    if len(input_shape) != 3:
        raise shapes.InputShapeError(f"input_shape must be (height, width, 4), got {tuple(input_shape)}")
    validate_input_shape(*input_shape)

    inputs = keras.Input(shape=tuple(input_shape), name="raw")
    x = MobileInputCheck(name="input_check")(inputs)
    x = _conv(x, width * STAGES[0].channels, 3, "s0_stem", relu=True)
    skips = []
    for index, stage in enumerate(STAGES):
        channels = width * stage.channels
        if index:
            x = keras.layers.Conv2D(
                channels,
                3,
                strides=2,
                padding="same",
                activation="relu",
                kernel_initializer=_INIT,
                name=f"s{index}_down",
            )(x)
        for block in range(stage.encoder):
            x = _residual_block(x, f"s{index}_enc{block}")
        skips.append(x)
    for index in range(len(STAGES) - 1, -1, -1):
        if index < len(STAGES) - 1:
            x = _upsample(x, width * STAGES[index].channels, f"s{index}_up")
            x = keras.layers.Add(name=f"s{index}_skip")([x, skips[index]])
        for block in range(STAGES[index].decoder):
            x = _residual_block(x, f"s{index}_dec{block}")
    x = _conv(x, 3 * OUTPUT_BLOCK**2, 3, "out_conv", relu=False)
    x = DepthToSpace(OUTPUT_BLOCK, name="out_d2s")(x)
    return keras.Model(inputs, ScaledTanh(name="level_0")(x), name=f"mobile_isp_w{width}")


def _conv(x: tf.Tensor, filters: int, kernel: int, name: str, relu: bool) -> tf.Tensor:
    """A stride-1 ``same`` convolution (``SameConv2D``: faster gradients), ReLU fused when asked."""
    return SameConv2D(
        filters, kernel, activation="relu" if relu else None, kernel_initializer=_INIT, name=name
    )(x)


def _channel_attention(x: tf.Tensor, name: str) -> tf.Tensor:
    """Squeeze-and-excitation from delegate-friendly ops: each channel's global mean, maximum and minimum
    (MEAN, REDUCE_MAX, REDUCE_MIN), concatenated -> 1x1 conv, LeakyReLU -> 1x1 conv, sigmoid -> MUL: each
    channel rescaled by a weight in (0, 1) computed from the whole image (its colour balance, its brightness).

    The maximum and minimum are what keep the int8 file whole and accurate. NNAPI accepts a quantized MEAN
    only with its output's scale and zero-point equal to its input's, which calibration alone never gives (a
    mean spans less than its input: ``delegate_report`` found every int8 MEAN unsupported by NNAPI). int8
    TFLite gives REDUCE_MAX, REDUCE_MIN and CONCATENATION one scale for their inputs and output, so the
    concatenation ties the mean to the map's scale; and since the concatenation's calibrated range is what
    the map gets, it must span the map's whole range: with the mean and maximum alone its minimum was the
    smallest mean, the map was clipped there, and the tiny net's int8 file fell to 23.8 dB versus float.
    """
    pooled = keras.layers.Concatenate(name=f"{name}_pool")(
        [
            keras.layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_mean")(x),
            keras.layers.GlobalMaxPooling2D(keepdims=True, name=f"{name}_max")(x),
            GlobalMinPooling(name=f"{name}_min")(x),
        ]
    )
    channels = x.shape[-1]
    weights = _conv(pooled, max(1, channels // ATTENTION_REDUCTION), 1, f"{name}_squeeze", relu=False)
    weights = keras.layers.LeakyReLU(SQUEEZE_SLOPE, name=f"{name}_squeeze_act")(weights)
    weights = SameConv2D(channels, 1, kernel_initializer=_INIT, name=f"{name}_excite")(weights)
    # a layer of its own (the same CONV_2D + LOGISTIC in TFLite): tfmot fake-quantizes its output, where a
    # conv's own sigmoid would be quantized before and after it
    weights = keras.layers.Activation("sigmoid", name=f"{name}_gate")(weights)
    return keras.layers.Multiply(name=f"{name}_scale")([x, weights])


def _residual_block(x: tf.Tensor, name: str) -> tf.Tensor:
    """RCAN's block: 3x3 conv, ReLU, 3x3 conv, channel attention, ADD the input."""
    channels = x.shape[-1]
    y = _conv(x, channels, 3, f"{name}_conv1", relu=True)
    y = _conv(y, channels, 3, f"{name}_conv2", relu=False)
    y = _channel_attention(y, f"{name}_ca")
    return keras.layers.Add(name=f"{name}_res")([x, y])


def _upsample(x: tf.Tensor, channels: int, name: str) -> tf.Tensor:
    """2x up: a 1x1 conv to 4 x ``channels`` at the coarse scale, then depth_to_space (no transposed conv)."""
    x = _conv(x, 4 * channels, 1, f"{name}_conv", relu=False)
    return DepthToSpace(2, name=f"{name}_d2s")(x)
