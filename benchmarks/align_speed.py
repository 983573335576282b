"""Time to align one 12 MP phone RAW with a 24 MP-class DSLR photo, by stage, and the memory it takes.

    .venv/bin/python benchmarks/align_speed.py                 # 4032x3024 RAW, photo 1.45x, 448-px patches
    .venv/bin/python benchmarks/align_speed.py --repeats 3 --patch 448 --stride 224

The pair is synthetic (``pynet_tf.alignment.synthetic``): a 4032x3024 collage of scikit-image's sample
photos (twelve 1008-px tiles), its RAW by ``unprocess`` with noise, a DSLR view 1.45x larger (5846x4385,
25.6 MP) through a random homography with per-patch parallax of up to 1 px. Stages, each timed on its own
and then all together as ``align_pair`` does them: the classical render the matching needs, the global fit
(SIFT on copies of at most ``register.MATCH_SIDE`` px, MAGSAC, the dense ECC polish), the per-patch work
(photo brought to the RAW's scale, warped, ECC per patch, checks), and encoding the kept patches as the
dataset stores them (16-bit PNG mosaic, JPEG photo). Peak memory is the process's maximum resident set.

Measured on 2026-12-06 (2-core Intel Xeon, defaults, nothing else running)::

    RAW 4032x3024 (12.2 MP), photo 5846x4385 (25.6 MP), patch 448, stride 448
    run  render s  global s  align_pair s  encode s  total s      kept
      1      2.10      5.29         10.53      2.45    12.98   38/54
      2      2.00      4.29          8.02      2.33    10.35   38/54
    peak resident memory 3486 MiB (including the pair's synthesis)

10 to 13 s per 12 MP pair; the 16 patches not kept lie partly outside the photo (its roll and keystone).
"""

from __future__ import annotations

import argparse
import resource
import sys
import time

import cv2
import numpy as np
import skimage.data

import pynet_tf  # noqa: F401  (Keras 2 and the quiet console, before TensorFlow loads)

# isort: split

from benchmarks import record
from pynet_tf.alignment import register
from pynet_tf.alignment.dataset import zrr_png
from pynet_tf.alignment.patches import AlignOptions, align_pair
from pynet_tf.alignment.synthetic import make_pair
from pynet_tf.data import isp
from pynet_tf.data.photoio import encode_photo

TILES = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field", "retina")


def collage(width: int, height: int, tile: int) -> np.ndarray:
    """The sample photos resized to ``tile``-px squares, side by side and row by row."""
    rows, cols = height // tile, width // tile
    image = np.zeros((rows * tile, cols * tile, 3), np.float32)
    for index in range(rows * cols):
        source = getattr(skimage.data, TILES[index % len(TILES)])()[..., :3].astype(np.float32) / 255
        row, col = divmod(index, cols)
        image[row * tile : (row + 1) * tile, col * tile : (col + 1) * tile] = cv2.resize(
            source, (tile, tile), interpolation=cv2.INTER_CUBIC
        )
    return np.clip(image, 0, 1)


def encode(raw, kept: list, size: int) -> None:
    """The kept patches as the dataset stores them (``pynet_tf.alignment.dataset``), without the files."""
    packed = raw.packed()
    for patch in kept:
        samples = packed[patch.top // 2 : (patch.top + size) // 2, patch.left // 2 : (patch.left + size) // 2]
        zrr_png(samples)
        encode_photo(patch.photo, "jpg", quality=95)


def timed(function, *args):
    start = time.perf_counter()
    result = function(*args)
    return result, time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--patch", type=int, default=448)
    parser.add_argument("--stride", type=int, default=None)
    parser.add_argument("--scale", type=float, default=1.45, help="DSLR pixels per RAW pixel")
    args = parser.parse_args(argv)
    photo = collage(4032, 3024, 1008)
    pair = make_pair(photo, 7, scale=args.scale, amplitude=1.0, cell=args.patch, noise=True)
    options = AlignOptions(patch=args.patch, stride=args.stride)
    height, width = pair.raw.mosaic.shape
    print(
        f"RAW {width}x{height} ({width * height / 1e6:.1f} MP), photo {pair.photo.shape[1]}x{pair.photo.shape[0]} "
        f"({pair.photo.shape[0] * pair.photo.shape[1] / 1e6:.1f} MP), patch {args.patch}, stride {options.step}"
    )
    print(
        f"{'run':>3s} {'render s':>9s} {'global s':>9s} {'align_pair s':>13s} {'encode s':>9s} {'total s':>8s} {'kept':>9s}"
    )
    for run in range(1, args.repeats + 1):
        render, render_s = timed(lambda: isp.process_raw(pair.raw).numpy())
        reference = register.luminance(render)
        _, global_s = timed(register.fit_global, reference, register.luminance(pair.photo))
        alignment, align_s = timed(align_pair, pair.raw, pair.photo, options)
        kept = [patch for patch in alignment.patches if patch.dropped is None]

        _, encode_s = timed(encode, pair.raw, kept, args.patch)
        print(
            f"{run:3d} {render_s:9.2f} {global_s:9.2f} {align_s:13.2f} {encode_s:9.2f} {align_s + encode_s:8.2f} "
            f"{len(kept):4d}/{len(alignment.patches):<4d}"
        )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"peak resident memory {peak:.0f} MiB (including the pair's synthesis); align_pair includes the render "
        "and the global fit, so total = align_pair + encode"
    )
    return 0


if __name__ == "__main__":
    sys.exit(record.run(main, "align_speed"))
