"""Crops, Bayer-aware rotations and flips of (packed RAW, target) pairs, and the target of each PyNET level.

Rotating or flipping a packed image moves whole 2x2 quads but not the samples inside them: a flipped RGGB
quad is GRBG, so the network would see red half a pixel to the wrong side of green. Here the transform is
applied to the mosaic itself (``depth_to_space`` of the canonical (R, Gr, Gb, B) planes is an RGGB mosaic)
and to the target together; the result is then cropped by one pixel where needed so that red sits on the
top-left again (Liu et al., "Learning Raw Image Denoising with Bayer Pattern Unification and Bayer
Preserving Augmentation", 2019). After a transposing transform, the two green planes trade places; both
are green samples, which is all the network relies on.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from pynet_tf.nets.pynet.levels import output_size

# where R (0) sits in a canonical RGGB quad; numpy, so importing this module does not start TensorFlow's
# runtime (multi-worker training must configure it first)
_TILE_IDS = np.array([[0.0, 1.0], [2.0, 3.0]], np.float32)


def bayer_dihedral(packed: tf.Tensor, target: tf.Tensor, rotations: tf.Tensor, flip: tf.Tensor):
    """Rotate by ``rotations`` quarter turns (after a left-right flip if ``flip``), keeping RGGB order.

    ``packed`` is (h + 1, w + 1, 4) and ``target`` (2h + 2, 2w + 2, 3), aligned; the result is (h, w, 4)
    and (2h, 2w, 3): the one-quad margin pays for the realigning crop. ``h == w`` when ``rotations`` is odd.
    """
    height = (tf.shape(packed)[0] - 1) * 2
    width = (tf.shape(packed)[1] - 1) * 2
    mosaic = tf.nn.depth_to_space(packed[tf.newaxis], 2)[0]
    ids = tf.tile(_TILE_IDS[..., tf.newaxis], [height // 2 + 1, width // 2 + 1, 1])
    stack = tf.concat([mosaic, target, ids], axis=-1)
    stack = tf.cond(flip, lambda: tf.image.flip_left_right(stack), lambda: stack)
    stack = tf.image.rot90(stack, rotations)
    red = tf.cast(tf.where(tf.equal(stack[:2, :2, -1], 0.0))[0], tf.int32)
    new_height, new_width = (height, width) if rotations % 2 == 0 else (width, height)
    stack = stack[red[0] : red[0] + new_height, red[1] : red[1] + new_width]
    return tf.nn.space_to_depth(stack[tf.newaxis, ..., :1], 2)[0], stack[..., 1:4]


def target_for_level(target: tf.Tensor, level: int) -> tf.Tensor:
    """The full-resolution target (2h, 2w, 3) resized to what level ``level`` outputs for an (h, w) input.

    Bicubic with antialiasing, as the reference's ``imresize`` (PIL bicubic) of the DSLR photo; level 0
    keeps the photo as it is.
    """
    if level == 0:
        return target
    size = output_size(level, tf.shape(target)[-3] // 2, tf.shape(target)[-2] // 2)
    resized = tf.image.resize(target, size, method="bicubic", antialias=True)
    return tf.clip_by_value(resized, 0.0, 1.0)
