"""Synthetic RAW from any sRGB photo: the classical ISP (``isp``) run backwards with a random camera.

After Brooks et al. 2019 ("Unprocessing Images for Learned Raw Denoising"):

    sRGB photo -> inverse smoothstep -> inverse gamma -> random sRGB -> camera matrix
               -> inverse white balance and brightness (highlights protected) -> clip
               -> sample the chosen CFA into the canonical packed layout -> shot + read noise -> clip

The photo itself is the target. Every random choice is drawn statelessly from the ``seed`` given and
returned in ``UnprocessParams``, so a pair can be regenerated, and rendered back by ``isp.process`` with
``params.white_balance`` and ``params.camera_to_srgb``. ``unrender`` is the inverse of ``isp.render``: the
only loss of the round trip photo -> unprocess -> isp.process is the mosaic's (plus clipped highlights).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import tensorflow as tf

from pynet_tf.data import bayer
from pynet_tf.data.isp import apply_color_matrix, gamma_expansion, inverse_smoothstep, srgb_to_camera

# The four XYZ -> camera matrices Brooks et al. sample between (the cameras of the Darmstadt Noise Dataset they
# fitted their noise model to). A random convex combination of them is a plausible new camera.
XYZ_TO_CAMERAS = np.array(
    [
        [[1.0234, -0.2969, -0.2266], [-0.5625, 1.6328, -0.0469], [-0.0703, 0.2188, 0.6406]],
        [[0.4913, -0.0541, -0.0202], [-0.613, 1.3513, 0.2906], [-0.1564, 0.2151, 0.7183]],
        [[0.838, -0.263, -0.0639], [-0.2887, 1.0725, 0.2496], [-0.0627, 0.1427, 0.5438]],
        [[0.6596, -0.2079, -0.0562], [-0.4782, 1.3016, 0.1933], [-0.097, 0.1581, 0.5181]],
    ],
    dtype=np.float32,
)

# Gain and noise distributions, as fitted by Brooks et al. to the Darmstadt Noise Dataset.
BRIGHTNESS_MEAN, BRIGHTNESS_STDDEV = 0.8, 0.1  # 1 / brightness gain ~ N(0.8, 0.1)
RED_GAIN_RANGE = (1.9, 2.4)
BLUE_GAIN_RANGE = (1.5, 1.9)
SHOT_NOISE_RANGE = (1e-4, 1.2e-2)
READ_NOISE_SLOPE, READ_NOISE_INTERCEPT, READ_NOISE_STDDEV = 2.18, 1.20, 0.26  # log read = line(log shot) + N
# Pixels whose grey level is above this keep more of their value, so that white highlights stay white.
HIGHLIGHT_INFLECTION = 0.9


@dataclass(frozen=True)
class UnprocessParams:
    """The random camera and exposure of one synthetic RAW (tensors, or numbers after ``to_dict``)."""

    srgb_to_camera: tf.Tensor
    """(3, 3) linear sRGB -> camera RGB, rows summing to 1."""
    brightness_gain: tf.Tensor
    """The photo was darkened by 1 / this, simulating an exposure choice."""
    red_gain: tf.Tensor
    blue_gain: tf.Tensor
    shot_noise: tf.Tensor
    """Noise variance per unit of signal (photon noise)."""
    read_noise: tf.Tensor
    """Noise variance at zero signal (0 when noise is off)."""

    @property
    def camera_to_srgb(self) -> tf.Tensor:
        return tf.linalg.inv(self.srgb_to_camera)

    @property
    def white_balance(self) -> tf.Tensor:
        """The (R, G, B) gains that undo the inverse white balance and the darkening, for ``isp.process``."""
        return self.brightness_gain * tf.stack([self.red_gain, 1.0, self.blue_gain])

    def to_dict(self) -> dict:
        """Plain numbers and lists, for logs and JSON."""
        return {field.name: np.asarray(getattr(self, field.name)).tolist() for field in fields(self)}


def random_params(seed: tf.Tensor, noise: bool = True) -> UnprocessParams:
    """One random camera and exposure drawn from ``seed`` (shape [2] integers)."""
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=6)
    weights = tf.random.stateless_uniform([len(XYZ_TO_CAMERAS), 1, 1], seeds[0], 1e-8, 1e8)
    xyz_to_camera = tf.reduce_sum(XYZ_TO_CAMERAS * weights, axis=0) / tf.reduce_sum(weights, axis=0)
    brightness = 1.0 / tf.random.stateless_normal([], seeds[1], BRIGHTNESS_MEAN, BRIGHTNESS_STDDEV)
    red = tf.random.stateless_uniform([], seeds[2], *RED_GAIN_RANGE)
    blue = tf.random.stateless_uniform([], seeds[3], *BLUE_GAIN_RANGE)
    log_shot = tf.random.stateless_uniform([], seeds[4], *np.log(SHOT_NOISE_RANGE).astype(np.float32))
    log_read = READ_NOISE_SLOPE * log_shot + READ_NOISE_INTERCEPT
    log_read += tf.random.stateless_normal([], seeds[5], 0.0, READ_NOISE_STDDEV)
    shot, read = (tf.exp(log_shot), tf.exp(log_read)) if noise else (tf.constant(0.0), tf.constant(0.0))
    return UnprocessParams(srgb_to_camera(xyz_to_camera), brightness, red, blue, shot, read)


def mosaic(image: tf.Tensor, pattern: str = "RGGB") -> tf.Tensor:
    """Full-colour (2h, 2w, 3) -> canonical packed (h, w, 4): each channel sampled where ``pattern`` puts it."""
    colour = (0, 1, 1, 2)  # R, Gr, Gb, B read red, green, green, blue
    planes = [image[row::2, col::2, colour[k]] for k, (row, col) in enumerate(bayer.channel_offsets(pattern))]
    return tf.stack(planes, axis=-1)


def add_noise(packed: tf.Tensor, shot_noise: tf.Tensor, read_noise: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """Heteroscedastic Gaussian noise, variance = signal * shot + read, clipped to [0, 1] like real packed RAW."""
    stddev = tf.sqrt(packed * shot_noise + read_noise)
    return tf.clip_by_value(packed + stddev * tf.random.stateless_normal(tf.shape(packed), seed), 0.0, 1.0)


def unprocess(
    photo: tf.Tensor, seed: tf.Tensor, pattern: str = "RGGB", noise: bool = True
) -> tuple[tf.Tensor, tf.Tensor, UnprocessParams]:
    """sRGB photo (2h, 2w, 3) in [0, 1] -> (packed RAW (h, w, 4), the photo as target, the parameters drawn)."""
    photo = tf.convert_to_tensor(photo, tf.float32)
    params = random_params(seed, noise)
    packed = mosaic(unrender(photo, params), pattern)
    if noise:
        noise_seed = tf.random.experimental.stateless_fold_in(tf.cast(seed, tf.int64), 7)
        packed = add_noise(packed, params.shot_noise, params.read_noise, noise_seed)
    return packed, photo, params


def unrender(photo: tf.Tensor, params: UnprocessParams) -> tf.Tensor:
    """sRGB (..., 3) -> full-colour camera RGB in [0, 1]: the inverse of ``isp.render`` (up to clipping)."""
    linear = gamma_expansion(inverse_smoothstep(photo))
    camera = apply_color_matrix(linear, params.srgb_to_camera)
    return tf.clip_by_value(_invert_gains(camera, params), 0.0, 1.0)


def _invert_gains(image: tf.Tensor, params: UnprocessParams) -> tf.Tensor:
    """Divides by the white balance and brightness gains, less so towards white.

    Dividing a clipped highlight by the red gain would turn white into cyan; blending the gains towards 1
    above ``HIGHLIGHT_INFLECTION`` (a quadratic ramp on the pixel's grey level) keeps it white.
    """
    gains = 1.0 / params.white_balance
    grey = tf.reduce_mean(image, axis=-1, keepdims=True)
    highlight = (tf.maximum(grey - HIGHLIGHT_INFLECTION, 0.0) / (1.0 - HIGHLIGHT_INFLECTION)) ** 2
    return image * tf.maximum(highlight + (1.0 - highlight) * gains, gains)
