"""sRGB <-> linear sRGB <-> CIE XYZ (D65) <-> CIELAB in TensorFlow, for colour losses and metrics.

Every conversion is differentiable with finite gradients on all of [0, 1]^3: each power runs on a base
clamped into the branch that uses it, so neither black (sRGB 0) nor the Lab knee t = (6/29)^3 produces an
infinite slope, and ``tf.where`` never multiplies an unused infinite gradient by zero (which would be NaN).

Conventions are scikit-image's ``rgb2lab`` defaults (IEC 61966-2-1 sRGB curve, D65 white, 2° observer), except
two details: the linear sRGB -> XYZ matrix is ``isp.SRGB_TO_XYZ`` (7-digit, from the sRGB primaries and D65, so
sRGB white is exactly Lab (100, 0, 0); scikit-image's 6-digit 1996 matrix puts it at (100, -0.0025, 0.0047)),
and the Lab knee uses the exact CIE constants 6/29 rather than the rounded 0.008856 and 7.787.

Tensors are float32, shaped (..., 3) with the colour channels last.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from pynet_tf.data.isp import SRGB_TO_XYZ, apply_color_matrix

# IEC 61966-2-1: a linear toe below the threshold, an offset 2.4 power above it.
SRGB_THRESHOLD = 0.04045  # in sRGB values
LINEAR_THRESHOLD = 0.0031308  # the same point in linear values (0.04045 / 12.92)
SRGB_TOE_SLOPE = 12.92
SRGB_GAMMA = 2.4
SRGB_OFFSET = 0.055

XYZ_TO_SRGB = np.linalg.inv(SRGB_TO_XYZ.astype(np.float64)).astype(np.float32)

# CIE XYZ of the D65 white for the 2° observer, scikit-image's default (``xyz_tristimulus_values``). These are
# also the row sums of SRGB_TO_XYZ, which is what makes sRGB white neutral in Lab.
D65_WHITE = np.array([0.95047, 1.0, 1.08883], np.float32)

# CIELAB's f(t): a cube root above the knee (6/29)^3, the tangent line through (0, 4/29) below it.
LAB_DELTA = 6.0 / 29.0
LAB_KNEE = LAB_DELTA**3
LAB_OFFSET = 4.0 / 29.0


def srgb_to_linear(x: tf.Tensor) -> tf.Tensor:
    """sRGB values -> linear light (the IEC 61966-2-1 decoding curve)."""
    x = tf.cast(x, tf.float32)
    curve = ((tf.maximum(x, SRGB_THRESHOLD) + SRGB_OFFSET) / (1.0 + SRGB_OFFSET)) ** SRGB_GAMMA
    return tf.where(x > SRGB_THRESHOLD, curve, x / SRGB_TOE_SLOPE)


def linear_to_srgb(x: tf.Tensor) -> tf.Tensor:
    """Linear light -> sRGB values (the IEC 61966-2-1 encoding curve, the inverse of ``srgb_to_linear``)."""
    x = tf.cast(x, tf.float32)
    curve = (1.0 + SRGB_OFFSET) * tf.maximum(x, LINEAR_THRESHOLD) ** (1.0 / SRGB_GAMMA) - SRGB_OFFSET
    return tf.where(x > LINEAR_THRESHOLD, curve, x * SRGB_TOE_SLOPE)


def linear_to_xyz(x: tf.Tensor) -> tf.Tensor:
    """Linear sRGB -> CIE XYZ (D65, Y of white = 1)."""
    return apply_color_matrix(tf.cast(x, tf.float32), SRGB_TO_XYZ)


def xyz_to_linear(x: tf.Tensor) -> tf.Tensor:
    """CIE XYZ (D65) -> linear sRGB, unclipped (out-of-gamut colours go below 0 or above 1)."""
    return apply_color_matrix(tf.cast(x, tf.float32), XYZ_TO_SRGB)


def _lab_f(t: tf.Tensor) -> tf.Tensor:
    cube_root = tf.maximum(t, LAB_KNEE) ** (1.0 / 3.0)
    return tf.where(t > LAB_KNEE, cube_root, t / (3.0 * LAB_DELTA**2) + LAB_OFFSET)


def _lab_f_inverse(f: tf.Tensor) -> tf.Tensor:
    return tf.where(f > LAB_DELTA, f**3, 3.0 * LAB_DELTA**2 * (f - LAB_OFFSET))


def xyz_to_lab(x: tf.Tensor) -> tf.Tensor:
    """CIE XYZ -> CIELAB relative to the D65 white: L in [0, 100] for XYZ inside the white's gamut."""
    f = _lab_f(tf.cast(x, tf.float32) / D65_WHITE)
    fx, fy, fz = tf.unstack(f, axis=-1)
    return tf.stack([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], axis=-1)


def lab_to_xyz(x: tf.Tensor) -> tf.Tensor:
    """CIELAB (D65 white) -> CIE XYZ, the inverse of ``xyz_to_lab``."""
    lightness, a, b = tf.unstack(tf.cast(x, tf.float32), axis=-1)
    fy = (lightness + 16.0) / 116.0
    f = tf.stack([fy + a / 500.0, fy, fy - b / 200.0], axis=-1)
    return _lab_f_inverse(f) * D65_WHITE


def rgb_to_lab(rgb: tf.Tensor) -> tf.Tensor:
    """sRGB in [0, 1], shape (..., 3) -> CIELAB (D65), L in [0, 100]."""
    return xyz_to_lab(linear_to_xyz(srgb_to_linear(rgb)))


def lab_to_rgb(lab: tf.Tensor) -> tf.Tensor:
    """CIELAB (D65), shape (..., 3) -> sRGB, clipped to [0, 1] as ``skimage.color.lab2rgb`` does."""
    return tf.clip_by_value(linear_to_srgb(xyz_to_linear(lab_to_xyz(lab))), 0.0, 1.0)
