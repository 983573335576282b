"""Process camera RAW files (or ZRR PNGs) at full resolution through a trained PyNET level 0, in tiles.

    python -m pynet_tf.process IMG_0001.DNG shots/*.NEF -o out/ --model runs/NAME/final
    python -m pynet_tf.process zrr/test/huawei_full_resolution/*.png -o out/ --model runs/NAME --compare
    python -m pynet_tf.process photo.dng -o out/ --model runs/NAME/level_0/model.keras --bits 16

Each INPUT (a camera RAW that LibRaw reads, by any other extension; ``.png``: a ZRR 16-bit mosaic) is
packed, run through the model in tiles of at most ``--tile`` packed pixels overlapping by ``--overlap``
(``pynet_tf.tiling``: peak memory is one tile's activations plus the output image), clipped to [0, 1] and
written atomically as ``OUT/<stem>.png`` (8-bit, or ``--bits 16``) or ``OUT/<stem>.jpg``. ``--compare``
also writes ``OUT/<stem>_classical.<ext>``: the classical ISP (``pynet_tf.data.isp``) with the file's
as-shot white balance and colour matrix; a ZRR PNG carries no metadata, so it gets grey-world white balance
and no colour matrix (camera RGB). A bad input is one ``error:`` line; the other inputs are still
processed and the exit status is 2. A frame whose header declares more than ``--max-megapixels`` is refused
before it is decoded (a corrupt header would otherwise cost gigabytes); raise the limit for larger real
frames. The resolved settings and per-file results of a run that wrote any image go to ``OUT/process.json``.

The tiling, its defaults and their measurements: ``pynet_tf.processing``.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict

from pynet_tf.atomic import OutputError
from pynet_tf.cli import settings_summary
from pynet_tf.data.rawio import DEFAULT_MAX_MEGAPIXELS
from pynet_tf.processing import DEFAULT_OVERLAP, DEFAULT_TILE, FORMATS, ProcessError, ProcessOptions, process


def build_parser() -> argparse.ArgumentParser:
    lines = __doc__.splitlines()
    parser = argparse.ArgumentParser(
        prog="python -m pynet_tf.process",
        description=lines[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join(lines[1:6]),
    )
    add = parser.add_argument
    add(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help="camera RAW files (DNG, NEF, CR2, ARW, ...) or ZRR .png mosaics",
    )
    add("-o", "--out", required=True, help="output folder (created if needed)")
    add(
        "--model",
        required=True,
        help="a level-0 model: runs/NAME, runs/NAME/final, a level folder or a .keras file",
    )
    add(
        "--tile",
        type=int,
        default=DEFAULT_TILE,
        help=f"largest tile side in packed pixels, a multiple of 16 (default {DEFAULT_TILE}); a frame that fits "
        "in one tile is processed in one call: exactly the whole-image output",
    )
    add(
        "--overlap",
        type=int,
        default=DEFAULT_OVERLAP,
        help=f"packed pixels shared by neighbouring tiles (default {DEFAULT_OVERLAP})",
    )
    add("--format", choices=list(FORMATS), default="png", help="png (default) or jpg")
    add("--bits", type=int, choices=(8, 16), default=8, help="PNG bits per channel (default 8)")
    add("--quality", type=int, default=95, help="JPEG quality, 1-100 (default 95)")
    add(
        "--max-megapixels",
        type=float,
        default=DEFAULT_MAX_MEGAPIXELS,
        help=f"refuse inputs whose header declares more megapixels (default {DEFAULT_MAX_MEGAPIXELS}: "
        "108 MP sensors with room to spare); raise it for larger real frames",
    )
    add("--compare", action="store_true", help="also write OUT/<stem>_classical.<ext> from the classical ISP")
    add("--no-progress", dest="progress", action="store_false", help="no progress bar over tiles")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = vars(build_parser().parse_args(argv))
    model_path, inputs, out = args.pop("model"), args.pop("inputs"), args.pop("out")
    options = ProcessOptions(**args)
    print(
        settings_summary(
            "process", {"model": model_path, "out": out, "inputs": len(inputs), **asdict(options)}
        ),
        flush=True,
    )
    try:
        results = process(model_path, inputs, out, options)
    except (ProcessError, OutputError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "interrupted: the files listed above are complete; nothing partial was written", file=sys.stderr
        )
        return 130
    failed = [result for result in results if result.error]
    if failed:
        print(f"{len(failed)} of {len(results)} inputs failed (see the error lines above)", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
