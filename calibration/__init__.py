"""Representative input sets for post-training int8 quantization."""

import pynet_tf  # noqa: F401  (selects Keras 2 before TensorFlow loads)
