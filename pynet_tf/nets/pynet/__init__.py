"""PyNET (Ignatov et al. 2020): the model (``model``), its own layers (``layers``) and sizes (``levels``)."""

from __future__ import annotations

import tf_keras as keras

from pynet_tf.layers import SameConv2D, ScaledTanh
from pynet_tf.nets import Architecture
from pynet_tf.nets.pynet import levels
from pynet_tf.nets.pynet.layers import InputShapeCheck, InstanceNorm
from pynet_tf.nets.pynet.model import build_pynet


def _build(
    level: int, width: int, *, init: str, instance_norm: bool, instance_norm_level_1: bool = False
) -> keras.Model:
    return build_pynet(
        level,
        base_filters=width,
        init=init,
        instance_norm=instance_norm,
        instance_norm_level_1=instance_norm_level_1,
    )


ARCHITECTURE = Architecture(
    "pynet",
    "PyNET (Ignatov et al. 2020): 6-level inverted pyramid with instance norms",
    levels.LEVELS,
    32,
    _build,
    levels.validate_input_shape,
    levels.DOWNSAMPLING,
    InputShapeCheck,
    {
        InputShapeCheck: "pass_through",
        SameConv2D: "as_conv2d",
        InstanceNorm: "instance_norm",
        ScaledTanh: "scaled_tanh",
    },
)
