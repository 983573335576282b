"""Image-quality metrics for sRGB images in [0, 1]: PSNR, SSIM, MS-SSIM and CIEDE2000, as tensors and for reports.

The TensorFlow functions take a batch (n, h, w, 3) or one image (h, w, 3) and return one value per image.
Settings, and the references they match (the tests measure each agreement):

- ``psnr``: ``tf.image.psnr`` with peak 1.0 = ``skimage.metrics.peak_signal_noise_ratio(data_range=1)``.
- ``ssim``: ``tf.image.ssim``, an 11x11 Gaussian window (σ 1.5), K1 0.01, K2 0.03, the biased (population)
  covariance, averaged over the positions where the window fits (VALID) and then over channels. That is
  ``skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
  data_range=1.0, channel_axis=-1)``: scikit-image filters the whole image with a Gaussian truncated at the same
  5-pixel radius and averages after cropping those 5 pixels from each border, which are the same positions, so
  the two differ only by float32 arithmetic.
- ``ms_ssim``: Wang et al. 2003's multi-scale SSIM with ``tf.image.ssim_multiscale``'s settings and
  downsampling, written out here because ``tf.image.ssim_multiscale`` takes relu(cs) ** p with p < 1, whose
  gradient is NaN wherever a scale's contrast-structure term is 0 (a random-init network's output against its
  target, for one). Ours raises the per-scale terms to their powers from >= 1e-6 instead, which changes nothing
  above 1e-6 and keeps the gradient finite (zero below it).
- ``delta_e2000``: the mean CIEDE2000 colour difference (Sharma et al. 2005's formulation) in CIELAB (D65),
  computed with ``color.rgb_to_lab``. A metric, not a loss: its gradient is not guaranteed finite.

``evaluate_pair`` turns one prediction and its target (numpy) into the four numbers, for reports.
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from pynet_tf.color import rgb_to_lab

MAX_VALUE = 1.0  # images are in [0, 1]
SSIM_FILTER_SIZE = 11
SSIM_FILTER_SIGMA = 1.5
SSIM_K1, SSIM_K2 = 0.01, 0.03
# Wang et al. 2003's weights of the five scales, finest first (as published; they sum to 1.0001).
MS_SSIM_POWER_FACTORS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
# Smallest base of MS-SSIM's fractional powers: their slope p * x ** (p - 1) is infinite at 0.
MS_SSIM_MIN_BASE = 1e-6

# CIEDE2000's constants (Sharma et al. 2005), angles in radians.
_CHROMA_PIVOT_7 = 25.0**7


def psnr(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    """Peak signal-to-noise ratio in dB, peak 1.0, per image (inf for identical images)."""
    return tf.image.psnr(a, b, max_val=MAX_VALUE)


def ssim(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    """Structural similarity per image, averaged over channels (settings in the module docstring)."""
    return tf.image.ssim(
        a,
        b,
        max_val=MAX_VALUE,
        filter_size=SSIM_FILTER_SIZE,
        filter_sigma=SSIM_FILTER_SIGMA,
        k1=SSIM_K1,
        k2=SSIM_K2,
    )


def ms_ssim_scales(height: int, width: int) -> int:
    """How many MS-SSIM scales an image of ``height`` x ``width`` pixels has room for, at most five.

    Each scale halves the image (rounding up: odd sides are padded) and needs the 11-pixel window to fit,
    so k scales need the smaller side to be at least 10 * 2 ** (k - 1) + 1: 11, 21, 41, 81 and, for all
    five, 161 pixels.
    """
    side = min(height, width)
    if side < SSIM_FILTER_SIZE:
        raise ValueError(
            f"MS-SSIM needs images of at least {SSIM_FILTER_SIZE}x{SSIM_FILTER_SIZE} pixels, got {height}x{width}"
        )
    scales = 1
    while scales < len(MS_SSIM_POWER_FACTORS) and math.ceil(side / 2) >= SSIM_FILTER_SIZE:
        side = math.ceil(side / 2)
        scales += 1
    return scales


def ms_ssim_power_factors(scales: int) -> tuple[float, ...]:
    """The weights of ``scales`` scales: all five as published, or the first ones re-normalised to sum to 1."""
    if scales == len(MS_SSIM_POWER_FACTORS):
        return MS_SSIM_POWER_FACTORS
    factors = MS_SSIM_POWER_FACTORS[:scales]
    return tuple(factor / sum(factors) for factor in factors)


def ms_ssim(a: tf.Tensor, b: tf.Tensor, *, scales: int | None = None) -> tf.Tensor:
    """Multi-scale SSIM per image, averaged over channels, in (0, 1] (1 for identical images, up to float32).

    Matches ``tf.image.ssim_multiscale(a, b, 1.0, power_factors=ms_ssim_power_factors(scales))`` wherever
    every scale's term is above 1e-6, with a finite gradient everywhere (see the module docstring).

    Images need static heights and widths. By default they get as many scales as fit (five from 161 pixels on,
    see ``ms_ssim_scales``), fewer scales weighted by the first power factors re-normalised to sum to 1.
    ``scales`` forces a number; a ValueError says when it does not fit.
    """
    a, b = tf.cast(a, tf.float32), tf.cast(b, tf.float32)
    single = a.shape.rank == 3
    if single:
        a, b = a[tf.newaxis], b[tf.newaxis]
    height, width = a.shape[-3:-1]
    if height is None or width is None:
        raise ValueError(f"ms_ssim needs images of static height and width, got shape {a.shape}")
    available = ms_ssim_scales(height, width)
    if scales is None:
        scales = available
    elif not 1 <= scales <= available:
        raise ValueError(
            f"{height}x{width} images have room for 1 to {available} MS-SSIM scales, not {scales}"
        )

    terms = []
    for scale in range(scales):
        if scale:
            a, b = _halve(a), _halve(b)
        ssim_value, contrast_structure = _ssim_and_contrast_structure(a, b)
        # the coarsest scale contributes its full SSIM (luminance too), the others their cs only
        terms.append(ssim_value if scale == scales - 1 else contrast_structure)
    bases = tf.maximum(tf.stack(terms, axis=-1), MS_SSIM_MIN_BASE)
    per_channel = tf.reduce_prod(bases ** ms_ssim_power_factors(scales), axis=-1)
    result = tf.reduce_mean(per_channel, axis=-1)
    return result[0] if single else result


def _gaussian_kernel(channels: int) -> tuple[tf.Tensor, tf.Tensor]:
    """The normalised 11-tap Gaussian as a vertical and a horizontal depthwise kernel (it is separable)."""
    offsets = np.arange(SSIM_FILTER_SIZE) - (SSIM_FILTER_SIZE - 1) / 2
    taps = np.exp(-(offsets**2) / (2 * SSIM_FILTER_SIGMA**2))
    taps = np.tile((taps / taps.sum()).astype(np.float32)[:, None, None], [1, channels, 1])
    return tf.constant(taps[:, None]), tf.constant(taps[None, :])


def _ssim_and_contrast_structure(x: tf.Tensor, y: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Mean SSIM and mean contrast-structure term (n, channels) over the VALID window positions.

    The same estimators as ``tf.image.ssim``: Gaussian-weighted means, biased covariances.
    """
    moments = tf.concat([x, y, x * x, y * y, x * y], axis=-1)
    for taps in _gaussian_kernel(moments.shape[-1]):
        moments = tf.nn.depthwise_conv2d(moments, taps, strides=[1, 1, 1, 1], padding="VALID")
    mean_x, mean_y, mean_xx, mean_yy, mean_xy = tf.split(moments, 5, axis=-1)
    c1, c2 = (SSIM_K1 * MAX_VALUE) ** 2, (SSIM_K2 * MAX_VALUE) ** 2
    mean_product = 2.0 * mean_x * mean_y
    mean_squares = mean_x**2 + mean_y**2
    luminance = (mean_product + c1) / (mean_squares + c1)
    contrast_structure = (2.0 * mean_xy - mean_product + c2) / (mean_xx + mean_yy - mean_squares + c2)
    return (
        tf.reduce_mean(luminance * contrast_structure, axis=[1, 2]),
        tf.reduce_mean(contrast_structure, axis=[1, 2]),
    )


def _halve(images: tf.Tensor) -> tf.Tensor:
    """``tf.image.ssim_multiscale``'s downsampling: odd sides padded by repeating the last row or column, then
    2x2 average pooling."""
    height, width = images.shape[1:3]
    if height % 2 or width % 2:
        images = tf.pad(images, [[0, 0], [0, height % 2], [0, width % 2], [0, 0]], mode="SYMMETRIC")
    return tf.nn.avg_pool2d(images, ksize=2, strides=2, padding="VALID")


def ciede2000(lab1: tf.Tensor, lab2: tf.Tensor) -> tf.Tensor:
    """The CIEDE2000 colour difference of every pair of CIELAB colours (..., 3) -> (...).

    Sharma, Wu and Dalal 2005, "The CIEDE2000 color-difference formula: implementation notes, supplementary
    test data, and mathematical observations", with kL = kC = kH = 1. Hues of achromatic colours are 0.
    """
    l1, a1, b1 = tf.unstack(tf.cast(lab1, tf.float32), axis=-1)
    l2, a2, b2 = tf.unstack(tf.cast(lab2, tf.float32), axis=-1)

    mean_chroma_7 = ((_chroma(a1, b1) + _chroma(a2, b2)) / 2) ** 7
    g = 0.5 * (1.0 - tf.sqrt(mean_chroma_7 / (mean_chroma_7 + _CHROMA_PIVOT_7)))
    chroma1, hue1 = _chroma_and_hue((1.0 + g) * a1, b1)
    chroma2, hue2 = _chroma_and_hue((1.0 + g) * a2, b2)

    chroma_product = chroma1 * chroma2
    achromatic = tf.equal(chroma_product, 0.0)
    hue_difference = hue2 - hue1
    hue_difference = tf.where(hue_difference > math.pi, hue_difference - 2 * math.pi, hue_difference)
    hue_difference = tf.where(hue_difference < -math.pi, hue_difference + 2 * math.pi, hue_difference)
    hue_difference = tf.where(achromatic, 0.0, hue_difference)
    delta_hue = 2.0 * tf.sqrt(chroma_product) * tf.sin(hue_difference / 2)

    hue_sum = hue1 + hue2
    # Opposite colours are exactly 180° apart, but their float hues may differ by a hair more than π, which
    # would pick the wrapped mean hue (Sharma's pair 14): the sign test below is exact for negated (a, b).
    opposite = tf.logical_and(tf.equal(a1 * b2, b1 * a2), a1 * a2 + b1 * b2 < 0)
    wraps = tf.logical_and(~achromatic, tf.logical_and(tf.abs(hue2 - hue1) > math.pi, ~opposite))
    wrapped_sum = tf.where(hue_sum < 2 * math.pi, hue_sum + 2 * math.pi, hue_sum - 2 * math.pi)
    mean_hue = tf.where(achromatic, hue_sum, tf.where(wraps, wrapped_sum, hue_sum) / 2)

    mean_lightness_offset = ((l1 + l2) / 2 - 50.0) ** 2
    mean_chroma = (chroma1 + chroma2) / 2
    t = (
        1.0
        - 0.17 * tf.cos(mean_hue - math.radians(30))
        + 0.24 * tf.cos(2 * mean_hue)
        + 0.32 * tf.cos(3 * mean_hue + math.radians(6))
        - 0.20 * tf.cos(4 * mean_hue - math.radians(63))
    )
    lightness_term = (l2 - l1) / (1.0 + 0.015 * mean_lightness_offset / tf.sqrt(20.0 + mean_lightness_offset))
    chroma_term = (chroma2 - chroma1) / (1.0 + 0.045 * mean_chroma)
    hue_term = delta_hue / (1.0 + 0.015 * mean_chroma * t)

    rotation_angle = math.radians(30) * tf.exp(-(((mean_hue - math.radians(275)) / math.radians(25)) ** 2))
    mean_chroma_7 = mean_chroma**7
    rotation = -tf.sin(2 * rotation_angle) * 2.0 * tf.sqrt(mean_chroma_7 / (mean_chroma_7 + _CHROMA_PIVOT_7))
    return tf.sqrt(lightness_term**2 + chroma_term**2 + hue_term**2 + rotation * chroma_term * hue_term)


def _chroma(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    return tf.sqrt(a * a + b * b)


def _chroma_and_hue(a: tf.Tensor, b: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Polar coordinates of (a, b): chroma, and hue in [0, 2π), 0 for achromatic colours."""
    chroma = _chroma(a, b)
    hue = tf.math.floormod(tf.atan2(b, a), 2 * math.pi)
    return chroma, tf.where(tf.equal(chroma, 0.0), 0.0, hue)


def delta_e2000(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    """Mean CIEDE2000 difference per image between sRGB images in [0, 1] (see ``ciede2000``)."""
    return tf.reduce_mean(ciede2000(rgb_to_lab(a), rgb_to_lab(b)), axis=[-2, -1])


def evaluate_pair(pred: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """PSNR (dB), SSIM, MS-SSIM and mean ΔE2000 of one prediction (h, w, 3) in [0, 1] against its target."""
    pred, target = tf.constant(pred, tf.float32), tf.constant(target, tf.float32)
    metrics = {"psnr": psnr, "ssim": ssim, "ms_ssim": ms_ssim, "delta_e2000": delta_e2000}
    return {name: float(metric(pred, target)) for name, metric in metrics.items()}
