"""Align your phone's RAW frames with DSLR photos of the same scenes into a training set (ZRR layout).

    python -m pynet_tf.align --raw shots/phone --photos shots/dslr --out data/mycam
    python -m pynet_tf.train --data zrr:data/mycam ...          # trains on it unchanged
    python -m pynet_tf.align --raw R --photos P --out D --patch 448 --stride 224 --min-agreement 0.85

Files pair by name, else by capture time (the clocks' offset is found and reported). Each RAW is rendered
with the classical ISP only to find correspondences; a homography from SIFT matches (MAGSAC) puts the photo
on the RAW's full-resolution grid, and each patch is then shifted by ECC to sub-pixel accuracy and kept only
when the two views' gradients agree (a moved object or parallax fails). A pair that fails is one line in the
summary, the others still go on. OUT/index.html shows each pair's checkerboard and flicker images, and
OUT/alignment.json every number. An interrupted run resumes from OUT.partial/ when run again with the same flags.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path

from pynet_tf.alignment.dataset import Settings, build
from pynet_tf.alignment.pairing import DEFAULT_MAX_GAP, PairingError, pair_files
from pynet_tf.alignment.patches import (
    CELL,
    DEFAULT_MAX_SHIFT,
    DEFAULT_MIN_AGREEMENT,
    DEFAULT_PATCH,
    AlignOptions,
)
from pynet_tf.atomic import OutputError, check_output
from pynet_tf.cli import command_parser, settings_summary
from pynet_tf.data.rawio import DEFAULT_MAX_MEGAPIXELS


def build_parser():
    parser = command_parser("pynet_tf.align", __doc__)
    add = parser.add_argument
    add(
        "--raw",
        type=Path,
        required=True,
        help="folder of the phone's RAW files (DNG, or any RAW LibRaw reads)",
    )
    add("--photos", type=Path, required=True, help="folder of the DSLR's photos (JPEG, PNG, TIFF)")
    add("--out", type=Path, required=True, help="the dataset folder to create (must not hold anything yet)")
    add(
        "--patch",
        type=int,
        default=DEFAULT_PATCH,
        help=f"patch side in RAW pixels, even (default {DEFAULT_PATCH})",
    )
    add(
        "--stride", type=int, help="step between patches in RAW pixels, even (default: the patch, no overlap)"
    )
    add(
        "--max-shift",
        type=int,
        default=DEFAULT_MAX_SHIFT,
        help=f"largest local correction per patch in RAW pixels (default {DEFAULT_MAX_SHIFT})",
    )
    add(
        "--min-agreement",
        type=float,
        default=DEFAULT_MIN_AGREEMENT,
        help=f"lowest gradient correlation of a kept patch, per {CELL}-pixel cell (default {DEFAULT_MIN_AGREEMENT})",
    )
    add(
        "--max-gap",
        type=float,
        default=DEFAULT_MAX_GAP,
        help=f"pairing by capture time: most seconds between the two shots (default {DEFAULT_MAX_GAP:g})",
    )
    add(
        "--global-only",
        action="store_true",
        help="cut every patch on the global fit, without local shifts or checks (for comparison only)",
    )
    add("--quality", type=int, default=95, help="JPEG quality of the photo patches, 1-100 (default 95)")
    add(
        "--max-megapixels",
        type=float,
        default=DEFAULT_MAX_MEGAPIXELS,
        help=f"refuse frames whose header declares more (default {DEFAULT_MAX_MEGAPIXELS})",
    )
    return parser


def _stop(signum: int, frame) -> None:
    raise KeyboardInterrupt(signum)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    options = AlignOptions(args.patch, args.stride, args.max_shift, args.min_agreement, not args.global_only)
    settings = Settings(
        str(args.raw.resolve()),
        str(args.photos.resolve()),
        options,
        args.quality,
        args.max_megapixels,
        args.max_gap,
    )
    print(settings_summary("align", {"out": args.out, **settings.to_dict()}), flush=True)
    signal.signal(signal.SIGTERM, _stop)
    try:
        options.check()
        if not 1 <= args.quality <= 100:
            raise ValueError(f"--quality {args.quality}: between 1 and 100")
        out = check_output(args.out)
        if out.is_dir() and any(out.iterdir()):
            raise OutputError(f"--out {out}: already holds files; give a new folder, or delete this one")
        pairing = pair_files(args.raw, args.photos, args.max_gap)
        if pairing.clock_offset_s is not None:
            print(
                f"paired {sum(p.paired_by != 'name' for p in pairing.pairs)} by capture time: the photos' clock "
                f"runs {pairing.clock_offset_s:+.1f} s from the RAWs'"
            )
        for path, why in pairing.unpaired:
            print(f"unpaired: {path}: {why}")
        if not pairing.pairs:
            raise PairingError(
                f"no RAW in {args.raw} pairs with a photo in {args.photos} (see the lines above)"
            )
        result = build(pairing, out, settings)
    except ValueError as error:  # bad flags, folders, pairing, or nothing aligned: one line
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as stop:
        signum = stop.args[0] if stop.args else signal.SIGINT
        print(
            f"interrupted: finished pairs are kept in {args.out}.partial; the same command resumes",
            file=sys.stderr,
        )
        return 128 + int(signum)
    failed = sum("error" in record for record in result["pairs"])
    print(
        f"{out}: {result['patches']['train']} train and {result['patches']['test']} test patches from "
        f"{len(result['pairs']) - failed} pairs"
        + (f"; {failed} pairs failed (lines above)" if failed else "")
        + f"; look at {out / 'index.html'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
