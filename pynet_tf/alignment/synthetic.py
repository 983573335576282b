"""Phone RAW / DSLR photo pairs with a known answer, for testing and measuring the alignment.

    photo P ──unprocess──> RAW on P's grid (what the phone saw)
    P ──known homography + local displacement, re-exposed, colour-shifted──> the "DSLR" photo

The true position in the DSLR photo of RAW pixel x is ``homography(x) + displacement(x)``: a global
camera difference plus a local one, the two things the global fit and the per-patch refinement are each
there to recover. The local part is a random shift per square cell of the RAW grid (parallax: things at
other depths move by other amounts), blended across EDGE pixels at the cells' borders; no homography
follows it, and a patch on a cell sees one shift, so each patch has one known answer. An optional textured
square pasted into the DSLR view only stands for an object that moved between the two shots.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import tensorflow as tf
from scipy.special import erf

from pynet_tf.alignment.register import project
from pynet_tf.data import isp
from pynet_tf.data.rawio import RawImage
from pynet_tf.data.unprocess import unprocess

WHITE_LEVEL = 4095
"""The synthetic sensor's 12-bit range (no black level)."""


EDGE = 4.0
"""Width (the erf's scale), in RAW pixels, of the blend between neighbouring cells' shifts."""


@dataclass(frozen=True)
class SyntheticPair:
    raw: RawImage
    photo: np.ndarray
    """The DSLR view, float32 (H, W, 3) in [0, 1]."""
    homography: np.ndarray
    """RAW grid -> DSLR photo pixels, the global part of the truth."""
    cell: int
    shifts: np.ndarray
    """(rows, cols, 2): each cell's (dx, dy) in photo pixels, the local part of the truth."""
    pasted: tuple[int, int, int, int] | None
    """(left, top, right, bottom) on the RAW grid of the object pasted in the DSLR view only."""

    def displacement(self, points: np.ndarray) -> np.ndarray:
        """(N, 2) RAW grid points -> the local part of the truth at them, in photo pixels."""
        across = _cell_weights(points[:, 0], self.shifts.shape[1], self.cell)
        down = _cell_weights(points[:, 1], self.shifts.shape[0], self.cell)
        return np.einsum("nr,nc,rcd->nd", down, across, self.shifts)

    def truth(self, points: np.ndarray) -> np.ndarray:
        """(N, 2) RAW grid points -> where they are in the DSLR photo."""
        points = np.asarray(points, np.float64).reshape(-1, 2)
        return project(self.homography, points) + self.displacement(points)


def _cell_weights(coordinate: np.ndarray, count: int, cell: int) -> np.ndarray:
    """(N, count): how much of each cell along one axis a coordinate belongs to. The first and last cells
    reach to infinity; the weights sum to 1 (each is a difference of two steps, and they telescope)."""
    steps = 0.5 * (1 + erf((coordinate[:, None] - cell * np.arange(1, count)[None]) / EDGE))
    ones, zeros = np.ones((len(coordinate), 1)), np.zeros((len(coordinate), 1))
    return np.concatenate([ones, steps], 1) - np.concatenate([steps, zeros], 1)


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
    cell: int = 128,
    paste: bool = False,
    noise: bool = False,
) -> SyntheticPair:
    """A RAW synthesised from ``photo`` (float (H, W, 3), even sides) and a DSLR view of the same scene.

    Each ``cell`` x ``cell`` square of the RAW grid (from the top-left corner, as the patch grid) moves by its
    own shift, each coordinate uniform in [-``amplitude``, ``amplitude``] photo pixels. ``paste`` puts a
    textured square in the DSLR view only.
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
        cell=cell,
        shifts=rng.uniform(-amplitude, amplitude, (-(-height // cell), -(-width // cell), 2)),
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
    displacement is small and its slope (amplitude over EDGE) is below 1 for amplitudes below 4 px.
    Rows go in bands, so a 12 MP view needs no 12 M x cells weight table.
    """
    inverse = np.linalg.inv(pair.homography)
    maps = np.empty((size[1], size[0], 2), np.float32)
    for top in range(0, size[1], 256):
        rows = np.arange(top, min(top + 256, size[1]))
        grid = np.stack(np.meshgrid(np.arange(size[0]), rows), -1).reshape(-1, 2).astype(np.float64)
        points = project(inverse, grid)
        for _ in range(8):
            points = project(inverse, grid - pair.displacement(points))
        maps[rows[0] : rows[-1] + 1] = points.reshape(len(rows), size[0], 2)
    return cv2.remap(source, maps[..., 0], maps[..., 1], cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT_101)
