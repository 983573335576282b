"""Keras model -> TFLite flatbuffer."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence

import tensorflow as tf
import tf_keras as keras

from pynet_tf.console import native_quiet
from pynet_tf.layers import tf_gradients

IO_TYPES = {"float32": tf.float32, "uint8": tf.uint8, "int8": tf.int8}
"""``--io``: an int8 file's input and output tensor type (float32: quantize/dequantize inside the model)."""


def converter_for(
    model: keras.Model, batch_shape: Sequence[int | None] = (None, None, None, 4)
) -> tf.lite.TFLiteConverter:
    """A TFLite converter for the model with one signature, ``serving_default``: ``raw`` -> ``rgb`` (a model
    with several outputs, such as ``build_pynet(..., all_outputs=True)``: one output per output name).

    ``batch_shape`` is the input's shape; ``None`` dimensions are resizable at run time. A fully static
    ``batch_shape`` (e.g. ``(1, 224, 224, 4)``) also removes the SHAPE / STRIDED_SLICE / PACK ops that dynamic
    sizes need. Set the converter's options (optimizations, types) before ``convert()``.

    The inference function is traced once, inside a bare ``tf.Module`` that holds the variables, and saved
    here as a SavedModel without gradient functions (nothing trains an export), which the converter reads.
    ``TFLiteConverter.from_keras_model`` traces every layer's own serving function (71 s for PyNET level 0 at
    base width 4, against 20 s); ``from_concrete_functions`` saves the function itself with a traced gradient
    for every op type (14.7 s, against 5.5 s this way, for the same ops and outputs). The folder lives as
    long as the converter.
    """
    spec = tf.TensorSpec(batch_shape, tf.float32, name="raw")
    module = tf.Module()
    module.variables_ = list(model.variables)

    def serve(raw: tf.Tensor) -> dict[str, tf.Tensor]:
        outputs = model(raw, training=False)  # a dict for named outputs (all_outputs PyNET: level_0 ...)
        return dict(outputs) if isinstance(outputs, dict) else {"rgb": outputs}

    module.serve = tf.function(serve, input_signature=[spec])
    folder = tempfile.TemporaryDirectory(prefix="pynet_tf_export_")
    with tf_gradients():  # no custom gradients in the graph (saving traces the function again)
        tf.saved_model.save(
            module,
            folder.name,
            signatures={"serving_default": module.serve.get_concrete_function()},
            options=tf.saved_model.SaveOptions(experimental_custom_gradients=False),
        )
    converter = tf.lite.TFLiteConverter.from_saved_model(folder.name)
    converter.pynet_saved_model = folder  # removed when the converter is
    return converter


def convert(converter: tf.lite.TFLiteConverter) -> bytes:
    """``converter.convert()`` without the converter's progress lines on stderr (``console.native_quiet``)."""
    with native_quiet():
        return converter.convert()


def to_tflite_float32(model: keras.Model, batch_shape: Sequence[int | None] = (None, None, None, 4)) -> bytes:
    """The model as an fp32 TFLite flatbuffer (see ``converter_for``)."""
    return convert(converter_for(model, batch_shape))
