"""Convert a trained PyNET level to TFLite (float32, fp16, dynamic range, int8, int16x8, int8 QAT) and ONNX,
each with a JSON sidecar.

    python export/to_tflite.py --model runs/NAME/final --float32 --fp16 --dynamic --int8 --out exported/
    python export/to_tflite.py --int8 --io uint8 --calibration calibration/set.npz --input-shape 224x224
    python -m export.to_tflite --format fp16,int8 --min-psnr 30
    python export/to_tflite.py --int8 --float-fallback auto --min-psnr 40      # worst layers in float
    python export/to_tflite.py --int8 --float-fallback '*_norm'                # every instance norm in float
    python export/to_tflite.py --int8 --qat --qat-steps 200                    # PTQ and QAT side by side
    python export/to_tflite.py --fp16 --onnx                                   # ONNX too (export/to_onnx.py)

Batch 1 and a static packed H x W (--input-shape, default 224x224; `dynamic` for float32/fp16/dynamic/onnx only).
Every file is scored against the float Keras model (and ground truth) on held-out inputs (--data's test
split) and written atomically with <file>.json beside it; one below --min-psnr (dB vs the float model) is not
written and the command exits 1 after the other formats. User errors exit 2 with one line. Every int8 file
gets a per-layer error analysis (export/sensitivity.py), every file a GPU/NNAPI delegate op report
(export/delegates.py); both are in the sidecar and summarised under the file's row.

--qat fine-tunes a copy of the model with fake-quantization (tensorflow-model-optimization; export/qat/) for
--qat-steps steps of the run's training loss on --data's training split, crops of the export's size, towards
the float model's outputs (--qat-targets distill) or the ground truth, then converts it to full-integer int8.
"""

from __future__ import annotations

import argparse
import sys

import export  # noqa: F401  (selects Keras 2 before TensorFlow loads)
from export import command, qat
from export.formats import FORMATS, QAT_ARGUMENTS, ExportError, parse_float_fallback
from pynet_tf import architectures
from pynet_tf.cli import command_parser


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser("export.to_tflite", __doc__, script=True)
    add = parser.add_argument
    command.add_source_arguments(
        parser,
        f"packed HxW, {architectures.size_rules()} as the model's network "
        "is; default 224x224; or 'dynamic' (not with --int8)",
    )
    for export_format in FORMATS.values():
        add(export_format.flag, action="store_true", help=export_format.description)
    add("--format", help=f"comma-separated formats, as the flags: {','.join(FORMATS)}")
    add("--io", help="int8 and qat only: input/output tensor type float32 (default) | uint8 | int8")
    add(
        "--calibration",
        help="int8 and int16x8: calibration set .npz (default: 16 sample crops built on the fly)",
    )
    add(
        "--float-fallback",
        metavar="auto|NAME,...",
        help="int8 only: keep layers in float (not full-integer): 'auto' adds the worst layers of the error "
        "analysis until --min-psnr is reached; or Keras layer names/globs ('*_norm') or tensor names",
    )
    add("--min-psnr", type=float, help="do not write a file whose PSNR vs the float model is below this (dB)")
    add(
        "--qat-steps",
        type=int,
        help=f"qat only: fine-tuning steps (default {qat.DEFAULT_STEPS}; 0: ranges only)",
    )
    add("--qat-targets", help="qat only: distill (fit the float model's outputs; default) | ground-truth")
    add("--qat-lr", type=float, help=f"qat only: Adam learning rate (default {qat.DEFAULT_LR:g})")
    add("--qat-batch", type=int, help=f"qat only: crops per step (default {qat.DEFAULT_BATCH})")
    add("--qat-patch", type=int, help="qat only: packed crop side (default: the export's smaller side)")
    add("--qat-loss", help="qat only: a --loss spec (default: the run's training loss, from its level.json)")
    add("--vgg-weights", help="qat only: VGG-19 weights when the loss has a vgg term (default: the run's)")
    command.add_onnx_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    names = [f.name for f in FORMATS.values() if getattr(args, f.name)]
    names += [name for name in (args.format or "").split(",") if name.strip()]
    try:
        float_fallback = parse_float_fallback(args.float_fallback) if args.float_fallback is not None else ()
    except ExportError as error:
        return command.fail(error)
    return command.run(
        args,
        names,
        io=args.io,
        calibration=args.calibration,
        min_psnr=args.min_psnr,
        float_fallback=float_fallback,
        qat_options={name: getattr(args, name) for name in QAT_ARGUMENTS},
        opset=args.opset,
        max_abs_error=args.max_abs_error,
    )


if __name__ == "__main__":
    sys.exit(main())
