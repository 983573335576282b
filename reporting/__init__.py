"""The benchmark report: results of ``android_bench.run`` (phone or host) and the exports' sidecars in,
report.md / report.html / report.json out. ``report`` builds and writes it, ``inputs`` reads and checks the
results files, ``rows`` turns them into report rows (speed-ups, the ship choice, the classical ISP's
reference), ``plots`` draws the figures, ``crops`` the image crops of a held-out example."""

import pynet_tf  # noqa: F401  (selects Keras 2 before TensorFlow loads)
