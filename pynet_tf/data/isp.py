"""A classical camera ISP in TensorFlow: the baseline a learned ISP must beat, and what ``unprocess`` inverts.

    packed RAW (R, Gr, Gb, B) -> bilinear demosaic -> white balance -> clip -> colour matrix (camera -> sRGB)
                              -> clip -> gamma 1/2.2 -> smoothstep tone curve -> sRGB in [0, 1]

This is the processing model of Brooks et al. 2019 ("Unprocessing Images for Learned Raw Denoising"); every
step and its inverse live here, side by side, so ``unprocess`` and this ISP cannot drift apart.

Works on one image (h, w, 4) or a batch (n, h, w, 4), eagerly or inside tf.data / tf.function graphs.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from pynet_tf.data import bayer

GAMMA = 2.2
# Brooks et al. clamp before the power so that its gradient and 0 ** (1/2.2) stay finite.
GAMMA_EPSILON = 1e-8

# Linear sRGB (D65) -> CIE XYZ (IEC 61966-2-1).
SRGB_TO_XYZ = np.array(
    [
        [0.4124564, 0.3575761, 0.1804375],
        [0.2126729, 0.7151522, 0.0721750],
        [0.0193339, 0.1191920, 0.9503041],
    ],
    dtype=np.float32,
)

# Bilinear demosaicking of a colour plane holding only its own CFA samples (zeros elsewhere): red and blue
# sit on one pixel in four, green on one in two (Malvar et al. 2004's bilinear baseline).
_BILINEAR_RED_BLUE = np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]], np.float32) / 4
_BILINEAR_GREEN = np.array([[0, 1, 0], [1, 4, 1], [0, 1, 0]], np.float32) / 4


def smoothstep(image: tf.Tensor) -> tf.Tensor:
    """The global tone curve 3x^2 - 2x^3 (a gentle S-curve on [0, 1])."""
    image = tf.clip_by_value(image, 0.0, 1.0)
    return image * image * (3.0 - 2.0 * image)


def inverse_smoothstep(image: tf.Tensor) -> tf.Tensor:
    """The exact inverse of ``smoothstep`` on [0, 1]."""
    image = tf.clip_by_value(image, 0.0, 1.0)
    return 0.5 - tf.sin(tf.asin(1.0 - 2.0 * image) / 3.0)


def gamma_compression(image: tf.Tensor) -> tf.Tensor:
    """Linear -> display values, x ** (1/2.2)."""
    return tf.maximum(image, GAMMA_EPSILON) ** (1.0 / GAMMA)


def gamma_expansion(image: tf.Tensor) -> tf.Tensor:
    """Display -> linear values, x ** 2.2 (the inverse of ``gamma_compression`` above 1e-8)."""
    return tf.maximum(image, GAMMA_EPSILON) ** GAMMA


def apply_color_matrix(image: tf.Tensor, matrix: tf.Tensor) -> tf.Tensor:
    """``matrix`` (3, 3) applied to every RGB pixel: out[..., i] = sum_j matrix[i, j] * image[..., j]."""
    return tf.einsum("...j,ij->...i", image, tf.cast(matrix, image.dtype))


def srgb_to_camera(xyz_to_camera: tf.Tensor | np.ndarray) -> tf.Tensor:
    """The linear sRGB -> camera RGB matrix of a camera with DNG-style ``xyz_to_camera`` (rawpy's ``rgb_xyz_matrix``).

    Rows are normalised to sum to 1, so sRGB white maps to camera "white" before white balance: the
    white-balance gains then carry the illuminant, as they do in a camera.
    """
    matrix = tf.matmul(tf.cast(xyz_to_camera, tf.float32), SRGB_TO_XYZ)
    return matrix / tf.reduce_sum(matrix, axis=-1, keepdims=True)


def gray_world(packed: tf.Tensor) -> tf.Tensor:
    """(R, G, B) gains that make the image's mean grey, for RAWs that carry no as-shot white balance."""
    means = tf.reduce_mean(packed, axis=tf.range(tf.rank(packed) - 1))
    red, green, blue = means[0], (means[1] + means[2]) / 2, means[3]
    return tf.stack([green / tf.maximum(red, 1e-6), 1.0, green / tf.maximum(blue, 1e-6)])


def to_mosaic(packed: tf.Tensor, pattern: str = "RGGB") -> tf.Tensor:
    """Canonical packed (..., h, w, 4) -> the sensor's (..., 2h, 2w, 1) mosaic in ``pattern``'s layout."""
    offsets = bayer.channel_offsets(pattern)
    # depth_to_space reads channel k as tile position (k // 2, k % 2): put each channel at its CFA site.
    order = [offsets.index((k // 2, k % 2)) for k in range(4)]
    return _batched(lambda batch: tf.nn.depth_to_space(tf.gather(batch, order, axis=-1), 2), packed)


def demosaic(packed: tf.Tensor, pattern: str = "RGGB") -> tf.Tensor:
    """Bilinear demosaicking: packed (..., h, w, 4) -> camera RGB (..., 2h, 2w, 3).

    Each colour keeps its own samples and averages its nearest neighbours elsewhere. Borders are
    reflect-padded, which keeps the CFA's parity, so edge pixels interpolate from true samples of their colour.
    """
    offsets = bayer.channel_offsets(pattern)
    colour_of_site = np.zeros((2, 2), np.int64)
    for channel, (row, col) in zip((0, 1, 1, 2), offsets):  # R, Gr -> G, Gb -> G, B
        colour_of_site[row, col] = channel
    masks = np.eye(3, dtype=np.float32)[colour_of_site]  # (2, 2, 3): one-hot colour of each tile site
    kernels = np.stack([_BILINEAR_RED_BLUE, _BILINEAR_GREEN, _BILINEAR_RED_BLUE], axis=-1)[..., None]

    def interpolate(batch: tf.Tensor) -> tf.Tensor:
        mosaic = to_mosaic(batch, pattern)
        shape = tf.shape(mosaic)
        sites = tf.tile(masks, [shape[1] // 2, shape[2] // 2, 1])
        padded = tf.pad(mosaic * sites, [[0, 0], [1, 1], [1, 1], [0, 0]], mode="REFLECT")
        return tf.nn.depthwise_conv2d(padded, kernels, strides=[1, 1, 1, 1], padding="VALID")

    return _batched(interpolate, packed)


def render(
    camera_rgb: tf.Tensor, white_balance: tf.Tensor | Sequence[float], camera_to_srgb: tf.Tensor | np.ndarray
) -> tf.Tensor:
    """Full-colour camera RGB (..., 3) in [0, 1] -> sRGB in [0, 1]: every step after demosaicking."""
    balanced = tf.clip_by_value(camera_rgb * tf.cast(white_balance, tf.float32), 0.0, 1.0)
    linear = tf.clip_by_value(apply_color_matrix(balanced, camera_to_srgb), 0.0, 1.0)
    return smoothstep(gamma_compression(linear))


def process(
    packed: tf.Tensor,
    white_balance: tf.Tensor | Sequence[float],
    camera_to_srgb: tf.Tensor | np.ndarray,
    pattern: str = "RGGB",
) -> tf.Tensor:
    """Packed RAW (..., h, w, 4) in [0, 1] -> sRGB (..., 2h, 2w, 3) in [0, 1], the classical way.

    White balance follows demosaicking: both are linear per channel, so the order only matters for
    clipping, and a demosaicked image is what ``unprocess`` starts its inverse from.
    """
    return render(demosaic(packed, pattern), white_balance, camera_to_srgb)


def process_raw(raw) -> tf.Tensor:
    """A camera RAW frame (``rawio.RawImage``) rendered with its own as-shot white balance and colour matrix.

    A frame without as-shot white balance gets grey-world gains; one whose camera LibRaw has no colour
    matrix for (all zeros) keeps camera colours (identity matrix).
    """
    packed = tf.constant(raw.packed())
    white_balance = raw.white_balance if raw.white_balance is not None else gray_world(packed)
    if np.any(raw.color_matrix):
        camera_to_srgb = tf.linalg.inv(srgb_to_camera(raw.color_matrix))
    else:
        camera_to_srgb = tf.eye(3)
    return process(packed, white_balance, camera_to_srgb, raw.pattern)


def _batched(function, images: tf.Tensor) -> tf.Tensor:
    """Runs an NHWC ``function`` on one (h, w, c) image or on a (n, h, w, c) batch."""
    images = tf.convert_to_tensor(images, tf.float32)
    if images.shape.rank == 3:
        return function(images[tf.newaxis])[0]
    return function(images)
