"""Representative input sets for post-training int8 quantization.

``crops`` draws one from a data source (``python calibration/build.py`` on the command line), ``selection``
chooses its crops (greedy k-center),
``calibration_set`` holds it and reads and writes its .npz.
"""

import pynet_tf  # noqa: F401  (selects Keras 2 before TensorFlow loads)
