"""Alignment error against the known answer over synthetic pairs, and what the patch check keeps and drops.

    .venv/bin/python benchmarks/align_accuracy.py                  # 20 pairs, 128-px patches
    .venv/bin/python benchmarks/align_accuracy.py --pairs 40 --patch 192

Each pair (``pynet_tf.alignment.synthetic``): a photo from scikit-image's samples, its RAW made by
``unprocess`` with noise, a DSLR view through a random homography (about 1.2 photo pixels per RAW pixel, a
few degrees of roll, up to 5% keystone), re-exposed and colour-shifted. Measured per pair:

- global: the same pair without local shifts, fitted by ``register.fit_global``; the error is the largest
  distance at the RAW frame's four corners between the truth and the fit, in RAW pixels;
- local: the pair with a random shift of up to ``--amplitude`` px per patch-sized cell (parallax no
  homography follows), run through ``align_pair``; the error is, per refined patch, the distance between its
  shift and the truth at its centre, and "global only" the same with no shift;
- the check (``gradient_agreement``): its score on kept patches, on the same patches moved ``--offset`` px,
  and on patches holding an object pasted into the DSLR view only (every fourth pair), against the default
  ``--min-agreement`` (``patches.DEFAULT_MIN_AGREEMENT``).

Measured on 2026-12-06 (2-core Intel Xeon, defaults)::

    (see benchmarks/results/align_accuracy.md for the latest run's output)
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

import pynet_tf  # noqa: F401  (Keras 2 and the quiet console, before TensorFlow loads)

# isort: split
from benchmarks import record
from pynet_tf.alignment import register
from pynet_tf.alignment.patches import DEFAULT_MIN_AGREEMENT, AlignOptions, align_pair
from pynet_tf.alignment.synthetic import corner_error, make_pair, sample_photo
from pynet_tf.data import isp

SAMPLES = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field", "retina")


def sample(name: str) -> np.ndarray:
    image = sample_photo(name)
    return image[:1024, :1024]  # retina is 1411 px square: a 1024-px crop keeps each pair quick


def overlap(patch, size: int, box) -> int:
    left, top, right, bottom = box
    return max(0, min(patch.left + size, right) - max(patch.left, left)) * max(
        0, min(patch.top + size, bottom) - max(patch.top, top)
    )


def stats(values: list[float]) -> str:
    values = np.asarray(values)
    return f"median {np.median(values):.3f}, 95th {np.percentile(values, 95):.3f}, worst {values.max():.3f} (n={len(values)})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=20)
    parser.add_argument("--patch", type=int, default=128, help="patch and parallax cell side, RAW pixels")
    parser.add_argument("--amplitude", type=float, default=1.5, help="largest local shift per cell, px")
    parser.add_argument("--offset", type=float, default=2.0, help="misalignment the check is shown, px")
    args = parser.parse_args(argv)
    size = args.patch
    global_errors, local_errors, global_only, seconds = [], [], [], []
    kept_scores, moved_scores, pasted_scores, touching_kept = [], [], [], 0
    print(f"{'pair':28s} {'global px':>9s} {'local worst':>11s} {'kept':>9s} {'s':>5s}")
    for index in range(args.pairs):
        name = SAMPLES[index % len(SAMPLES)]
        photo, seed, paste = sample(name), 100 + index, index % 4 == 3
        still = make_pair(photo, seed, scale=1.2, amplitude=0.0, noise=True)
        reference = register.luminance(isp.process_raw(still.raw).numpy())
        fit = register.fit_global(reference, register.luminance(still.photo))
        global_errors.append(corner_error(fit.homography, still.homography, *reference.shape[::-1]))
        pair = make_pair(photo, seed, scale=1.2, amplitude=args.amplitude, cell=size, paste=paste, noise=True)
        start = time.perf_counter()
        alignment = align_pair(pair.raw, pair.photo, AlignOptions(patch=size))
        seconds.append(time.perf_counter() - start)
        inverse = np.linalg.inv(alignment.fit.homography)
        render_luma = register.luminance(alignment.render)
        photo_luma = register.luminance(pair.photo)
        errors, inside = [], 0
        for patch in alignment.patches:
            if patch.dropped == "outside the photo":
                continue
            inside += 1
            if pair.pasted and overlap(patch, size, pair.pasted) >= (64 * 64) // 4:
                pasted_scores.append(patch.agreement if patch.agreement is not None else np.nan)
                touching_kept += patch.dropped is None
                continue
            if patch.dropped or patch.shift is None or (pair.pasted and overlap(patch, size, pair.pasted)):
                continue
            centre = np.array([[patch.left + (size - 1) / 2, patch.top + (size - 1) / 2]])
            wanted = register.project(inverse, pair.truth(centre))[0] - centre[0]
            errors.append(float(np.linalg.norm(wanted - np.array(patch.shift))))
            global_only.append(float(np.linalg.norm(wanted)))
            target = render_luma[patch.top : patch.top + size, patch.left : patch.left + size]
            if patch.agreement is not None:
                kept_scores.append(patch.agreement)
                moved = register.photo_patch(
                    photo_luma,
                    alignment.fit.homography,
                    patch.left + patch.shift[0] + args.offset,
                    patch.top + patch.shift[1],
                    size,
                )
                score = register.gradient_agreement(target, moved, max(1, round(size / 64)))
                if score is not None:
                    moved_scores.append(score)
        local_errors.extend(errors)
        kept = sum(patch.dropped is None for patch in alignment.patches)
        label = f"{name}{' +pasted' if paste else ''} #{seed}"
        worst = f"{max(errors):.3f}" if errors else "-"
        print(f"{label:28s} {global_errors[-1]:9.3f} {worst:>11s} {kept:4d}/{inside:<4d} {seconds[-1]:5.2f}")
    threshold = DEFAULT_MIN_AGREEMENT
    kept_scores, moved_scores = np.asarray(kept_scores), np.asarray(moved_scores)
    pasted = np.asarray(pasted_scores, np.float64)
    print()
    print(f"global fit, corner error in RAW px over {args.pairs} pairs: {stats(global_errors)}")
    print(f"local shift error, RAW px, refined patches: {stats(local_errors)}")
    print(f"the same patches on the global fit alone:   {stats(global_only)}")
    print(f"seconds per pair (align_pair, frames up to 1024 px): median {np.median(seconds):.2f}")
    print()
    print(
        f"gradient agreement of aligned patches: min {kept_scores.min():.3f}, 1st pct "
        f"{np.percentile(kept_scores, 1):.3f}, median {np.median(kept_scores):.3f}"
    )
    print(
        f"the same patches moved {args.offset:g} px: median {np.median(moved_scores):.3f}, 95th pct "
        f"{np.percentile(moved_scores, 95):.3f}; below {threshold:g}: {np.mean(moved_scores < threshold):.0%}"
    )
    print(
        f"patches holding a pasted object (a quarter cell or more): {len(pasted)}, kept {touching_kept}; "
        f"scores {np.nanmin(pasted) if len(pasted) else float('nan'):.3f} to {np.nanmax(pasted) if len(pasted) else float('nan'):.3f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(record.run(main, "align_accuracy"))
