"""Is a trained level a working ISP? The collapse guard's two tests, run on every validation.

A loss can fall while the output stops being a photo: a saturated or flat image (every pixel the same
colour) scores a steady PSNR that says nothing, and every figure measured on such a model afterwards (int8
vs float, latency per delegate, a ship choice) measures a non-ISP. Like the NaN guard, this module says so
in numbers:

- ``flat``: the output's spatial contrast (its standard deviation over the image, per channel, averaged
  over the validation crops) is under ``FLAT_CONTRAST`` of the target's;
- ``saturated``: more than ``SATURATED_SHARE`` of its values lie outside [0, 1] (the output tanh pinned at
  either end: the salt-and-pepper image of a blown-up learning rate, or a uniform white or black);
- ``collapsed``: its validation PSNR is more than ``COLLAPSE_DROP_DB`` below what the level it was
  warm-started from reached (finer levels are harder, but not by that much).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

FLAT_CONTRAST = 0.1
"""An output with less spatial contrast than this share of its target's is flat (a constant image: 0)."""
SATURATED_SHARE = 0.5
"""An output with more than this share of its values outside [0, 1] (before clipping) is saturated."""
COLLAPSE_DROP_DB = 6.0
"""A level whose PSNR ends this far below its warm start's has collapsed; a healthy finer level was
within 2 dB of the coarser one in every quick run measured (docs/design.md, 'Why the quick PyNET was a flat
grey image')."""


class TrainingCollapsedError(RuntimeError):
    """A trained level is not a working ISP (flat or collapsed output); its model is kept for inspection."""


def contrast(prediction: tf.Tensor, target: tf.Tensor) -> float:
    """Mean spatial standard deviation of ``prediction`` over that of ``target`` (NHWC batches): 1 for an
    output as varied as its target, 0 for a constant image."""

    def spread(images: tf.Tensor) -> float:
        return float(np.mean(tf.math.reduce_std(tf.cast(images, tf.float32), axis=[1, 2])))

    wanted = spread(target)
    return spread(prediction) / wanted if wanted > 0 else 1.0


def saturation(prediction: tf.Tensor) -> float:
    """The share of ``prediction``'s values (before clipping) outside [0, 1]."""
    outside = tf.logical_or(prediction < 0.0, prediction > 1.0)
    return float(tf.reduce_mean(tf.cast(outside, tf.float32)))


def problem(scores: dict[str, float | None], warm_start_psnr: float | None) -> str | None:
    """Why validation ``scores`` (with ``psnr``, ``contrast`` and ``saturated``) are not a working level's, in one line, or
    None. ``warm_start_psnr`` is the final validation PSNR of the level it grew from (None: no warm start)."""
    found = []
    if scores["contrast"] < FLAT_CONTRAST:
        found.append(
            f"flat output: spatial contrast {scores['contrast']:.3f} of the target's (< {FLAT_CONTRAST})"
        )
    if scores["saturated"] > SATURATED_SHARE:
        found.append(f"saturated output: {100 * scores['saturated']:.0f}% of its values outside [0, 1]")
    if warm_start_psnr is not None and scores["psnr"] < warm_start_psnr - COLLAPSE_DROP_DB:
        found.append(
            f"collapsed: PSNR {scores['psnr']:.2f} dB, more than {COLLAPSE_DROP_DB:g} dB below "
            f"the {warm_start_psnr:.2f} dB of the level it was warm-started from"
        )
    return "; ".join(found) or None
