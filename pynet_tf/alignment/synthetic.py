"""Phone RAW / DSLR photo pairs with a known answer, for testing and measuring the alignment.

    photo P ──unprocess──> RAW on P's grid (what the phone saw)
    P ──known homography + smooth local displacement, re-exposed, colour-shifted──> the "DSLR" photo

The true position in the DSLR photo of RAW pixel x is ``homography(x) + displacement(x)``: a global
camera difference plus a small, slowly varying local one (lens distortion, parallax), the two things the
global fit and the per-patch refinement are each there to recover. An optional textured square pasted
into the DSLR view only stands for an object that moved between the two shots.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import tensorflow as tf

from pynet_tf.alignment.register import project
from pynet_tf.data import isp
from pynet_tf.data.rawio import RawImage
from pynet_tf.data.unprocess import unprocess

WHITE_LEVEL = 4095
"""The synthetic sensor's 12-bit range (no black level)."""


@dataclass(frozen=True)
class SyntheticPair:
    raw: RawImage
    photo: np.ndarray
    """The DSLR view, float32 (H, W, 3) in [0, 1]."""
    homography: np.ndarray
    """RAW grid -> DSLR photo pixels, the global part of the truth."""
    amplitude: float
    wavelength: float
    phase: tuple[float, float]
    pasted: tuple[int, int, int, int] | None
    """(left, top, right, bottom) on the RAW grid of the object pasted in the DSLR view only."""

    def displacement(self, points: np.ndarray) -> np.ndarray:
        """(N, 2) RAW grid points -> the local part of the truth at them, in photo pixels."""
        x, y = points[:, 0], points[:, 1]
        turn = 2 * np.pi / self.wavelength
        return self.amplitude * np.stack(
            [np.sin(turn * y + self.phase[0]), np.cos(turn * x + self.phase[1])], 1
        )

    def truth(self, points: np.ndarray) -> np.ndarray:
        """(N, 2) RAW grid points -> where they are in the DSLR photo."""
        points = np.asarray(points, np.float64).reshape(-1, 2)
        return project(self.homography, points) + self.displacement(points)


def random_homography(rng: np.random.Generator, width: int, height: int, scale: float) -> np.ndarray:
    """A tripod neighbour's view: about ``scale`` photo pixels per RAW pixel, a few degrees of roll, a slight
    tilt and an offset of a few per cent of the frame, centred on the RAW's centre."""
    angle = np.deg2rad(rng.uniform(-4, 4))
    zoom = scale * rng.uniform(0.95, 1.05)
    centre = np.array([(width - 1) / 2, (height - 1) / 2])
    to_origin = np.array([[1, 0, -centre[0]], [0, 1, -centre[1]], [0, 0, 1]])
    similarity = np.array(
        [
            [zoom * np.cos(angle), -zoom * np.sin(angle), 0],
            [zoom * np.sin(angle), zoom * np.cos(angle), 0],
            [0, 0, 1],
        ]
    )
    slant = rng.uniform(-0.05, 0.05, 2) / max(width, height)  # up to 5% keystone across the frame
    tilt = np.array([[1, 0, 0], [0, 1, 0], [slant[0], slant[1], 1]])
    back = np.array([[1, 0, centre[0] * scale], [0, 1, centre[1] * scale], [0, 0, 1]])
    shift = np.array(
        [[1, 0, rng.uniform(-0.03, 0.03) * width], [0, 1, rng.uniform(-0.03, 0.03) * height], [0, 0, 1]]
    )
    homography = shift @ back @ similarity @ tilt @ to_origin
    return homography / homography[2, 2]


def make_pair(
    photo: np.ndarray,
    seed: int,
    *,
    scale: float = 1.0,
    amplitude: float = 1.0,
    paste: bool = False,
    noise: bool = False,
) -> SyntheticPair:
    """A RAW synthesised from ``photo`` (float (H, W, 3), even sides) and a DSLR view of the same scene.

    ``amplitude`` is the local displacement's peak in photo pixels (wavelength: 3x the frame's longer
    side, so it is near constant over a patch); ``paste`` puts a textured square in the DSLR view only.
    """
    rng = np.random.default_rng(seed)
    height, width = photo.shape[:2]
    packed, _, params = unprocess(tf.constant(photo, tf.float32), tf.constant([seed, 0]), "RGGB", noise=noise)
    mosaic = np.rint(isp.to_mosaic(packed).numpy()[..., 0] * WHITE_LEVEL).astype(np.uint16)
    mosaic.setflags(write=False)
    # RawImage's colour matrix is XYZ -> camera; unprocess drew sRGB -> camera with rows summing to 1
    xyz_to_camera = params.srgb_to_camera.numpy() @ np.linalg.inv(isp.SRGB_TO_XYZ)
    raw = RawImage(
        path=None,
        mosaic=mosaic,
        pattern="RGGB",
        black_levels=(0.0, 0.0, 0.0, 0.0),
        white_level=float(WHITE_LEVEL),
        white_balance=tuple(float(gain) for gain in params.white_balance.numpy()),
        color_matrix=xyz_to_camera.astype(np.float32),
        size=mosaic.shape,
    )
    homography = random_homography(rng, width, height, scale)
    pair = SyntheticPair(
        raw=raw,
        photo=np.empty(0),
        homography=homography,
        amplitude=amplitude,
        wavelength=3.0 * max(width, height),
        phase=(float(rng.uniform(0, 2 * np.pi)), float(rng.uniform(0, 2 * np.pi))),
        pasted=None,
    )
    source = photo.copy()
    pasted = None
    if paste:
        side = min(width, height) // 5
        left, top = int(rng.integers(side, width - 2 * side)), int(rng.integers(side, height - 2 * side))
        texture = rng.uniform(0, 1, (side // 8, side // 8, 3)).astype(np.float32)
        source[top : top + side, left : left + side] = cv2.resize(
            texture, (side, side), interpolation=cv2.INTER_NEAREST
        )
        pasted = (left, top, left + side, top + side)
    size = (round(width * scale), round(height * scale))
    dslr = _render_view(source, pair, size)
    gain = rng.uniform(0.8, 1.25) * rng.uniform(0.9, 1.1, 3)
    dslr = np.clip(np.clip(dslr, 0, 1) ** 2.2 * gain, 0, 1) ** (1 / 2.2)
    return SyntheticPair(**{**pair.__dict__, "photo": dslr.astype(np.float32), "pasted": pasted})


def _render_view(source: np.ndarray, pair: SyntheticPair, size: tuple[int, int]) -> np.ndarray:
    """The DSLR view: each photo pixel y takes the source at the RAW point x with truth(x) = y.

    x is found by fixed-point iteration x <- H^-1(y - displacement(x)), which converges because the
    displacement is small and slowly varying (its slope is below 1e-2).
    """
    grid = np.stack(np.meshgrid(np.arange(size[0]), np.arange(size[1])), -1).reshape(-1, 2).astype(np.float64)
    inverse = np.linalg.inv(pair.homography)
    points = project(inverse, grid)
    for _ in range(6):
        points = project(inverse, grid - pair.displacement(points))
    maps = points.reshape(size[1], size[0], 2).astype(np.float32)
    return cv2.remap(source, maps[..., 0], maps[..., 1], cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT_101)
