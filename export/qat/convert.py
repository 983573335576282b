"""A QAT model to its full-integer int8 TFLite file, every range from its fake-quants (``convert_qat``)."""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf
import tf_keras as keras

import pynet_tf  # noqa: F401  (selects Keras 2 before TensorFlow and tfmot load)
from export.qat.settings import QATError
from export.sidecar import describe
from export.tflite import IO_TYPES, convert, converter_for

# ---------------------------------------------------------------------------------------------- conversion


def convert_qat(qat_model: keras.Model, batch_shape: Sequence[int | None], io: str = "float32") -> bytes:
    """Full-integer int8 TFLite from a QAT model, every range from its fake-quants; ``QATError`` if any op
    is left in float (other than QUANTIZE / DEQUANTIZE at float32 io).

    No representative dataset: a graph with FakeQuant ops converts as quantization-aware trained, taking each
    activation's range from its fake-quant and each weight's from its values, and every int8 tensor of the
    graph, the instance norms' inner ones included, has a fake-quant here (``QATInstanceNorm``): there is
    nothing left to calibrate. ``supported_ops`` stays the default: TF 2.21 checks, before it looks at a
    concrete function's graph, that an INT8-only op set comes with a representative dataset, and with one it
    would also run post-training calibration over the QAT model. The op check below stands in for INT8-only.
    """
    if io not in IO_TYPES:
        raise QATError(f"--io must be one of {', '.join(IO_TYPES)}, got {io!r}")
    converter = converter_for(qat_model, batch_shape)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.inference_input_type = IO_TYPES[io]
    converter.inference_output_type = IO_TYPES[io]
    content = convert(converter)
    info = describe(content, quantized=True)
    raw, rgb = info["inputs"][0]["name"], info["outputs"][0]["name"]
    io_ops = {("QUANTIZE", (raw,), ()), ("DEQUANTIZE", (), (rgb,))}
    left = [
        op["op"]
        for op in info["unquantized_ops"]
        if (op["op"], tuple(op["float_inputs"]), tuple(op["float_outputs"])) not in io_ops
    ]
    if left:
        raise QATError(f"the int8 QAT conversion left ops in float: {', '.join(sorted(set(left)))}")
    return content
