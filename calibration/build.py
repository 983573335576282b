"""Build a calibration set for int8 post-training quantization: packed RAW crops that cover the inputs.

    python calibration/build.py --data samples --num 32 --shape 224x224 --seed 0 --out calibration/s224.npz
    python -m calibration.build --data zrr:/data/zrr --num 128 --shape 544x960 --out calibration/zrr_fhd.npz
    python calibration/build.py --arch mobile --data photos:DIR --num 16 --shape 1500x2000 --out cal12mp.npz

--shape is the exported model's static packed input (H x W x 4; 544x960 for a 1088x1920 frame), a size
the network named by --arch (default pynet) takes: multiples of 16 for PyNET, of 4 for the mobile ISP (a
12 MP frame is 1500x2000), as pynet_tf/architectures.py says. A pool of --candidates crops of exactly that
size (default max(64, 4 x --num)) is drawn from the train split, several per image at random positions;
photo sources (samples, photos:DIR) make each crop's RAW with unprocess from a seed of its own, RAW sources
(zrr:DIR, pairs:DIR) crop the packed frame (clipped to [0, 1]). An image smaller than --shape is used all
the same: a photo is resized up (bicubic) before unprocessing, a RAW frame is reflect-padded, and the crop's
source says so. Every draw derives from --seed: the same command writes the same file.

--num crops are then chosen from the pool by greedy k-center on per-crop statistics (exposure, colour cast,
contrast, texture, clipping; calibration/selection.py says which and why), not the first N: int8 ranges
come from these crops, and k-center reaches the bright, dark, tinted and textured edges of the pool that
the first N (a few scenes) and a random N (mostly typical crops) miss. The summary printed, also kept in
the file's metadata, gives the covering radius (the farthest any candidate is from its nearest chosen
crop, in standard deviations of the features: lower is better) of the chosen set next to the first N's
and random N's, and each feature's range over the chosen crops against the pool's.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pynet_tf  # noqa: F401  (selects Keras 2 before TensorFlow loads)
from calibration.calibration_set import CalibrationError
from calibration.crops import (
    CANDIDATES_PER_CHOSEN,
    DEFAULT_CFA,
    MIN_CANDIDATES,
    build_calibration,
    default_candidates,
)
from pynet_tf import atomic
from pynet_tf.architectures import ARCHITECTURES, size_rules
from pynet_tf.architectures import DEFAULT as DEFAULT_ARCH
from pynet_tf.cli import command_parser, image_size, settings_summary
from pynet_tf.data import bayer
from pynet_tf.data.sources import DataSourceError


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser("calibration.build", __doc__)
    add = parser.add_argument
    add("--data", default="samples", help="samples (default) | zrr:DIR | pairs:DIR | photos:DIR")
    add("--num", type=int, default=32, help="crops in the set (default 32)")
    add(
        "--shape",
        type=image_size,
        required=True,
        help=f"packed HxW of the exported model's input, {size_rules()} (e.g. 224x224, 544x960)",
    )
    add(
        "--arch",
        default=DEFAULT_ARCH,
        choices=list(ARCHITECTURES),
        help=f"the network the set is for, whose input rule --shape must meet (default {DEFAULT_ARCH})",
    )
    add("--seed", type=int, default=0, help="seed of every draw: image order, positions, synthetic RAW")
    add(
        "--candidates",
        type=int,
        help=f"crops in the pool the set is chosen from (default max({MIN_CANDIDATES}, "
        f"{CANDIDATES_PER_CHOSEN} x --num))",
    )
    add(
        "--cfa",
        default=DEFAULT_CFA,
        choices=bayer.PATTERNS,
        help=f"pattern of synthetic RAW, photo sources only (default {DEFAULT_CFA}, as training samples it)",
    )
    add("-o", "--out", required=True, type=Path, help="the .npz to write (atomically)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    candidates = default_candidates(args.num) if args.candidates is None else args.candidates
    shape = "x".join(map(str, args.shape))
    settings = {**vars(args), "shape": shape, "out": str(args.out), "candidates": candidates}
    print(settings_summary("calibration", settings))
    try:
        atomic.check_output(args.out, folder=False)
        built = build_calibration(
            args.data,
            args.num,
            args.shape,
            seed=args.seed,
            candidates=candidates,
            cfa=args.cfa,
            arch=args.arch,
        )
    except (CalibrationError, DataSourceError, atomic.OutputError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:
        saved = built.save(args.out)
    except OSError as error:
        print(f"error: {args.out}: cannot write the calibration set ({error})", file=sys.stderr)
        return 2
    print(saved.summary())
    print(f"written: {saved.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
