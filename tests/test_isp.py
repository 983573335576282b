"""The classical ISP: tone curves, colour matrices and bilinear demosaicking against independent references."""

from pathlib import Path

import colour_demosaicing
import numpy as np
import pytest
import rawpy
import tensorflow as tf

from pynet_tf.data import bayer, isp
from pynet_tf.data.rawio import read_raw

KDC = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "third_party" / "RAW_KODAK_DC50.KDC"

# float32 evaluation of sin/asin and powers: a few ulps of values in [0, 1]
CURVE_TOLERANCE = 1e-6


def test_smoothstep_and_its_inverse_undo_each_other():
    x = np.linspace(0.0, 1.0, 10001, dtype=np.float32)
    np.testing.assert_allclose(isp.smoothstep(isp.inverse_smoothstep(x)), x, atol=CURVE_TOLERANCE)
    # smoothstep is flat at 0 and 1, so its inverse multiplies rounding errors there: check it inside
    inside = x[(x > 0.01) & (x < 0.99)]
    np.testing.assert_allclose(
        isp.inverse_smoothstep(isp.smoothstep(inside)), inside, atol=10 * CURVE_TOLERANCE
    )
    np.testing.assert_allclose(isp.smoothstep(x), 3 * x**2 - 2 * x**3, atol=CURVE_TOLERANCE)


def test_gamma_expansion_inverts_compression_above_the_clamp():
    # below 1e-8 ** (1 / 2.2) = 2.3e-4 the clamp (which keeps gradients finite) takes over by design
    x = np.linspace(1e-3, 1.0, 10001, dtype=np.float32)
    np.testing.assert_allclose(isp.gamma_compression(isp.gamma_expansion(x)), x, rtol=1e-5)
    np.testing.assert_allclose(isp.gamma_expansion(x), x.astype(np.float64) ** 2.2, rtol=1e-5)


def test_a_camera_whose_primaries_are_srgb_gets_the_identity():
    xyz_to_srgb_camera = np.linalg.inv(isp.SRGB_TO_XYZ)
    np.testing.assert_allclose(isp.srgb_to_camera(xyz_to_srgb_camera), np.eye(3), atol=1e-6)


def test_color_matrix_is_applied_to_every_pixel():
    rng = np.random.default_rng(0)
    image, matrix = rng.random((5, 7, 3), np.float32), rng.normal(size=(3, 3)).astype(np.float32)
    np.testing.assert_allclose(isp.apply_color_matrix(image, matrix), image @ matrix.T, atol=1e-6)


@pytest.mark.parametrize("pattern", bayer.PATTERNS)
def test_bilinear_demosaic_is_colour_demosaicings_inside_the_border(pattern):
    """colour-demosaicing pads with scipy's 'reflect', which repeats the edge sample and so mixes colours at
    the one-pixel border (values above 1 from inputs in [0, 1]); ours keeps the CFA's parity there, which
    the flat-field test below checks."""
    mosaic = np.random.default_rng(1).random((24, 30)).astype(np.float32)
    ours = isp.demosaic(bayer.split(mosaic, pattern), pattern).numpy()
    reference = colour_demosaicing.demosaicing_CFA_Bayer_bilinear(mosaic.astype(np.float64), pattern)
    np.testing.assert_allclose(ours[1:-1, 1:-1], reference[1:-1, 1:-1], atol=1e-6)


@pytest.mark.parametrize("pattern", bayer.PATTERNS)
def test_demosaic_of_a_flat_colour_is_that_colour_everywhere(pattern):
    colour = np.array([0.7, 0.4, 0.2], np.float32)
    packed = np.broadcast_to(colour[[0, 1, 1, 2]], (5, 7, 4))
    np.testing.assert_allclose(isp.demosaic(packed, pattern), np.broadcast_to(colour, (10, 14, 3)), atol=1e-6)


def test_to_mosaic_inverts_bayer_split():
    mosaic = np.random.default_rng(2).random((8, 10)).astype(np.float32)
    for pattern in bayer.PATTERNS:
        np.testing.assert_array_equal(isp.to_mosaic(bayer.split(mosaic, pattern), pattern)[..., 0], mosaic)


def test_batches_and_single_images_agree():
    packed = np.random.default_rng(3).random((2, 6, 8, 4)).astype(np.float32)
    batch = isp.process(packed, [2.0, 1.0, 1.5], np.eye(3))
    np.testing.assert_allclose(batch[1], isp.process(packed[1], [2.0, 1.0, 1.5], np.eye(3)), atol=1e-6)


def test_real_camera_demosaic_matches_libraw_linear_interpolation():
    """The Kodak DC50's GRBG frame through LibRaw's bilinear demosaic, in camera colours, no curves.

    LibRaw treats borders its own way, so a two-pixel frame is left out. Inside it, LibRaw works in
    integers (scaled to 16 bits, each neighbour average rounded): measured differences reach 1.7 16-bit
    steps (2.5e-5), so three steps (4.6e-5) bound them; a wrong neighbour or CFA site costs ~1e-2.
    """
    raw = read_raw(KDC)
    ours = isp.demosaic(raw.packed(), raw.pattern).numpy()
    with rawpy.imread(str(KDC)) as libraw:
        reference = libraw.postprocess(
            demosaic_algorithm=rawpy.DemosaicAlgorithm.LINEAR,
            output_color=rawpy.ColorSpace.raw,
            use_camera_wb=True,
            no_auto_bright=True,
            gamma=(1, 1),
            output_bps=16,
            user_flip=0,
            user_black=0,
            user_sat=int(raw.white_level),
        )
    assert raw.white_balance == (1.0, 1.0, 1.0)  # so LibRaw's camera white balance is a no-op here too
    inside = (slice(2, -2), slice(2, -2))
    np.testing.assert_allclose(ours[inside], reference[inside] / 65535.0, atol=3 / 65535)


def test_process_raw_renders_a_real_frame():
    raw = read_raw(KDC)
    image = isp.process_raw(raw).numpy()
    assert image.shape == (raw.size[0], raw.size[1], 3)
    assert 0.0 <= image.min() and image.max() <= 1.0
    # a daylight scene comes out neither black nor blown out, and not tinted far from grey on average
    assert 0.2 < image.mean() < 0.8
    assert np.ptp(image.mean(axis=(0, 1))) < 0.1


def test_gray_world_balances_a_tinted_flat_field():
    packed = tf.constant(np.broadcast_to([0.2, 0.5, 0.5, 0.25], (4, 4, 4)), tf.float32)
    np.testing.assert_allclose(isp.gray_world(packed), [2.5, 1.0, 2.0], rtol=1e-6)
