"""pynet-tf: PyNET, a learned camera ISP (packed RAW Bayer -> RGB), from training to the phone.

Importing this package selects Keras 2 for the whole process. tfmot (quantization-aware training, pruning)
supports only Keras 2, so the project uses ``tf_keras`` throughout; ``TF_USE_LEGACY_KERAS=1`` makes
``tf.keras``, the TFLite converter and tfmot resolve to that same Keras. TensorFlow reads the variable when
``tf.keras`` is first touched, so it is set here, before any module of ours imports TensorFlow. This is the
one place that sets it: every other package of the project imports ``pynet_tf`` first. It also quiets
TensorFlow's console output (``pynet_tf.console``; ``PYNET_VERBOSE=1`` shows it), and registers every
network's custom layers (``pynet_tf.architectures``), so a saved model loads with plain
``tf_keras.models.load_model`` once ``pynet_tf`` is imported.
"""

import os
import sys

os.environ["TF_USE_LEGACY_KERAS"] = "1"

if "tensorflow" in sys.modules:  # imported before us: make sure tf.keras did not already resolve to Keras 3
    import tensorflow as _tf
    import tf_keras as _tf_keras

    if _tf.keras.Model is not _tf_keras.Model:
        raise ImportError(
            "tf.keras already resolved to Keras 3 before pynet_tf was imported; import pynet_tf before "
            "touching tf.keras, or set TF_USE_LEGACY_KERAS=1 in the environment"
        )

from pynet_tf import console

console.install()

__version__ = "0.1.0"

from pynet_tf import architectures  # noqa: F401  (registers the layers)
