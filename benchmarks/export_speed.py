"""Seconds per export format, the exporter's converter against the converter's own SavedModel step, side by side.

    .venv/bin/python benchmarks/export_speed.py --model runs/demo          # the demo model, 64x64
    .venv/bin/python benchmarks/export_speed.py --rounds 3                 # a fresh width-4 level 0

Two ways to the same TFLite file, each timed from the Keras model to the flatbuffer (``convert()`` included)
for float32, fp16 and int8 (full-integer, the calibration set built once beforehand), in ``--rounds``
interleaved rounds, the median printed:

    exporter     ``export.tflite.converter_for``: traces the function once with ``SameConv2D`` as plain Conv2D,
                 saves it as a SavedModel without gradient functions, converts from that folder
    concrete     ``TFLiteConverter.from_concrete_functions`` on the same function traced with PyNET's custom
                 conv gradients: the converter saves it as a SavedModel itself, tracing a gradient function
                 for every op type (the exporter's way until 2026-12-06)

Then one whole export per format with ``export.pipeline.export_model`` (conversion, held-out
fidelity, sidecar), the seconds it prints. Both converters' files are checked to give the same outputs on a
held-out input (max abs difference printed).

Measured (2-core Intel Xeon, 2026-12-06, ``--model runs/d6 --rounds 3``, the quick preset's demo model, level
0 at base width 4, 64x64 packed; light editing work beside it)::

    format   exporter s concrete s  ratio max abs diff  export s
    float32        5.38      10.58  1.97x     0.00e+00       7.2
    fp16           5.37      10.49  1.96x     0.00e+00       6.1
    int8           7.28      12.54  1.72x     0.00e+00      11.0

The same outputs to the bit, in half the conversion time; a whole export (held-out fidelity, the int8 error
analysis and the sidecar included) takes 6-11 s per format, where it took 28-30 s before the change (and
19.1 s for float32 alone, measured with ``export/to_tflite.py`` the same day).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pynet_tf  # noqa: F401  (Keras 2 and the quiet console, before TensorFlow loads)

# isort: split
import numpy as np
import tensorflow as tf
import tf_keras as keras

from benchmarks import record
from calibration.crops import default_calibration
from export import fidelity
from export.pipeline import export_model
from export.tflite import converter_for
from pynet_tf import runs
from pynet_tf.cli import image_size
from pynet_tf.nets.pynet.model import build_pynet

FORMATS = ("float32", "fp16", "int8")


def concrete_converter(model: keras.Model, batch_shape) -> tf.lite.TFLiteConverter:
    """The baseline: the converter given the traced function, which it saves (with gradients) itself."""
    module = tf.Module()
    module.variables_ = list(model.variables)
    spec = tf.TensorSpec(batch_shape, tf.float32, name="raw")
    module.serve = tf.function(lambda raw: {"rgb": model(raw, training=False)}, input_signature=[spec])
    return tf.lite.TFLiteConverter.from_concrete_functions([module.serve.get_concrete_function()], module)


def configure(converter: tf.lite.TFLiteConverter, form: str, calibration) -> tf.lite.TFLiteConverter:
    if form != "float32":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if form == "fp16":
        converter.target_spec.supported_types = [tf.float16]
    if form == "int8":
        converter.representative_dataset = calibration.representative_dataset
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    return converter


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model", help="a run, level folder or .keras file (default: a fresh width-4 level 0)"
    )
    parser.add_argument("--input-shape", type=image_size, default=(64, 64), help="packed HxW (default 64x64)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)

    if args.model:
        model_file = runs.resolve_model_path(args.model)
    else:
        keras.utils.set_random_seed(0)
        model_file = Path(tempfile.mkdtemp()) / "fresh.keras"
        build_pynet(0, base_filters=4, instance_norm=False).save(model_file)
    model = runs.load_model(model_file)
    batch_shape = (1, *args.input_shape, 4)
    calibration = default_calibration(args.input_shape)
    packed = fidelity.held_out(model, args.input_shape)[0].packed

    ways = {"exporter": converter_for, "concrete": concrete_converter}
    seconds: dict[tuple[str, str], list[float]] = {}
    outputs: dict[tuple[str, str], np.ndarray] = {}
    for _ in range(args.rounds):
        for form in FORMATS:
            for way, make in ways.items():
                started = time.perf_counter()
                content = configure(make(model, batch_shape), form, calibration).convert()
                seconds.setdefault((way, form), []).append(time.perf_counter() - started)
                outputs[way, form] = fidelity.TFLiteRunner(content)(packed)

    print(f"model {model_file}, packed {args.input_shape[0]}x{args.input_shape[1]}, median of {args.rounds}")
    print(
        f"{'format':<8} {'exporter s':>10} {'concrete s':>10} {'ratio':>6} {'max abs diff':>12} {'export s':>9}"
    )
    with tempfile.TemporaryDirectory() as out:
        for form in FORMATS:
            (result,) = export_model(model_file, [form], out=out, input_shape=args.input_shape)
            new, old = (statistics.median(seconds[way, form]) for way in ways)
            diff = float(np.abs(outputs["exporter", form] - outputs["concrete", form]).max())
            print(
                f"{form:<8} {new:>10.2f} {old:>10.2f} {old / new:>5.2f}x {diff:>12.2e} {result.seconds:>9.1f}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(record.run(main, "export_speed"))
