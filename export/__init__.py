"""Conversion of trained models for phones: TFLite (fp32, fp16, dynamic range, int8) and ONNX."""

import pynet_tf  # noqa: F401  (selects Keras 2 before TensorFlow loads)
