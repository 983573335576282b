"""PyNET (Ignatov et al., "Replacing Mobile Camera ISP with a Single Deep Learning Model", 2020) in Keras.

An inverted pyramid of six levels over the packed 4-channel Bayer input (H x W x 4, [0, 1]):

    level 1 at H x W (32 maps) -> pool -> level 2 at H/2 (64) -> ... -> level 5 at H/16 (512)
    level 5 -> up -> level 4 -> up -> ... -> level 1 -> transposed conv -> level 0 at 2H x 2W (RGB)

Level L > 0 outputs RGB at H / 2^(L-1); level 0 is the full-resolution photo. The reference trains one level
at a time, coarsest first, each level warm-started from the one below it: ``build_pynet(L)`` builds the
sub-network that produces level L, and ``transfer_weights`` carries a level-(L+1) model's weights into it
(layer names are stable across levels).

The architecture is the reference's (official TF code) exactly: multi-conv blocks (pairs of 3x3, 5x5, 7x7,
9x9 convs in parallel, concatenated), LeakyReLU(0.2), instance norm, 2x2 max-pool down, stride-2 3x3
transposed conv without bias + LeakyReLU up, and ``tanh(x) * 0.58 + 0.5`` outputs. Instead of the
reference's six hand-written level branches, each level is described by data (``PYRAMID``) and built by one
loop. At ``base_filters=32`` the six-output model has 47,548,170 trainable parameters, as the reference.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import tensorflow as tf
import tf_keras as keras

from pynet_tf.layers import SameConv2D, ScaledTanh
from pynet_tf.nets.pynet.layers import InputShapeCheck, InstanceNorm
from pynet_tf.nets.pynet.levels import check_level, validate_input_shape
from pynet_tf.shapes import InputShapeError

LEVEL0_FILTERS = 8
"""Width of the level-0 transposed conv; the reference's fixed 8, independent of ``base_filters``."""
LEAKY_SLOPE = 0.2

_REFERENCE_KERNEL = {"class_name": "TruncatedNormal", "config": {"stddev": 0.01}}
_HE_KERNEL = {
    "class_name": "VarianceScaling",  # He et al. 2015 for LeakyReLU(0.2): variance 2 / (1.04 fan_in)
    "config": {"scale": 2.0 / (1.0 + LEAKY_SLOPE**2), "mode": "fan_in", "distribution": "truncated_normal"},
}


@dataclass(frozen=True)
class Initialization:
    kernel: dict
    """Every hidden convolution's and transposed convolution's kernel."""
    bias: dict
    head: dict
    """The output convolutions' kernels."""


INITIALIZATIONS: dict[str, Initialization] = {
    # The reference's: every kernel a truncated normal of stddev 0.01, every bias 0.01.
    "reference": Initialization(
        _REFERENCE_KERNEL, {"class_name": "Constant", "config": {"value": 0.01}}, _REFERENCE_KERNEL
    ),
    # He's for the hidden layers, so that a signal crosses the unnormalised level-1 decoder at any width;
    # the reference's small kernels for the output heads, so that a new level starts from a mid-grey image
    # rather than saturated noise it must first unlearn.
    "he": Initialization(_HE_KERNEL, {"class_name": "Zeros", "config": {}}, _REFERENCE_KERNEL),
}


@dataclass(frozen=True)
class Block:
    """One multi-conv block: parallel pairs of k x k convs for k = 3, 5, ... up to ``kernel``, concatenated.

    ``residual`` adds the block's input to its output; ``norm`` says whether the block's convs use the
    level's instance norm; ``concat`` lists tensors appended to the output afterwards, in order:
    ``"skip"`` (this level's encoder block) and ``"up"`` (the second upsampling from the coarser level).
    """

    kernel: int
    residual: bool = False
    norm: bool = True
    concat: tuple[str, ...] = ()


@dataclass(frozen=True)
class LevelSpec:
    """A level's encoder block (``None`` for level 5, which starts from the pooled level-4 features) and
    its decoder blocks. A decoder's first block reads ``concat(skip, up)``; level 5's reads the pooled input.
    """

    encoder: Block | None
    decoder: tuple[Block, ...]


_NO_NORM = {"norm": False}
PYRAMID: dict[int, LevelSpec] = {
    5: LevelSpec(None, (Block(3), Block(3, residual=True), Block(3, residual=True), Block(3))),
    4: LevelSpec(
        Block(3),
        (Block(3), Block(3, residual=True), Block(3, residual=True), Block(3, concat=("up",)), Block(3)),
    ),
    3: LevelSpec(
        Block(3),
        (
            Block(5, residual=True),
            Block(5, residual=True),
            Block(5, residual=True),
            Block(5, concat=("skip", "up")),
            Block(3),
        ),
    ),
    2: LevelSpec(
        Block(3),
        (
            Block(5, concat=("skip",)),
            Block(7, residual=True),
            Block(7, residual=True),
            Block(7, residual=True),
            Block(7, concat=("skip",)),
            Block(5, concat=("up",)),
            Block(3),
        ),
    ),
    # Level 1 normalises only its 9x9 blocks, and only with instance_norm_level_1 (off by default).
    1: LevelSpec(
        Block(3, **_NO_NORM),
        (
            Block(5, concat=("skip",), **_NO_NORM),
            Block(7, **_NO_NORM),
            Block(9),
            Block(9, residual=True),
            Block(9, residual=True),
            Block(9, residual=True),
            Block(7, concat=("skip",), **_NO_NORM),
            Block(5, concat=("up", "skip"), **_NO_NORM),
            Block(3, **_NO_NORM),
        ),
    ),
}
"""Levels 5..1 as data, transcribed from the reference ``PyNET()``; level 0 is a fixed upsampling head."""


def level_width(level: int, base_filters: int) -> int:
    """Feature maps of one branch of a level's blocks: 32, 64, 128, 256, 512 for levels 1..5 at base 32."""
    return base_filters * 2 ** (level - 1)


def build_pynet(
    level: int,
    *,
    base_filters: int = 32,
    instance_norm: bool = True,
    instance_norm_level_1: bool = False,
    input_shape: Sequence[int | None] = (None, None, 4),
    all_outputs: bool = False,
    init: str = "reference",
) -> keras.Model:
    """PyNET up to level ``level``: packed Bayer (H, W, 4) in [0, 1] -> that level's RGB output.

    ``base_filters`` scales every width (32 is the paper's; 16, 8, 4 for CPU runs). With ``all_outputs``
    the model returns a dict ``{"level_5": ..., ..., "level_<level>": ...}`` with every coarser level's
    output too, as the reference graph does; otherwise it returns level ``level``'s output alone.
    """
    check_level(level)
    if not isinstance(base_filters, int) or base_filters < 1:
        raise ValueError(f"base_filters must be a positive integer, got {base_filters!r}")
    if len(input_shape) != 3:
        raise InputShapeError(f"input_shape must be (height, width, 4), got {tuple(input_shape)}")
    validate_input_shape(*input_shape)
    norms = {lvl: instance_norm for lvl in PYRAMID} | {1: instance_norm_level_1}
    net = _Layers(base_filters, norms, INITIALIZATIONS[init])

    inputs = keras.Input(shape=tuple(input_shape), name="raw")
    skips: dict[int, tf.Tensor] = {}
    x = InputShapeCheck(name="input_check")(inputs)
    for lvl in (1, 2, 3, 4):
        skips[lvl] = net.block(x, lvl, PYRAMID[lvl].encoder, f"l{lvl}_enc")
        x = keras.layers.MaxPool2D(2, name=f"l{lvl}_pool")(skips[lvl])

    finest = max(level, 1)
    outputs: dict[str, tf.Tensor] = {}
    up: tuple[tf.Tensor, tf.Tensor] | None = None
    for lvl in range(5, finest - 1, -1):
        if up is not None:
            x = keras.layers.Concatenate(name=f"l{lvl}_in")([skips[lvl], up[0]])
        for index, block in enumerate(PYRAMID[lvl].decoder, start=1):
            extra = {"skip": skips.get(lvl), "up": up[1] if up else None}
            x = net.decoder_block(x, lvl, block, f"l{lvl}_dec{index}", extra)
        if all_outputs or lvl == level:
            outputs[f"level_{lvl}"] = net.head(x, lvl)
        if lvl > finest:
            width = level_width(lvl - 1, base_filters)
            up = (net.upsample(x, width, f"l{lvl}_up_a"), net.upsample(x, width, f"l{lvl}_up_b"))
    if level == 0:
        outputs["level_0"] = net.head(net.upsample(x, LEVEL0_FILTERS, "l0_up"), 0)

    return keras.Model(
        inputs, outputs if all_outputs else outputs[f"level_{level}"], name=f"pynet_level{level}"
    )


class _Layers:
    """Creates PyNET's layers with stable names, so that the same layer has the same name at every level."""

    def __init__(self, base_filters: int, norms: dict[int, bool], init: Initialization):
        self.base_filters = base_filters
        self.norms = norms
        self.init = init

    def conv(self, x: tf.Tensor, filters: int, kernel: int, name: str, norm: bool) -> tf.Tensor:
        x = SameConv2D(
            filters,
            kernel,
            kernel_initializer=self.init.kernel,
            bias_initializer=self.init.bias,
            name=name,
        )(x)
        if norm:
            x = InstanceNorm(name=f"{name}_norm")(x)
        return keras.layers.LeakyReLU(LEAKY_SLOPE, name=f"{name}_act")(x)

    def block(self, x: tf.Tensor, level: int, block: Block, name: str) -> tf.Tensor:
        """The reference ``_conv_multi_block``: one pair of convs per kernel size, outputs concatenated."""
        filters = level_width(level, self.base_filters)
        norm = block.norm and self.norms[level]
        branches = []
        for kernel in range(3, block.kernel + 1, 2):
            branch = self.conv(x, filters, kernel, f"{name}_{kernel}x{kernel}a", norm)
            branches.append(self.conv(branch, filters, kernel, f"{name}_{kernel}x{kernel}b", norm))
        if len(branches) == 1:
            return branches[0]
        return keras.layers.Concatenate(name=f"{name}_cat")(branches)

    def decoder_block(
        self, x: tf.Tensor, level: int, block: Block, name: str, extra: dict[str, tf.Tensor | None]
    ) -> tf.Tensor:
        y = self.block(x, level, block, name)
        if block.residual:
            y = keras.layers.Add(name=f"{name}_res")([y, x])
        if block.concat:
            y = keras.layers.Concatenate(name=f"{name}_join")([y, *(extra[key] for key in block.concat)])
        return y

    def upsample(self, x: tf.Tensor, filters: int, name: str) -> tf.Tensor:
        """The reference ``_conv_tranpose_layer``: 3x3 stride-2 transposed conv, no bias, LeakyReLU."""
        x = keras.layers.Conv2DTranspose(
            filters,
            3,
            strides=2,
            padding="same",
            use_bias=False,
            kernel_initializer=self.init.kernel,
            name=name,
        )(x)
        return keras.layers.LeakyReLU(LEAKY_SLOPE, name=f"{name}_act")(x)

    def head(self, x: tf.Tensor, level: int) -> tf.Tensor:
        """A level's RGB output: a 3x3 conv to 3 channels, then ``tanh(x) * 0.58 + 0.5``."""
        x = SameConv2D(
            3,
            3,
            kernel_initializer=self.init.head,
            bias_initializer=self.init.bias,
            name=f"l{level}_out_conv",
        )(x)
        return ScaledTanh(name=f"level_{level}")(x)


@dataclass(frozen=True)
class TransferReport:
    """What ``transfer_weights`` did, by layer name."""

    loaded: tuple[str, ...]
    """Layers of the target whose weights came from the source."""
    new: tuple[str, ...]
    """Layers of the target with weights the source does not have (they keep their initialisation)."""
    dropped: tuple[str, ...]
    """Layers of the source the target does not use (e.g. the coarser level's output head)."""

    def __str__(self) -> str:
        return (
            f"warm start: {len(self.loaded)} layers loaded, {len(self.new)} new "
            f"({', '.join(self.new) or '-'}), {len(self.dropped)} not used ({', '.join(self.dropped) or '-'})"
        )


def shared_layers(source: keras.Model, target: keras.Model) -> list[str]:
    """Names of the weighted layers ``target`` has in common with ``source``, in ``target``'s order: what a
    warm start copies."""
    names = {layer.name for layer in source.layers if layer.weights}
    return [layer.name for layer in target.layers if layer.weights and layer.name in names]


def transfer_weights(source: keras.Model, target: keras.Model) -> TransferReport:
    """Copy every weighted layer of ``source`` into the layer of the same name in ``target``.

    This is the reference's warm start (level L grows from level L+1). A layer present in both with
    different weight shapes (e.g. another ``base_filters``) is an error naming the layer, raised before
    anything is copied.
    """
    source_layers = {layer.name: layer for layer in source.layers if layer.weights}
    target_layers = {layer.name: layer for layer in target.layers if layer.weights}
    shared = shared_layers(source, target)
    for name in shared:
        got = [tuple(w.shape) for w in source_layers[name].weights]
        want = [tuple(w.shape) for w in target_layers[name].weights]
        if got != want:
            raise ValueError(
                f"cannot warm-start layer {name!r}: source {source.name} has weights {got}, target "
                f"{target.name} needs {want} (were both built with the same base_filters and norms?)"
            )
    for name in shared:
        target_layers[name].set_weights(source_layers[name].get_weights())
    return TransferReport(
        loaded=tuple(shared),
        new=tuple(name for name in target_layers if name not in source_layers),
        dropped=tuple(name for name in source_layers if name not in target_layers),
    )
