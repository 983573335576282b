"""The mobile ISP: a 3-scale network without norms for full-integer int8 on phones (``model``)."""

from __future__ import annotations

import tf_keras as keras

from pynet_tf.nets import Architecture
from pynet_tf.nets.mobile import model


def _build(level: int, width: int, **_ignored) -> keras.Model:
    return model.build_mobile(width)


ARCHITECTURE = Architecture(
    "mobile",
    "mobile ISP (pynet_tf/nets/mobile/): 3 scales, no norms, full-integer int8",
    (0,),
    model.DEFAULT_WIDTH,
    _build,
    model.validate_input_shape,
    model.DOWNSAMPLING,
    model.MobileInputCheck,
    {
        model.MobileInputCheck: "pass_through",
        model.DepthToSpace: "pass_through",
        model.GlobalMinPooling: "pass_through",
        keras.layers.Multiply: "output",
    },
)
