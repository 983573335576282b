"""Image-quality metrics against independent references.

PSNR, SSIM and CIEDE2000 against scikit-image (float64, fed the same float32 pixels), MS-SSIM against
``tf.image.ssim_multiscale`` (which ours re-implements with a NaN-free gradient), and CIEDE2000 against
Sharma, Wu and Dalal 2005's published test pairs.
"""

import functools
import math

import numpy as np
import pytest
import skimage.color
import skimage.data
import skimage.filters
import skimage.metrics
import tensorflow as tf

from pynet_tf import color, metrics

# 176x192 crops: room for all five MS-SSIM scales (>= 161 px), small enough to keep the tests fast.
HEIGHT, WIDTH = 176, 192

# tf.image.psnr takes the MSE in float32: a sum over 10^5 squared differences carries ~1e-6 of relative error,
# 10 / ln 10 * 1e-6 = 4e-6 dB. Measured: 3.1e-6 dB at worst (on PSNRs from 7.8 to 54 dB).
PSNR_TOLERANCE = 1e-5  # dB
# tf.image.ssim filters in float32 (its 121-tap convolution is off by up to 6e-7 from float64, measured) and
# takes variances as E[x^2] - E[x]^2, so an absolute error of ~1e-7 in the moments becomes ~1e-4 of relative
# error in c(x, y) s(x, y) where a window is flat (the denominator is then c2 = 9e-4); textured windows, with
# larger denominators, dilute it in the mean. scikit-image accumulates in float64. Measured over the pairs
# below: 3.0e-5 at worst (the photo against itself plus faint noise, SSIM 0.998).
SSIM_TOLERANCE = 1e-4
# Ours and tf.image.ssim_multiscale do the same float32 arithmetic in a different order (a separable 11-tap
# filter against an 11x11 one), so their terms differ by the rounding described above, and so does the
# weighted geometric mean (its weights sum to 1). Measured over the pairs and sizes below (30x33 px to
# 176x192 px): 1.1e-5 at worst, 4.3e-6 at 176x192.
MS_SSIM_TOLERANCE = 3e-5
# A 15x17 image has only 5x7 window positions per channel, too few to dilute a flat window's error: on the
# smooth background of the coffee crop ours and tf.image.ssim differ by 1.5e-4 (measured; tf.image.ssim is
# itself 1.2e-4 from scikit-image's float64 there). Constant images bound it: see the next tolerance.
FEW_WINDOWS_TOLERANCE = 3e-4
# On constant images every variance is 0 and E[x^2] - E[x]^2 is pure rounding: a few ulps of 0.49 (~1.5e-7)
# over c2 = 9e-4 puts each cs term up to ~2e-4 from 1 (measured for 0.3 against 0.7: ours 1.6e-4 below,
# tf.image's 2.4e-4 above). The weights sum to 1, so MS-SSIM is off by about as much, relatively.
# Measured against the exact value: 1.3e-4 at worst (relative).
CONSTANT_MS_SSIM_RTOL = 3e-4
# Identical images: every term is 1 up to the rounding of the float32 filters on the coarsest scales' few
# pixels (the x*x and x*y channels of one depthwise convolution can round apart: terms up to 1.1e-6 from 1
# on 16x16 px, measured). Measured on the final values: 4.8e-7 from 1 at worst.
IDENTICAL_MS_SSIM_TOLERANCE = 2e-6
# One image alone against the same image in a batch: float32 reductions can round apart by an ulp or two
# (measured: 1.2e-7 for MS-SSIM).
BATCH_ROUNDING = 1e-6
# Sharma et al. give ΔE to 4 decimals (rounding error <= 5e-5) and ours is float32. Measured against the
# table: 5.0e-5 at worst, for ours and for scikit-image's float64 alike (so: the table's rounding).
SHARMA_TOLERANCE = 1e-4  # ΔE
# float32 Lab inputs are rounded by up to half an ulp of 128 (3.8e-6), and the formula's float32 arithmetic
# (seventh powers, square roots of sums up to ~3e4) keeps ~1e-6 relative of ΔE values up to 170. Measured over
# 10^5 random pairs of each kind: 1.1e-4 at worst, on a ΔE of 113.
CIEDE2000_TOLERANCE = 3e-4  # ΔE
# Image means average the per-pixel float32 errors above. Measured: 3.5e-6 at worst.
IMAGE_MEAN_TOLERANCE = 1e-5  # ΔE
# scikit-image's own rgb2lab uses a 6-digit sRGB -> XYZ matrix (see test_color.py: its Lab is up to 0.0059
# ΔE76 from ours); CIEDE2000 scales a by up to 1.5, so a pixel can move by up to ~2 * 1.5 * 0.006 = 0.018
# (measured: 0.010), but the shift is systematic and mostly cancels between the two images. Measured on image
# means: 5.1e-4 at worst (two unrelated photos).
PLAIN_SKIMAGE_MEAN_TOLERANCE = 1e-3  # ΔE

# Sharma, Wu and Dalal 2005, "The CIEDE2000 color-difference formula: implementation notes, supplementary
# test data, and mathematical observations", Table 1 (also in scikit-image's
# skimage/color/tests/ciede2000_test_data.txt): (L1, a1, b1), (L2, a2, b2), ΔE00.
SHARMA_PAIRS = (
    ((50.0000, 2.6772, -79.7751), (50.0000, 0.0000, -82.7485), 2.0425),
    ((50.0000, 3.1571, -77.2803), (50.0000, 0.0000, -82.7485), 2.8615),
    ((50.0000, 2.8361, -74.0200), (50.0000, 0.0000, -82.7485), 3.4412),
    ((50.0000, -1.3802, -84.2814), (50.0000, 0.0000, -82.7485), 1.0000),
    ((50.0000, -1.1848, -84.8006), (50.0000, 0.0000, -82.7485), 1.0000),
    ((50.0000, -0.9009, -85.5211), (50.0000, 0.0000, -82.7485), 1.0000),
    ((50.0000, 0.0000, 0.0000), (50.0000, -1.0000, 2.0000), 2.3669),
    ((50.0000, -1.0000, 2.0000), (50.0000, 0.0000, 0.0000), 2.3669),
    ((50.0000, 2.4900, -0.0010), (50.0000, -2.4900, 0.0009), 7.1792),
    ((50.0000, 2.4900, -0.0010), (50.0000, -2.4900, 0.0010), 7.1792),
    ((50.0000, 2.4900, -0.0010), (50.0000, -2.4900, 0.0011), 7.2195),
    ((50.0000, 2.4900, -0.0010), (50.0000, -2.4900, 0.0012), 7.2195),
    ((50.0000, -0.0010, 2.4900), (50.0000, 0.0009, -2.4900), 4.8045),
    ((50.0000, -0.0010, 2.4900), (50.0000, 0.0010, -2.4900), 4.8045),
    ((50.0000, -0.0010, 2.4900), (50.0000, 0.0011, -2.4900), 4.7461),
    ((50.0000, 2.5000, 0.0000), (50.0000, 0.0000, -2.5000), 4.3065),
    ((50.0000, 2.5000, 0.0000), (73.0000, 25.0000, -18.0000), 27.1492),
    ((50.0000, 2.5000, 0.0000), (61.0000, -5.0000, 29.0000), 22.8977),
    ((50.0000, 2.5000, 0.0000), (56.0000, -27.0000, -3.0000), 31.9030),
    ((50.0000, 2.5000, 0.0000), (58.0000, 24.0000, 15.0000), 19.4535),
    ((50.0000, 2.5000, 0.0000), (50.0000, 3.1736, 0.5854), 1.0000),
    ((50.0000, 2.5000, 0.0000), (50.0000, 3.2972, 0.0000), 1.0000),
    ((50.0000, 2.5000, 0.0000), (50.0000, 1.8634, 0.5757), 1.0000),
    ((50.0000, 2.5000, 0.0000), (50.0000, 3.2592, 0.3350), 1.0000),
    ((60.2574, -34.0099, 36.2677), (60.4626, -34.1751, 39.4387), 1.2644),
    ((63.0109, -31.0961, -5.8663), (62.8187, -29.7946, -4.0864), 1.2630),
    ((61.2901, 3.7196, -5.3901), (61.4292, 2.2480, -4.9620), 1.8731),
    ((35.0831, -44.1164, 3.7933), (35.0232, -40.0716, 1.5901), 1.8645),
    ((22.7233, 20.0904, -46.6940), (23.0331, 14.9730, -42.5619), 2.0373),
    ((36.4612, 47.8580, 18.3852), (36.2715, 50.5065, 21.2231), 1.4146),
    ((90.8027, -2.0831, 1.4410), (91.1528, -1.6435, 0.0447), 1.4441),
    ((90.9257, -0.5406, -0.9208), (88.6381, -0.8985, -0.7239), 1.5381),
    ((6.7747, -0.2908, -2.4247), (5.8714, -0.0985, -2.2286), 0.6377),
    ((2.0776, 0.0795, -1.1350), (0.9033, -0.0636, -0.5514), 0.9082),
)
# Pairs 10 and 14 are exact antipodes (a' and b' negated): their hues differ by exactly 180 degrees, where the
# mean hue's rule switches branch. In float32 pair 14's difference rounds 2 ulps above pi; without metrics.py's
# exact test for opposite colours it takes the other branch (ΔE 4.7461, pair 15's value, 0.058 off).


def _sharma_params():
    for number, (lab1, lab2, expected) in enumerate(SHARMA_PAIRS, start=1):
        yield pytest.param(lab1, lab2, expected, id=f"pair{number}")


@functools.cache
def natural_images() -> dict[str, np.ndarray]:
    """Crops of scikit-image's bundled photographs, float64 in [0, 1]."""

    def crop(image, top, left):
        return image[top : top + HEIGHT, left : left + WIDTH].astype(np.float64) / 255

    return {
        "astronaut": crop(skimage.data.astronaut(), 40, 180),
        "chelsea": crop(skimage.data.chelsea(), 60, 120),
        "coffee": crop(skimage.data.coffee(), 100, 200),
    }


@functools.cache
def image_pairs(correlated_only: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Batches (n, 176, 192, 3) float32: photos against noisy (strongly and faintly), blurred, brightened and
    contrast-reduced versions of themselves, then (unless ``correlated_only``) a photo against an unrelated
    one and random noise against random noise."""
    rng = np.random.default_rng(0)
    images = natural_images()
    astronaut, chelsea, coffee = images["astronaut"], images["chelsea"], images["coffee"]
    pairs = [
        (astronaut, np.clip(astronaut + rng.normal(0, 0.05, astronaut.shape), 0, 1)),
        (astronaut, np.clip(astronaut + rng.normal(0, 0.002, astronaut.shape), 0, 1)),  # ~54 dB
        (chelsea, skimage.filters.gaussian(chelsea, sigma=2, channel_axis=-1)),
        (coffee, np.clip(coffee + 0.1, 0, 1)),  # brightness shift, saturating the highlights
        (coffee, 0.8 * coffee + 0.1),  # contrast reduction
    ]
    if not correlated_only:
        pairs += [(astronaut, chelsea), (rng.random(astronaut.shape), rng.random(astronaut.shape))]
    a, b = zip(*pairs)
    return np.stack(a).astype(np.float32), np.stack(b).astype(np.float32)


def reference_ssim(a: np.ndarray, b: np.ndarray) -> float:
    return skimage.metrics.structural_similarity(
        a.astype(np.float64),
        b.astype(np.float64),
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=1.0,
        channel_axis=-1,
    )


# --- PSNR ---------------------------------------------------------------------------------------------------


def test_psnr_matches_scikit_image_per_image():
    a, b = image_pairs()
    ours = metrics.psnr(a, b).numpy()
    reference = [
        skimage.metrics.peak_signal_noise_ratio(x.astype(np.float64), y.astype(np.float64), data_range=1)
        for x, y in zip(a, b)
    ]
    assert ours.shape == (len(a),)
    np.testing.assert_allclose(ours, reference, rtol=0, atol=PSNR_TOLERANCE)
    assert float(metrics.psnr(a[0], b[0])) == pytest.approx(reference[0], abs=PSNR_TOLERANCE)


def test_psnr_of_identical_images_is_infinite():
    a, _ = image_pairs()
    assert np.all(np.isposinf(metrics.psnr(a, a).numpy()))
    assert np.isposinf(float(metrics.psnr(a[0], a[0])))


# --- SSIM ---------------------------------------------------------------------------------------------------


def test_ssim_matches_scikit_image_per_image():
    a, b = image_pairs()
    ours = metrics.ssim(a, b).numpy()
    reference = [reference_ssim(x, y) for x, y in zip(a, b)]
    assert ours.shape == (len(a),)
    np.testing.assert_allclose(ours, reference, rtol=0, atol=SSIM_TOLERANCE)


def test_ssim_of_one_image_matches_scikit_image():
    a, b = image_pairs()
    value = metrics.ssim(a[2], b[2])
    assert value.shape == ()
    assert float(value) == pytest.approx(reference_ssim(a[2], b[2]), abs=SSIM_TOLERANCE)


def test_ssim_of_identical_images_is_one():
    a, _ = image_pairs()
    np.testing.assert_array_equal(metrics.ssim(a, a), np.ones(len(a)))


# --- MS-SSIM: values ----------------------------------------------------------------------------------------


def test_ms_ssim_matches_tf_image_with_five_scales():
    a, b = image_pairs(correlated_only=True)
    assert metrics.ms_ssim_scales(HEIGHT, WIDTH) == 5
    ours = metrics.ms_ssim(a, b).numpy()
    np.testing.assert_allclose(ours, tf.image.ssim_multiscale(a, b, 1.0), rtol=0, atol=MS_SSIM_TOLERANCE)
    single = metrics.ms_ssim(a[1], b[1])
    assert single.shape == ()
    assert float(single) == pytest.approx(ours[1], abs=BATCH_ROUNDING)


@pytest.mark.parametrize(
    ("height", "width", "scales", "tolerance"),
    # odd sides exercise the padding before pooling
    [
        (15, 17, 1, FEW_WINDOWS_TOLERANCE),
        (30, 33, 2, MS_SSIM_TOLERANCE),
        (45, 50, 3, MS_SSIM_TOLERANCE),
        (100, 91, 4, MS_SSIM_TOLERANCE),
    ],
)
def test_ms_ssim_on_small_images_matches_tf_image_with_fewer_scales(height, width, scales, tolerance):
    a, b = image_pairs(correlated_only=True)
    a, b = a[:, :height, :width], b[:, :height, :width]
    assert metrics.ms_ssim_scales(height, width) == scales
    expected = tf.image.ssim_multiscale(a, b, 1.0, power_factors=metrics.ms_ssim_power_factors(scales))
    np.testing.assert_allclose(metrics.ms_ssim(a, b), expected, rtol=0, atol=tolerance)
    if scales == 1:  # one scale is plain SSIM
        np.testing.assert_allclose(metrics.ms_ssim(a, b), metrics.ssim(a, b), rtol=0, atol=tolerance)


def test_ms_ssim_with_forced_scales_matches_tf_image():
    a, b = image_pairs(correlated_only=True)
    expected = tf.image.ssim_multiscale(a, b, 1.0, power_factors=metrics.ms_ssim_power_factors(3))
    np.testing.assert_allclose(metrics.ms_ssim(a, b, scales=3), expected, rtol=0, atol=MS_SSIM_TOLERANCE)


def test_ms_ssim_of_identical_images_is_one():
    a, _ = image_pairs()
    np.testing.assert_allclose(
        metrics.ms_ssim(a, a), np.ones(len(a)), rtol=0, atol=IDENTICAL_MS_SSIM_TOLERANCE
    )


@pytest.mark.parametrize(
    ("value1", "value2"), [(0.5, 0.5), (0.3, 0.7), (0.0, 1.0), (1.0, 0.0), (0.0, 0.0), (1.0, 1.0)]
)
def test_ms_ssim_of_constant_images_is_the_luminance_term(value1, value2):
    """Constant images have no contrast or structure: every cs term is 1 and MS-SSIM is the coarsest scale's
    luminance term (2 x y + c1) / (x^2 + y^2 + c1) to the power of its weight."""
    a, b = np.full((1, 64, 64, 3), value1, np.float32), np.full((1, 64, 64, 3), value2, np.float32)
    scales = metrics.ms_ssim_scales(64, 64)
    c1 = (0.01 * 1.0) ** 2  # (K1 L)^2, Wang et al.'s K1 and the peak of [0, 1]
    luminance = (2 * value1 * value2 + c1) / (value1**2 + value2**2 + c1)
    expected = luminance ** metrics.ms_ssim_power_factors(scales)[-1]
    assert float(metrics.ms_ssim(a, b)[0]) == pytest.approx(expected, rel=CONSTANT_MS_SSIM_RTOL)


# --- MS-SSIM: scales and weights ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("side", "scales"),
    [(11, 1), (20, 1), (21, 2), (40, 2), (41, 3), (80, 3), (81, 4), (160, 4), (161, 5), (1000, 5)],
)
def test_ms_ssim_scales_at_the_boundaries(side, scales):
    """k scales need the smaller side to be at least 10 * 2 ** (k - 1) + 1 pixels."""
    assert metrics.ms_ssim_scales(side, side) == scales
    assert metrics.ms_ssim_scales(side, 4000) == scales
    assert metrics.ms_ssim_scales(4000, side) == scales


def test_ms_ssim_scales_formula():
    for k in range(1, 6):
        smallest = 10 * 2 ** (k - 1) + 1
        assert metrics.ms_ssim_scales(smallest, smallest) == k
        if k > 1:
            assert metrics.ms_ssim_scales(smallest - 1, smallest - 1) == k - 1


@pytest.mark.parametrize(("height", "width"), [(10, 10), (10, 500), (500, 10)])
def test_ms_ssim_scales_rejects_images_smaller_than_the_window(height, width):
    with pytest.raises(ValueError):
        metrics.ms_ssim_scales(height, width)


def test_tf_image_needs_161_pixels_for_five_scales():
    """What ms_ssim_scales encodes, measured on tf.image.ssim_multiscale: at 160 px its fifth scale is 10x10,
    smaller than the 11x11 window, and its shape assertion fails; at 161 px (81, 41, 21, 11) it works."""
    rng = np.random.default_rng(0)
    a = rng.random((1, 161, 161, 3)).astype(np.float32)
    b = np.clip(a + rng.normal(0, 0.05, a.shape), 0, 1).astype(np.float32)
    assert np.isfinite(tf.image.ssim_multiscale(a, b, 1.0).numpy()).all()
    with pytest.raises(tf.errors.InvalidArgumentError):
        tf.image.ssim_multiscale(a[:, :160, :160], b[:, :160, :160], 1.0)
    with pytest.raises(ValueError):
        metrics.ms_ssim(a[:, :160, :160], b[:, :160, :160], scales=5)


def test_ms_ssim_power_factors():
    assert metrics.ms_ssim_power_factors(5) == (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
    for k in range(1, 5):
        factors = metrics.ms_ssim_power_factors(k)
        assert len(factors) == k
        assert sum(factors) == pytest.approx(1.0, abs=1e-12)
        # proportional to the first k published weights
        published = metrics.MS_SSIM_POWER_FACTORS[:k]
        np.testing.assert_allclose(np.array(factors) * sum(published), published, rtol=1e-12)


@pytest.mark.parametrize(("side", "scales"), [(160, 5), (1000, 6), (64, 0)])
def test_ms_ssim_rejects_more_scales_than_fit(side, scales):
    a = np.zeros((1, side, side, 3), np.float32)
    with pytest.raises(ValueError):
        metrics.ms_ssim(a, a, scales=scales)


def test_ms_ssim_rejects_dynamic_shapes():
    spec = tf.TensorSpec([None, None, None, 3], tf.float32)
    traced = tf.function(metrics.ms_ssim, input_signature=[spec, spec])
    a = np.zeros((1, 64, 64, 3), np.float32)
    with pytest.raises(ValueError, match="static"):
        traced(a, a)


# --- MS-SSIM: gradients -------------------------------------------------------------------------------------


@functools.cache
def unrelated_random_images() -> tuple[np.ndarray, np.ndarray]:
    """A random-init network's output against its target, in effect: cs terms scatter around 0."""
    rng = np.random.default_rng(0)
    return tuple(rng.random((4, 224, 224, 3)).astype(np.float32) for _ in range(2))


def gradient(metric, a, b) -> np.ndarray:
    a = tf.constant(a)
    with tf.GradientTape() as tape:
        tape.watch(a)
        value = tf.reduce_sum(metric(a, tf.constant(b)))
    return tape.gradient(value, a).numpy()


def test_ms_ssim_gradient_is_finite_where_tf_image_is_nan():
    """Why ours exists: tf.image.ssim_multiscale's relu(cs) ** p has slope p * 0 ** (p - 1) = inf at cs <= 0,
    and relu's zero slope times inf is NaN."""
    a, b = unrelated_random_images()
    assert np.isfinite(gradient(metrics.ms_ssim, a, b)).all()
    assert np.isnan(gradient(lambda x, y: tf.image.ssim_multiscale(x, y, 1.0), a, b)).any()


def test_ms_ssim_matches_tf_image_where_every_term_is_above_the_floor():
    """Per image and channel: equal to tf.image wherever all five terms exceed 1e-6, above it elsewhere.

    tf.image's terms come from its own function: a one-hot power factor picks relu(cs) of a scale (0 ** 0 = 1
    for the others), or relu(ssim) of the coarsest.
    """
    # two of the four images (tf.image is slow on single channels): 6 channels, one with a cs term <= 0
    a, b = (images[1:3] for images in unrelated_random_images())
    # channels as images (n * 3, h, w, 1)
    a, b = (np.moveaxis(x, -1, 1).reshape(-1, 224, 224, 1) for x in (a, b))
    terms = np.stack(
        [tf.image.ssim_multiscale(a, b, 1.0, power_factors=tuple(np.eye(5)[k])).numpy() for k in range(5)], -1
    )
    above = (terms > metrics.MS_SSIM_MIN_BASE).all(axis=-1)
    assert above.any() and not above.all()  # both cases occur
    ours, reference = metrics.ms_ssim(a, b).numpy(), tf.image.ssim_multiscale(a, b, 1.0).numpy()
    np.testing.assert_allclose(ours[above], reference[above], rtol=0, atol=MS_SSIM_TOLERANCE)
    assert (ours[~above] > reference[~above]).all()


@pytest.mark.parametrize(
    ("first", "second"),
    [
        pytest.param(0.5, 0.5, id="same_constant"),
        pytest.param(0.3, 0.7, id="different_constants"),
        pytest.param(0.0, 1.0, id="black_vs_white"),
        pytest.param(1.0, 0.0, id="white_vs_black"),
        pytest.param(0.0, 0.0, id="black_vs_black"),
        pytest.param(1.0, 1.0, id="white_vs_white"),
        pytest.param(0.0, None, id="black_vs_random"),
        pytest.param(1.0, None, id="white_vs_random"),
        pytest.param(None, 0.0, id="random_vs_black"),
        pytest.param(None, 1.0, id="random_vs_white"),
    ],
)
def test_ms_ssim_gradient_is_finite_on_constant_and_saturated_images(first, second):
    rng = np.random.default_rng(0)

    def image(value):
        if value is None:
            return rng.random((2, 64, 64, 3)).astype(np.float32)
        return np.full((2, 64, 64, 3), value, np.float32)

    a, b = image(first), image(second)
    assert np.isfinite(gradient(metrics.ms_ssim, a, b)).all()  # with respect to the first image
    assert np.isfinite(gradient(lambda x, y: metrics.ms_ssim(y, x), a, b)).all()  # and to the second


# --- CIEDE2000 ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("lab1", "lab2", "expected"), list(_sharma_params()))
def test_ciede2000_matches_sharmas_test_data(lab1, lab2, expected):
    # the transcription, checked by an independent float64 implementation
    reference = skimage.color.deltaE_ciede2000(np.array(lab1), np.array(lab2))
    assert reference == pytest.approx(expected, abs=SHARMA_TOLERANCE)
    assert float(metrics.ciede2000(lab1, lab2)) == pytest.approx(expected, abs=SHARMA_TOLERANCE)
    assert float(metrics.ciede2000(lab2, lab1)) == pytest.approx(expected, abs=SHARMA_TOLERANCE)


def random_lab(rng: np.random.Generator, count: int) -> np.ndarray:
    return np.stack(
        [rng.uniform(0, 100, count), rng.uniform(-128, 127, count), rng.uniform(-128, 127, count)], axis=-1
    )


def test_ciede2000_matches_scikit_image():
    """Unrelated colours, near colours, greys against colours and against greys, and identical colours."""
    rng = np.random.default_rng(0)
    count = 100_000
    colours = random_lab(rng, count)
    greys = colours * [1, 0, 0]
    cases = {
        "far": (colours, random_lab(rng, count)),
        "near": (colours, colours + rng.normal(0, 2, colours.shape)),
        "grey_vs_colour": (greys, colours[::-1]),
        "grey_vs_grey": (greys, greys[::-1]),
        "identical": (colours, colours),
    }
    for name, (lab1, lab2) in cases.items():
        error = np.abs(metrics.ciede2000(lab1, lab2).numpy() - skimage.color.deltaE_ciede2000(lab1, lab2))
        assert error.max() < CIEDE2000_TOLERANCE, name
    np.testing.assert_array_equal(metrics.ciede2000(colours, colours), np.zeros(count))


def test_ciede2000_keeps_leading_dimensions():
    lab = random_lab(np.random.default_rng(1), 2 * 5 * 7).reshape(2, 5, 7, 3)
    other = lab[::-1]
    values = metrics.ciede2000(lab, other)
    assert values.shape == (2, 5, 7)
    np.testing.assert_allclose(
        values, skimage.color.deltaE_ciede2000(lab, other), rtol=0, atol=CIEDE2000_TOLERANCE
    )


def image_lab(image: np.ndarray) -> np.ndarray:
    return color.rgb_to_lab(image).numpy().astype(np.float64)


def test_delta_e2000_matches_scikit_image_on_our_lab():
    a, b = image_pairs()
    ours = metrics.delta_e2000(a, b).numpy()
    reference = [skimage.color.deltaE_ciede2000(image_lab(x), image_lab(y)).mean() for x, y in zip(a, b)]
    assert ours.shape == (len(a),)
    np.testing.assert_allclose(ours, reference, rtol=0, atol=IMAGE_MEAN_TOLERANCE)
    assert float(metrics.delta_e2000(a[0], b[0])) == pytest.approx(reference[0], abs=IMAGE_MEAN_TOLERANCE)


def test_delta_e2000_matches_plain_scikit_image_up_to_its_matrix():
    a, b = image_pairs()
    reference = [
        skimage.color.deltaE_ciede2000(
            skimage.color.rgb2lab(x.astype(np.float64)), skimage.color.rgb2lab(y.astype(np.float64))
        ).mean()
        for x, y in zip(a, b)
    ]
    np.testing.assert_allclose(
        metrics.delta_e2000(a, b), reference, rtol=0, atol=PLAIN_SKIMAGE_MEAN_TOLERANCE
    )


def test_delta_e2000_of_identical_images_is_zero():
    a, _ = image_pairs()
    np.testing.assert_array_equal(metrics.delta_e2000(a, a), np.zeros(len(a)))


# --- evaluate_pair ------------------------------------------------------------------------------------------


def test_evaluate_pair_returns_the_four_metrics():
    a, b = image_pairs()
    pred, target = a[2].astype(np.float64), b[2].astype(np.float64)  # float64 in: it casts
    values = metrics.evaluate_pair(pred, target)
    assert set(values) == {"psnr", "ssim", "ms_ssim", "delta_e2000"}
    assert all(type(value) is float for value in values.values())
    expected = {
        "psnr": metrics.psnr(a[2], b[2]),
        "ssim": metrics.ssim(a[2], b[2]),
        "ms_ssim": metrics.ms_ssim(a[2], b[2]),
        "delta_e2000": metrics.delta_e2000(a[2], b[2]),
    }
    assert values == {name: float(value) for name, value in expected.items()}
    assert not any(math.isnan(value) for value in values.values())
