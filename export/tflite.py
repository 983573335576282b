"""Keras model -> TFLite flatbuffer."""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf
import tf_keras as keras

IO_TYPES = {"float32": tf.float32, "uint8": tf.uint8, "int8": tf.int8}
"""``--io``: an int8 file's input and output tensor type (float32: quantize/dequantize inside the model)."""


def converter_for(
    model: keras.Model, batch_shape: Sequence[int | None] = (None, None, None, 4)
) -> tf.lite.TFLiteConverter:
    """A TFLite converter for the model with one signature, ``serving_default``: ``raw`` -> ``rgb`` (a model
    with several outputs, such as ``build_pynet(..., all_outputs=True)``: one output per output name).

    ``batch_shape`` is the input's shape; ``None`` dimensions are resizable at run time. The converter gets
    the inference function inside a bare ``tf.Module`` that holds the variables:
    ``TFLiteConverter.from_keras_model`` exports a Keras SavedModel that traces every layer's own serving
    function, which took 71 s for PyNET level 0 at base width 4 here against 20 s this way, for the same ops.
    A fully static ``batch_shape`` (e.g. ``(1, 224, 224, 4)``) also removes the SHAPE / STRIDED_SLICE / PACK
    ops that dynamic sizes need. Set the converter's options (optimizations, types) before ``convert()``.
    """
    spec = tf.TensorSpec(batch_shape, tf.float32, name="raw")
    module = tf.Module()
    module.variables_ = list(model.variables)

    def serve(raw: tf.Tensor) -> dict[str, tf.Tensor]:
        outputs = model(raw, training=False)  # a dict for named outputs (all_outputs PyNET: level_0 ...)
        return dict(outputs) if isinstance(outputs, dict) else {"rgb": outputs}

    module.serve = tf.function(serve, input_signature=[spec])
    return tf.lite.TFLiteConverter.from_concrete_functions([module.serve.get_concrete_function()], module)


def to_tflite_float32(model: keras.Model, batch_shape: Sequence[int | None] = (None, None, None, 4)) -> bytes:
    """The model as an fp32 TFLite flatbuffer (see ``converter_for``)."""
    return converter_for(model, batch_shape).convert()
