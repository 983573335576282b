"""The networks the toolchain trains: PyNET (the default) and the mobile ISP, by name (``--arch``).

Each is a builder ``(level, width) -> keras.Model`` with packed Bayer in and RGB out, the levels it trains
(coarsest first) and its input-size rule; the trainer, the run records, calibration and the CLIs ask here
and nowhere else which network a run or a model file is. PyNET has six levels trained one after the other;
the mobile ISP has one, level 0 (full resolution), so it trains in one stage.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import tf_keras as keras

from pynet_tf import mobile, runs, shapes
from pynet_tf.layers import InputShapeCheck, InstanceNorm, SameConv2D, ScaledTanh
from pynet_tf.model import build_pynet


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
    valid size; ``init`` names PyNET's kernel initialisation (``model.INITIALIZATIONS``), ``instance_norm``
    switches its normalised levels (2-5) and ``instance_norm_level_1`` level 1's; the mobile ISP has none of
    them (He-normal kernels, no norms)."""
    validate_input_shape: shapes.ShapeCheck
    """Raises ``shapes.InputShapeError`` for a packed H x W the network cannot take."""
    downsampling: int
    """Packed H and W must be multiples of this (what ``validate_input_shape`` checks)."""
    input_check: type[keras.layers.Layer]
    """The layer class the builder puts right after the input: how a model file without ``level.json`` is
    told apart (``of_keras``)."""
    quantize_as: Mapping[type[keras.layers.Layer], str]
    """How quantization-aware training treats the layers tfmot's 8-bit registry does not know, by class:
    ``instance_norm`` and ``scaled_tanh`` (rewritten as the ops the converter emits, a fake-quant after each),
    ``as_conv2d`` (Conv2D's forward graph and weights: the registry's Conv2D config), ``pass_through`` (no op
    of its own, or one that keeps its input's scale), ``output`` (one fake-quant on the output);
    ``export/qat/quantize.py`` holds what each means."""


def _pynet(
    level: int, width: int, *, init: str, instance_norm: bool, instance_norm_level_1: bool = False
) -> keras.Model:
    return build_pynet(
        level,
        base_filters=width,
        init=init,
        instance_norm=instance_norm,
        instance_norm_level_1=instance_norm_level_1,
    )


def _mobile(level: int, width: int, **_ignored) -> keras.Model:
    return mobile.build_mobile(width)


ARCHITECTURES: dict[str, Architecture] = {
    arch.name: arch
    for arch in (
        Architecture(
            "pynet",
            "PyNET (Ignatov et al. 2020): 6-level inverted pyramid with instance norms",
            shapes.LEVELS,
            32,
            _pynet,
            shapes.validate_input_shape,
            shapes.DOWNSAMPLING,
            InputShapeCheck,
            {
                InputShapeCheck: "pass_through",
                SameConv2D: "as_conv2d",
                InstanceNorm: "instance_norm",
                ScaledTanh: "scaled_tanh",
            },
        ),
        Architecture(
            "mobile",
            "mobile ISP (pynet_tf/mobile.py): 3 scales, no norms, full-integer int8",
            (0,),
            mobile.DEFAULT_WIDTH,
            _mobile,
            mobile.validate_input_shape,
            mobile.DOWNSAMPLING,
            mobile.MobileInputCheck,
            {
                mobile.MobileInputCheck: "pass_through",
                mobile.DepthToSpace: "pass_through",
                mobile.GlobalMinPooling: "pass_through",
                keras.layers.Multiply: "output",
            },
        ),
    )
}
DEFAULT = "pynet"


class ArchitectureError(ValueError):
    """An unknown network name, or a level the network does not have."""


def architecture(name: str) -> Architecture:
    """The network ``name``; ``ArchitectureError`` with a "did you mean" otherwise."""
    if name in ARCHITECTURES:
        return ARCHITECTURES[name]
    close = difflib.get_close_matches(name, ARCHITECTURES, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    raise ArchitectureError(f"--arch {name!r}: {hint}choose from {', '.join(ARCHITECTURES)}")


def size_rules() -> str:
    """Each network's packed input sizes, for help texts: "multiples of 16 (pynet) or 4 (mobile)"."""
    rules = [f"{arch.downsampling} ({arch.name})" for arch in ARCHITECTURES.values()]
    return f"multiples of {', '.join(rules[:-1])} or {rules[-1]}"


def of_keras(model: keras.Model) -> Architecture:
    """The network ``model`` is, from its builder's input check layer (``Architecture.input_check``); PyNET
    when it has none (files saved before the check layers existed)."""
    kinds = {type(layer) for layer in model.layers}
    found = (arch for arch in ARCHITECTURES.values() if arch.input_check in kinds)
    return next(found, ARCHITECTURES[DEFAULT])


def of_model(path: str | Path, model: keras.Model) -> Architecture:
    """The network ``model``, loaded from ``path``, is: the ``arch`` of the ``level.json`` beside it or,
    without one (a bare ``.keras`` file, a run from before ``--arch``), the model's own layers (``of_keras``)."""
    record = runs.level_record(path)
    return architecture(record["arch"]) if "arch" in record else of_keras(model)
