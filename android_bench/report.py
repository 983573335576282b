"""Accuracy next to latency, and which file to ship: one report from android_bench.run's results.

    python -m android_bench.report results/ -o report/
    python -m android_bench.report results/phone.json results/host.json -o report/ --min-psnr 35
    python -m android_bench.report results/ -o report/ --no-crops    # no TensorFlow, no source models needed

Writes report.md (its PNG figures in figures/), a self-contained report.html (figures inline as data URIs, no
external resources) and report.json, each atomically. Per section (a device and an input -> output shape: the
files doing the same job there, the only ones compared with each other), one row per model x delegate x
threads (file, precision, size, init / mean / median / p95 latency, peak memory, PSNR, SSIM and MS-SSIM vs
the float model and vs ground truth from the file's export sidecar, PSNR against the classical ISP's, speed-up
vs the float32 file of the same source model) and a reference row: the classical ISP on the same held-out
inputs (from the sidecars). A file 6 dB or more below it is flagged "not a working ISP". Then the fastest row
at or above --min-psnr dB vs the float model per delegate ("ship": working ISPs first, a choice that is none
says so first), a latency-vs-PSNR plot with its Pareto front and the classical ISP's line, latency bars per
delegate, and image crops of one held-out example (ground truth, classical ISP, float model, each file, error
heat maps). Files without a sidecar (third-party models) appear with empty accuracy columns and no crops, with
the reason. Exit status: 0 written, 2 bad input (one line on stderr).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import pynet_tf  # noqa: F401  (Keras 2 and the quiet console)
from pynet_tf import atomic
from pynet_tf.cli import command_parser
from reporting.inputs import ReportInputError
from reporting.report import DEFAULT_MIN_PSNR, build, ship_summary, write


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser("android_bench.report", __doc__)
    parser.add_argument(
        "results", nargs="+", type=Path, help="results files or folders (android_bench.run --out)"
    )
    parser.add_argument(
        "-o", "--out", type=Path, default=Path("report"), help="report folder (default report/)"
    )
    parser.add_argument(
        "--min-psnr",
        type=float,
        default=DEFAULT_MIN_PSNR,
        metavar="DB",
        help=f"ship bar: PSNR vs the float model in dB (default {DEFAULT_MIN_PSNR:g})",
    )
    parser.add_argument(
        "--no-crops",
        action="store_true",
        help="skip the image crops (they load TensorFlow and the source models)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if not math.isfinite(args.min_psnr):
            raise ReportInputError(f"--min-psnr {args.min_psnr}: give a finite number of dB, e.g. 40")
        atomic.check_output(args.out, "-o")
        report = build(args.results, min_psnr=args.min_psnr, crops=not args.no_crops)
    except (ReportInputError, atomic.OutputError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    written = write(report, args.out)
    for line in ship_summary(report):
        print(line)
    print(f"report: {written['html']} ({written['md'].name}, {written['json'].name} beside it)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
