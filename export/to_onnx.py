"""Convert a trained PyNET level to ONNX (float32, tf2onnx), verified in onnxruntime, with a JSON sidecar.

    python export/to_onnx.py --model runs/NAME/final --input-shape 224x224 --opset 17 --out exported/
    python -m export.to_onnx --input-shape dynamic

Batch 1 and a static packed H x W (--input-shape, default 224x224), or `dynamic` (H and W set at run time,
named height / width; the output's out_height / out_width). Opset 17 by default (17 or 18: tf2onnx 1.17
converts no higher).
The file is run in onnxruntime (CPUExecutionProvider) on the held-out inputs (--data's test split, as
export/to_tflite.py) against the float Keras model; if the max abs error exceeds --max-abs-error (1e-4) it is
not written and the command exits 1. Otherwise <file>.onnx and <file>.onnx.json (the TFLite sidecar schema,
see export/sidecar.py) are written atomically. User errors exit 2 with one line.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import export  # noqa: F401  (Keras 2 and the quiet console, before TensorFlow loads)

# isort: split
import tensorflow as tf
import tf_keras as keras

from export import fidelity, sidecar
from export.formats import DEFAULT_SHAPE, ExportError, ExportSettings
from export.results import (
    DEFAULT_OUT,
    STATUS_OK,
    FormatResult,
    add_source_arguments,
    input_shape_argument,
    load_source,
    timing,
)
from pynet_tf import architectures, atomic, runs
from pynet_tf.cli import command_parser, settings_summary
from pynet_tf.data.sources import DataSourceError
from pynet_tf.shapes import InputShapeError

DEFAULT_OPSET = 17
MIN_OPSET = 17
MAX_OPSET = 18
"""The newest opset tf2onnx 1.17 converts to (``tf2onnx.constants.OPSET_TO_IR_VERSION``)."""
MAX_ABS_ERROR = 1e-4
"""onnxruntime vs the float Keras model, outputs clipped to [0, 1]. Both run float32 with other summation
orders; PyNET's instance norms amplify that rounding (see tests/test_onnx.py for measured values)."""
STATUS_ABOVE = "above --max-abs"
FORMAT_NAME = "onnx"
DESCRIPTION = "ONNX float32 (tf2onnx), verified in onnxruntime CPUExecutionProvider"
DYNAMIC_DIMS = ("height", "width")


@dataclass(frozen=True)
class OnnxResult(FormatResult):
    """``FormatResult`` with the max abs error against the float model (the gate) in the printed row."""

    max_abs: float | None = None

    def row(self) -> str:
        base = super().row()
        max_abs = f"{self.max_abs:.2e}" if self.max_abs is not None else "-"
        return f"{base[:36]}{max_abs:>10}{base[36:]}"  # after "format status size"


HEADER = (
    f"{'format':<8} {'status':<17} {'size MB':>9}{'max abs':>10} {'PSNR vs float':>13} {'ΔPSNR vs GT':>11} "
    f"{'time s':>7}  file"
)


def check_opset(opset: int) -> int:
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise ExportError(
            f"--opset {opset}: choose {MIN_OPSET}..{MAX_OPSET} ({MIN_OPSET} is the default; "
            f"tf2onnx {_version('tf2onnx')} converts up to {MAX_OPSET})"
        )
    return opset


def _version(package: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "?"


def to_onnx(model: keras.Model, batch_shape, opset: int = DEFAULT_OPSET) -> bytes:
    """The model as a serialized ONNX ModelProto: input ``raw`` of ``batch_shape`` -> output ``rgb``.

    ``None`` dims are set at run time, named height / width (the output's out_height / out_width).

    As ``export.tflite.converter_for``: the inference function inside a bare ``tf.Module`` holding the
    variables, converted with ``tf2onnx.convert.from_function`` (from_keras would trace every layer). The
    model is checked with ``onnx.checker`` (full check, with shape inference): tf2onnx leaves ops it cannot
    map in the graph rather than failing, and those are caught here or when onnxruntime loads the file.
    """
    import onnx
    import tf2onnx

    logging.getLogger("tf2onnx").setLevel(logging.ERROR)
    spec = tf.TensorSpec(batch_shape, tf.float32, name="raw")
    module = tf.Module()
    module.variables_ = list(model.variables)
    module.serve = tf.function(lambda raw: {"rgb": model(raw, training=False)}, input_signature=[spec])
    proto, _ = tf2onnx.convert.from_function(module.serve, input_signature=[spec], opset=opset)
    for value, prefix in ((proto.graph.input[0], ""), (proto.graph.output[0], "out_")):
        for dim, name in zip(value.type.tensor_type.shape.dim[1:3], DYNAMIC_DIMS):
            if not dim.HasField("dim_value"):  # tf2onnx names run-time dims unk__N
                dim.dim_param = prefix + name
    onnx.checker.check_model(proto, full_check=True)
    return proto.SerializeToString()


def export_onnx(
    model_path: str | Path,
    *,
    out: str | Path = DEFAULT_OUT,
    input_shape: tuple[int, int] | None = DEFAULT_SHAPE,
    opset: int = DEFAULT_OPSET,
    data: str = "samples",
    seed: int = 0,
    max_abs_error: float = MAX_ABS_ERROR,
) -> OnnxResult:
    """Convert the model at ``model_path`` to ONNX, run it in onnxruntime on the held-out inputs and write
    ``<out>/<run>_level<L>_<HxW|dynamic>_opset<N>.onnx`` with its sidecar if the max abs error against the
    float model is at most ``max_abs_error``. Status ``ok``, ``above --max-abs-error`` (not written) or
    ``error`` (conversion or onnxruntime failed). Bad arguments raise ``ExportError`` (or ``RunError``,
    ``DataSourceError``, ``FidelityError``) before conversion.
    """
    check_opset(opset)
    if not max_abs_error > 0:
        raise ExportError(f"--max-abs-error must be positive, got {max_abs_error:g}")
    loaded = load_source(model_path)
    model = loaded.model
    if input_shape is not None:
        try:
            loaded.network.validate_input_shape(*input_shape)
        except InputShapeError as error:
            raise ExportError(f"--input-shape {input_shape[0]}x{input_shape[1]}: {error}") from None
    items = fidelity.held_out(model, input_shape or DEFAULT_SHAPE, data, seed=seed)
    settings = ExportSettings(input_shape=input_shape)
    source = loaded.record()
    path = Path(out) / f"{loaded.file_stem(input_shape)}_opset{opset}.onnx"

    started = time.perf_counter()
    try:
        content = to_onnx(model, settings.batch_shape, opset)
        converted = time.perf_counter()
        measured = fidelity.measure(content, items, runner=fidelity.OnnxRunner)
    except Exception as error:  # noqa: BLE001 (a converter or runtime failure is a result, exit 1)
        return OnnxResult.failed(FORMAT_NAME, started, error)
    psnr = measured["vs_float"]["psnr"]
    delta = measured["vs_ground_truth"]["delta_psnr"]
    max_abs = measured["vs_float"]["max_abs"]
    if not max_abs <= max_abs_error:
        message = f"not written: max abs error vs float {max_abs:.3g} > --max-abs-error {max_abs_error:g}"
        return OnnxResult(
            FORMAT_NAME,
            STATUS_ABOVE,
            None,
            len(content),
            psnr,
            delta,
            time.perf_counter() - started,
            message,
            max_abs=max_abs,
        )
    seconds = timing(started, converted)
    side = sidecar.build_sidecar(
        path,
        content,
        export_format={"name": FORMAT_NAME, "description": DESCRIPTION},
        source=source,
        settings={
            "input_shape": f"{input_shape[0]}x{input_shape[1]}" if input_shape else "dynamic",
            "batch_shape": list(settings.batch_shape),
            "io": "float32",
            "opset": opset,
            "max_abs_error": max_abs_error,
            "execution_provider": "CPUExecutionProvider",
            "data": data,
            "seed": seed,
        },
        calibration=None,
        fidelity=measured,
        describer=sidecar.describe_onnx,
        packages=sidecar.ONNX_PACKAGES,
    )
    side["timing"] = seconds
    atomic.write_bytes(path, content)
    atomic.write_json(sidecar.sidecar_path(path), side)
    return OnnxResult(
        FORMAT_NAME,
        STATUS_OK,
        path,
        len(content),
        psnr,
        delta,
        time.perf_counter() - started,
        sidecar=side,
        max_abs=max_abs,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser("export.to_onnx", __doc__, script=True)
    add = parser.add_argument
    add_source_arguments(
        parser,
        f"packed HxW, {architectures.size_rules()} as the model's network is; default 224x224; or 'dynamic'",
    )
    add(
        "--opset",
        type=int,
        default=DEFAULT_OPSET,
        help=f"ONNX opset, {MIN_OPSET}..{MAX_OPSET} (default {DEFAULT_OPSET})",
    )
    add(
        "--max-abs-error",
        type=float,
        default=MAX_ABS_ERROR,
        help=f"do not write the file if onnxruntime's outputs differ more from Keras' "
        f"(default {MAX_ABS_ERROR:g})",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    warnings.filterwarnings("ignore", module="tf_keras")
    try:
        check_opset(args.opset)
        input_shape = input_shape_argument(args.input_shape)
        model = args.model if args.model is not None else runs.newest_run()
        print(settings_summary("export", {**vars(args), "model": str(model)}))
        result = export_onnx(
            model,
            out=args.out,
            input_shape=input_shape,
            opset=args.opset,
            data=args.data,
            seed=args.seed,
            max_abs_error=args.max_abs_error,
        )
    except (ExportError, runs.RunError, DataSourceError, fidelity.FidelityError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(HEADER)
    print(result.row(), flush=True)
    if result.status != STATUS_OK:
        print(f"{result.format}: {result.status}: {result.message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
