"""What the export command lines share: the model and input flags, ONNX's flags, and the run itself (export,
print one row per format, exit status). ``export/to_tflite.py`` (any format) and ``export/to_onnx.py`` (ONNX
alone) are each a parser and a call to ``run``."""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence

from calibration.calibration_set import CalibrationError
from export import fidelity
from export.formats import (
    DEFAULT_OPSET,
    DEFAULT_SHAPE,
    MAX_ABS_ERROR,
    MAX_OPSET,
    MIN_OPSET,
    STATUS_OK,
    ExportError,
)
from export.pipeline import export_model, ptq_versus_qat
from export.results import DEFAULT_OUT, HEADER, FormatResult
from pynet_tf import atomic, runs
from pynet_tf.cli import image_size, settings_summary
from pynet_tf.data.sources import DataSourceError

USER_ERRORS = (
    ExportError,
    runs.RunError,
    CalibrationError,
    DataSourceError,
    fidelity.FidelityError,
    atomic.OutputError,
)
"""What a bad flag or input raises before any conversion: one line on stderr, exit 2."""


def add_source_arguments(parser: argparse.ArgumentParser, shape_help: str) -> None:
    """The flags every exporter shares: the model, its input shape, the held-out data, the output folder."""
    add = parser.add_argument
    add("--model", help="a .keras file, a level folder or a run folder (default: the newest runs/*/final)")
    add("--input-shape", default=f"{DEFAULT_SHAPE[0]}x{DEFAULT_SHAPE[1]}", help=shape_help)
    add("--data", default="samples", help="held-out inputs for fidelity: the test split of this source")
    add("--seed", type=int, default=0, help="seed of the synthetic RAW of photo sources (default 0)")
    add("-o", "--out", default=str(DEFAULT_OUT), help="output folder (default exported/)")


def input_shape_argument(text: str) -> tuple[int, int] | None:
    """``--input-shape``: packed ``HxW``, or ``dynamic`` (None)."""
    if text.lower() == "dynamic":
        return None
    try:
        return image_size(text)
    except argparse.ArgumentTypeError as error:
        raise ExportError(f"--input-shape: {error}, or 'dynamic'") from None


def add_onnx_arguments(parser: argparse.ArgumentParser) -> None:
    """``--opset`` and ``--max-abs-error``; None when not given, so the registry can tell them apart from
    the defaults (they apply to onnx only)."""
    parser.add_argument(
        "--opset", type=int, help=f"onnx only: ONNX opset, {MIN_OPSET}..{MAX_OPSET} (default {DEFAULT_OPSET})"
    )
    parser.add_argument(
        "--max-abs-error",
        type=float,
        help="onnx only: do not write the file if onnxruntime's outputs differ more from Keras' "
        f"(default {MAX_ABS_ERROR:g})",
    )


def fail(error: Exception) -> int:
    """A user error: one line on stderr, exit status 2."""
    print(f"error: {error}", file=sys.stderr)
    return 2


def run(args: argparse.Namespace, formats: Sequence[str], **options) -> int:
    """Export ``args.model`` (default: the newest run) to ``formats`` with ``args``' source flags and
    ``options`` (``export_model``'s keywords), printing the settings, then each format's row as it is done.

    Exit status: 0 every format written, 1 one was refused or failed (its message on stderr), 2 bad input.
    """
    warnings.filterwarnings("ignore", module="tf_keras")
    printed: list[FormatResult] = []

    def report(result: FormatResult) -> None:
        if not printed:
            print(HEADER)
        printed.append(result)
        print(result.row(), flush=True)
        for line in result.details():
            print(line, flush=True)

    try:
        input_shape = input_shape_argument(args.input_shape)
        model = args.model if args.model is not None else runs.newest_run()
        print(settings_summary("export", {**vars(args), "model": str(model), "formats": list(formats)}))
        results = export_model(
            model,
            formats,
            out=args.out,
            input_shape=input_shape,
            data=args.data,
            seed=args.seed,
            report=report,
            **options,
        )
    except USER_ERRORS as error:
        return fail(error)
    comparison = ptq_versus_qat(results)
    if comparison:
        print(comparison)
    failed = [result for result in results if result.status != STATUS_OK]
    for result in failed:
        print(f"{result.format}: {result.status}: {result.message}", file=sys.stderr)
    return 1 if failed else 0
