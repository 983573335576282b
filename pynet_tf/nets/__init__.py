"""The networks, one folder each: its builder, layers, input-size rule and quantization configs.

A network's ``__init__`` describes it as an ``Architecture``; ``pynet_tf.architectures`` registers every
one by name, and the trainer, QAT and the exporters ask that registry, so a third network is a third folder
and one line there.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pynet_tf.shapes import ShapeCheck

if TYPE_CHECKING:
    import tf_keras as keras


@dataclass(frozen=True)
class Architecture:
    name: str
    description: str
    levels: tuple[int, ...]
    """The levels it has, coarsest first (its default ``--levels``)."""
    default_width: int
    """``--base-filters`` when neither the flag nor the preset sets it for this network."""
    build: Callable[..., keras.Model]
    """``(level, width, *, init, instance_norm, instance_norm_level_1) -> model`` taking packed inputs of any
    valid size; ``init`` names PyNET's kernel initialisation (``nets.pynet.model.INITIALIZATIONS``),
    ``instance_norm`` switches its normalised levels (2-5) and ``instance_norm_level_1`` level 1's; the mobile
    ISP has none of them (He-normal kernels, no norms)."""
    validate_input_shape: ShapeCheck
    """Raises ``shapes.InputShapeError`` for a packed H x W the network cannot take."""
    downsampling: int
    """Packed H and W must be multiples of this (what ``validate_input_shape`` checks)."""
    input_check: type[keras.layers.Layer]
    """The layer class the builder puts right after the input: how a model file without ``level.json`` is
    told apart (``architectures.of_keras``)."""
    quantize_as: Mapping[type[keras.layers.Layer], str]
    """How quantization-aware training treats the layers tfmot's 8-bit registry does not know, by class:
    ``instance_norm`` and ``scaled_tanh`` (rewritten as the ops the converter emits, a fake-quant after each),
    ``as_conv2d`` (Conv2D's forward graph and weights: the registry's Conv2D config), ``pass_through`` (no op
    of its own, or one that keeps its input's scale), ``output`` (one fake-quant on the output);
    ``export/qat/quantize.py`` holds what each means."""
