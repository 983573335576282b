"""Colour conversions against scikit-image (float64), and their gradients where pow and cube roots bend."""

import numpy as np
import pytest
import skimage.color
import tensorflow as tf

from pynet_tf import color
from pynet_tf.data.isp import SRGB_TO_XYZ

# The Lab knee, (6/29)^3 in linear Y, is sRGB 0.0931: greys around it cross from the toe to the cube root.
KNEE_GREY = 0.0931
EDGE_COLOURS = np.array(
    [
        [0.0, 0.0, 0.0],
        [1.0, 1.0, 1.0],
        [1.0, 0.0, 0.0],
        [0.0, 1.0, 0.0],
        [0.0, 0.0, 1.0],
        [1.0, 1.0, 0.0],
        [0.0, 1.0, 1.0],
        [1.0, 0.0, 1.0],
        [1e-7, 1e-7, 1e-7],
        [1e-7, 0.0, 1.0],
        [0.04045, 0.04045, 0.04045],  # the sRGB curve's threshold
        [0.04046, 0.04045, 0.04044],
        [KNEE_GREY, KNEE_GREY, KNEE_GREY],
    ]
)

# scikit-image uses the 6-digit matrix of the 1996 sRGB draft; ours (isp.SRGB_TO_XYZ) has 7 digits and maps sRGB
# white exactly onto the D65 white. Read off scikit-image's public API: sRGB 0 and 1 are linear 0 and 1.
SKIMAGE_SRGB_TO_XYZ = skimage.color.rgb2xyz(np.eye(3)).T
# Re-expresses scikit-image's XYZ in ours: references below differ from ours only in the formulas' arithmetic.
SKIMAGE_XYZ_TO_OURS = SRGB_TO_XYZ.astype(np.float64) @ np.linalg.inv(SKIMAGE_SRGB_TO_XYZ)

# Below the knee scikit-image's Lab uses the rounded slope 7.787 where ours is the exact 1 / (3 (6/29)^2) =
# 7.787037: f differs by up to 3.7e-5 * 0.00886 = 3.3e-7, i.e. up to 500 * 3.3e-7 = 1.6e-4 in a (a is the
# largest of the three multipliers). float32 arithmetic adds ~2e-5. Measured: 1.9e-4 at worst.
LAB_TOLERANCE = 1e-3  # ΔE, a thousandth of a just-noticeable difference
# The two matrices differ by up to 7.7e-5 per entry (Z from blue): scikit-image's sRGB white is Lab
# (100, -0.0025, 0.0047), 0.0053 from neutral. Measured over the colours below: 0.0059 at worst.
MATRIX_TOLERANCE = 0.01  # ΔE
# float32 linear values carry ~1e-6 of error after Lab -> XYZ -> linear; the sRGB encoding's steepest slope
# (12.92, on its toe) turns that into ~1.3e-5. Measured: 6.4e-6.
ROUND_TRIP_TOLERANCE = 2e-5


def colours(count: int = 20000) -> np.ndarray:
    """Random sRGB colours, the edge cases, and a fine ramp of greys across the Lab knee."""
    greys = np.repeat(np.linspace(0.08, 0.1, 201)[:, None], 3, axis=1)
    return np.concatenate([np.random.default_rng(0).random((count, 3)), EDGE_COLOURS, greys])


def delta_e(lab1: np.ndarray, lab2: np.ndarray) -> np.ndarray:
    """CIE 1976 colour difference: the Euclidean distance in Lab."""
    return np.linalg.norm(np.asarray(lab1, np.float64) - lab2, axis=-1)


def reference_lab(rgb: np.ndarray) -> np.ndarray:
    """scikit-image's rgb2lab (float64), with our sRGB -> XYZ matrix in place of its own."""
    return skimage.color.xyz2lab(skimage.color.rgb2xyz(rgb) @ SKIMAGE_XYZ_TO_OURS.T)


def reference_rgb(lab: np.ndarray) -> np.ndarray:
    """scikit-image's lab2rgb (float64), with our XYZ -> sRGB matrix in place of its own."""
    return skimage.color.xyz2rgb(skimage.color.lab2xyz(lab) @ np.linalg.inv(SKIMAGE_XYZ_TO_OURS).T)


def test_rgb_to_lab_matches_scikit_image():
    rgb = colours()
    assert delta_e(color.rgb_to_lab(rgb), reference_lab(rgb)).max() < LAB_TOLERANCE


def test_rgb_to_lab_matches_plain_scikit_image_up_to_its_matrix():
    rgb = colours()
    assert delta_e(color.rgb_to_lab(rgb), skimage.color.rgb2lab(rgb)).max() < MATRIX_TOLERANCE


def test_white_is_neutral_and_black_is_zero():
    np.testing.assert_allclose(color.rgb_to_lab([1.0, 1.0, 1.0]), [100.0, 0.0, 0.0], atol=1e-4)
    np.testing.assert_array_equal(color.rgb_to_lab([0.0, 0.0, 0.0]), [0.0, 0.0, 0.0])


def test_linear_to_xyz_is_the_isp_matrix():
    np.testing.assert_allclose(color.linear_to_xyz(np.eye(3, dtype=np.float32)), SRGB_TO_XYZ.T, atol=1e-7)
    np.testing.assert_allclose(color.xyz_to_linear(color.linear_to_xyz(np.eye(3))), np.eye(3), atol=1e-6)


def test_srgb_curve_matches_scikit_image():
    """scikit-image's linear values are its XYZ through the inverse of its own matrix."""
    rgb = colours()
    linear = skimage.color.rgb2xyz(rgb) @ np.linalg.inv(SKIMAGE_SRGB_TO_XYZ).T
    # float32 powers: a few ulps of values up to 1
    np.testing.assert_allclose(color.srgb_to_linear(rgb), linear, atol=1e-6)
    np.testing.assert_allclose(color.linear_to_srgb(linear), rgb, atol=ROUND_TRIP_TOLERANCE)


def test_lab_to_rgb_matches_scikit_image():
    lab = reference_lab(colours())
    ours = color.lab_to_rgb(lab).numpy().astype(np.float64)
    assert (
        delta_e(skimage.color.rgb2lab(ours), skimage.color.rgb2lab(reference_rgb(lab))).max() < LAB_TOLERANCE
    )


def test_lab_to_rgb_clips_out_of_gamut_colours_like_scikit_image():
    lab = np.array([[50.0, 120.0, -120.0], [100.0, -90.0, 90.0], [10.0, 30.0, -30.0]])
    np.testing.assert_allclose(color.lab_to_rgb(lab), reference_rgb(lab), atol=ROUND_TRIP_TOLERANCE)


def test_rgb_lab_rgb_round_trip():
    rgb = colours()
    np.testing.assert_allclose(color.lab_to_rgb(color.rgb_to_lab(rgb)), rgb, atol=ROUND_TRIP_TOLERANCE)


def test_batches_of_images_convert_pixel_by_pixel():
    images = np.random.default_rng(1).random((2, 4, 5, 3)).astype(np.float32)
    pixels = color.rgb_to_lab(images.reshape(-1, 3)).numpy()
    np.testing.assert_array_equal(color.rgb_to_lab(images), pixels.reshape(images.shape))


@pytest.mark.parametrize(
    "loss",
    [
        pytest.param(lambda lab, other: tf.reduce_sum(lab), id="sum_of_L_a_b"),
        pytest.param(lambda lab, other: tf.reduce_sum(tf.abs(lab - other)), id="l1_to_other_image"),
    ],
)
def test_rgb_to_lab_gradients_are_finite_everywhere(loss):
    """Black (the toe), the knee greys, white, primaries and random colours, against an unrelated image.

    Lab's steepest slope in sRGB is 500 f'(t) dlinear/dsRGB around the knee, a few hundred per unit of sRGB
    (measured: 304 for the sum, 446 for the L1 distance): a bound of 1e3 catches any near-singular power.
    """
    rgb = tf.constant(colours(2000), tf.float32)
    other = color.rgb_to_lab(tf.random.shuffle(rgb))
    with tf.GradientTape() as tape:
        tape.watch(rgb)
        value = loss(color.rgb_to_lab(rgb), other)
    gradient = tape.gradient(value, rgb).numpy()
    assert np.isfinite(gradient).all()
    assert np.abs(gradient).max() < 1e3


def test_lab_gradient_is_continuous_across_the_knee():
    """L of a grey has the same slope just below and just above the knee: the two branches meet smoothly."""
    linear = tf.constant([color.LAB_KNEE * (1 - 1e-3), color.LAB_KNEE * (1 + 1e-3)], tf.float32)
    greys = tf.stack([linear, linear, linear], axis=-1)
    with tf.GradientTape() as tape:
        tape.watch(greys)
        lightness = color.xyz_to_lab(color.linear_to_xyz(greys))[:, 0]
    below, above = tf.reduce_sum(tape.jacobian(lightness, greys), axis=[-1, -2]).numpy()
    # the cube root's slope changes by (1 - 1e-3)^(-2/3) ≈ 1 + 6.7e-4 across the 2e-3 gap
    np.testing.assert_allclose(below, above, rtol=1e-3)
