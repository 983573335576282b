"""Representative input sets for post-training int8 quantization.

``build`` makes one (``python calibration/build.py``), ``selection`` chooses its crops (greedy k-center),
``calibration_set`` holds it and reads and writes its .npz.
"""

import pynet_tf  # noqa: F401  (selects Keras 2 before TensorFlow loads)
