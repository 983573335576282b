"""Convert a trained PyNET level to ONNX (float32, tf2onnx), verified in onnxruntime, with a JSON sidecar.

    python export/to_onnx.py --model runs/NAME/final --input-shape 224x224 --opset 17 --out exported/
    python -m export.to_onnx --input-shape dynamic

Batch 1 and a static packed H x W (--input-shape, default 224x224), or `dynamic` (H and W set at run time,
named height / width; the output's out_height / out_width). Opset 17 by default (17 or 18: tf2onnx 1.17
converts no higher).
The file is run in onnxruntime (CPUExecutionProvider) on the held-out inputs (--data's test split, as
export/to_tflite.py) against the float Keras model; if the max abs error exceeds --max-abs-error (1e-4) it is
not written and the command exits 1. Otherwise <file>.onnx and <file>.onnx.json (the TFLite sidecar schema,
see export/sidecar.py) are written atomically. User errors exit 2 with one line. The same export as
``export/to_tflite.py --onnx`` (export/pipeline.py), ONNX alone.
"""

from __future__ import annotations

import argparse
import sys

import export  # noqa: F401  (Keras 2 and the quiet console, before TensorFlow loads)
from export import command
from pynet_tf import architectures
from pynet_tf.cli import command_parser


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser("export.to_onnx", __doc__, script=True)
    command.add_source_arguments(
        parser,
        f"packed HxW, {architectures.size_rules()} as the model's network is; default 224x224; or 'dynamic'",
    )
    command.add_onnx_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return command.run(args, ["onnx"], opset=args.opset, max_abs_error=args.max_abs_error)


if __name__ == "__main__":
    sys.exit(main())
