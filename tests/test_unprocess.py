"""Synthetic RAW (Brooks et al. unprocessing): seeded draws, CFA sampling, noise model, and the round trip
through the classical ISP on the embedded sample photos, measured with scikit-image's PSNR."""

import json

import numpy as np
import pytest
import tensorflow as tf
from skimage.metrics import peak_signal_noise_ratio

from pynet_tf.data import bayer, isp
from pynet_tf.data.photoio import read_photo
from pynet_tf.data.sources import parse_source
from pynet_tf.data.unprocess import (
    BLUE_GAIN_RANGE,
    RED_GAIN_RANGE,
    SHOT_NOISE_RANGE,
    add_noise,
    mosaic,
    random_params,
    unprocess,
    unrender,
)

SAMPLES = parse_source("samples")
PHOTOS = SAMPLES.examples("train") + SAMPLES.examples("test")


@pytest.fixture(scope="module")
def photos():
    """The sample photos, cropped to even sizes (a mosaic needs whole 2x2 tiles)."""
    loaded = {}
    for example in PHOTOS:
        photo = read_photo(example.target)
        loaded[example.name] = photo[: photo.shape[0] // 2 * 2, : photo.shape[1] // 2 * 2]
    return loaded


def _psnr(reference, image) -> float:
    return peak_signal_noise_ratio(reference, np.asarray(image), data_range=1.0)


def test_draws_are_seeded_and_recorded():
    photo = np.random.default_rng(0).random((16, 16, 3)).astype(np.float32)
    first, again, other = (unprocess(photo, tf.constant([seed, 3])) for seed in (1, 1, 2))
    np.testing.assert_array_equal(first[0], again[0])
    assert first[2].to_dict() == again[2].to_dict()
    assert not np.array_equal(first[0], other[0])
    assert first[2].to_dict() != other[2].to_dict()
    np.testing.assert_array_equal(first[1], photo)  # the photo itself is the target
    json.dumps(first[2].to_dict())  # plain numbers, ready for a log


def test_parameters_stay_in_their_distributions():
    for seed in range(100):
        params = random_params(tf.constant([seed, 0]))
        assert RED_GAIN_RANGE[0] <= params.red_gain <= RED_GAIN_RANGE[1]
        assert BLUE_GAIN_RANGE[0] <= params.blue_gain <= BLUE_GAIN_RANGE[1]
        assert SHOT_NOISE_RANGE[0] * (1 - 1e-6) <= params.shot_noise <= SHOT_NOISE_RANGE[1] * (1 + 1e-6)
        assert params.read_noise > 0 and params.brightness_gain > 0
        np.testing.assert_allclose(tf.reduce_sum(params.srgb_to_camera, axis=-1), np.ones(3), atol=1e-6)
    silent = random_params(tf.constant([0, 0]), noise=False)
    assert silent.shot_noise == 0 and silent.read_noise == 0


@pytest.mark.parametrize("pattern", bayer.PATTERNS)
def test_mosaic_samples_each_colour_where_the_cfa_puts_it(pattern):
    """Against a mosaic built pixel by pixel from the pattern's letters, then packed by ``bayer.split``."""
    image = np.random.default_rng(1).random((6, 8, 3)).astype(np.float32)
    sensor = np.empty(image.shape[:2], np.float32)
    for row in range(image.shape[0]):
        for col in range(image.shape[1]):
            sensor[row, col] = image[row, col, "RGB".index(pattern[2 * (row % 2) + col % 2])]
    np.testing.assert_array_equal(mosaic(image, pattern), bayer.split(sensor, pattern))


def test_noise_has_the_variance_of_the_model():
    """Variance = signal * shot + read; with 262144 samples the sample variance's relative standard
    error is sqrt(2 / n) = 0.28%, so 2% is a seven-sigma bound. 0.5 +- 6 sigma stays clear of the clip."""
    signal, shot, read = 0.5, tf.constant(0.01), tf.constant(2e-4)
    noisy = add_noise(tf.fill([256, 256, 4], signal), shot, read, tf.constant([4, 2])).numpy()
    assert abs(noisy.mean() - signal) < 1e-3
    np.testing.assert_allclose(noisy.var(), signal * 0.01 + 2e-4, rtol=0.02)


def test_unrender_is_inverted_by_the_isps_render(photos):
    """Without the mosaic the round trip only loses float32 rounding and the protected highlights: measured
    63 dB (coffee's specular highlights) to 142 dB (chelsea, none)."""
    for name, photo in photos.items():
        params = random_params(tf.constant([0, 0]), noise=False)
        back = isp.render(unrender(photo, params), params.white_balance, params.camera_to_srgb)
        assert _psnr(photo, back) > 60.0, name


@pytest.mark.parametrize("pattern", ["RGGB", "GBRG"])
def test_noise_free_round_trip_through_the_classical_isp(photos, pattern):
    """photo -> unprocess -> isp.process: the loss is bilinear demosaicking's. Measured 25.7 dB
    (motorcycle_right) to 31.6 dB (chelsea) over three seeds; bilinear demosaicking alone, in sRGB, gives
    29-34 dB on these photos, and the gamma curve amplifies its errors in dark regions.

    Decoding with another CFA's sites (colours right, positions one pixel off) must cost at least 1 dB on
    every photo: measured 1.5 dB (rocket) to 5.1 dB (ihc).
    """
    wrong = "RGGB" if pattern != "RGGB" else "GBRG"
    for seed in range(2):
        for name, photo in photos.items():
            packed, _, params = unprocess(photo, tf.constant([seed, 0]), pattern=pattern, noise=False)
            right = _psnr(photo, isp.process(packed, params.white_balance, params.camera_to_srgb, pattern))
            assert right > 25.0, (name, seed)
            if seed == 0:
                other = _psnr(photo, isp.process(packed, params.white_balance, params.camera_to_srgb, wrong))
                assert right - other > 1.0, name


def test_synthetic_raw_is_darker_than_the_photo_and_noisy(photos):
    photo = photos["astronaut"]
    packed, _, params = unprocess(photo, tf.constant([0, 0]))
    clean, _, _ = unprocess(photo, tf.constant([0, 0]), noise=False)
    assert packed.shape == (photo.shape[0] // 2, photo.shape[1] // 2, 4)
    assert 0.0 <= tf.reduce_min(packed) and tf.reduce_max(packed) <= 1.0
    assert tf.reduce_mean(packed) < photo.mean()  # linear, and divided by the gains
    residual = (packed - clean).numpy()
    expected = tf.reduce_mean(clean * params.shot_noise + params.read_noise).numpy()
    np.testing.assert_allclose(residual.var(), expected, rtol=0.1)  # clipping at 0 trims a little
