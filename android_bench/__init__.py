"""Benchmarking exported models on a phone over adb (or on the host through LiteRT), and the report."""

import pynet_tf  # noqa: F401  (selects Keras 2 before TensorFlow loads)
