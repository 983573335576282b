"""Phone RAW / DSLR photo pairs with a known answer, for testing and measuring the alignment.

    photo P ──unprocess──> RAW on P's grid (what the phone saw)
    P ──known homography + local displacement, re-exposed, colour-shifted──> the "DSLR" photo

The true position in the DSLR photo of RAW pixel x is ``homography(x) + displacement(x)``: a global
camera difference plus a local one, the two things the global fit and the per-patch refinement are each
there to recover. The local part is a random shift per square cell of the RAW grid (parallax: things at
other depths move by other amounts), blended across EDGE pixels at the cells' borders; no homography
follows it, and a patch on a cell sees one shift, so each patch has one known answer. An optional textured
square pasted into the DSLR view only stands for an object that moved between the two shots.

``write_dng`` / ``write_raw_dng`` put such a RAW (or any mosaic) in a minimal DNG that LibRaw reads back:
what ``python -m pynet_tf.align`` takes as the phone's files in the tests and in benchmarks/align_training.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import tensorflow as tf
import tifffile
from scipy.special import erf

from pynet_tf.alignment.register import frame_corners, project
from pynet_tf.data import bayer, isp
from pynet_tf.data.rawio import RawImage
from pynet_tf.data.unprocess import unprocess

WHITE_LEVEL = 4095
"""The synthetic sensor's 12-bit range (no black level)."""


EDGE = 4.0
"""Width (the erf's scale), in RAW pixels, of the blend between neighbouring cells' shifts."""

CFA_CODES = {"R": 0, "G": 1, "B": 2, "C": 3, "M": 4, "Y": 5}
"""DNG CFAPattern colour codes."""

D65 = 21
"""The EXIF LightSource code of D65, the illuminant of ``RawImage.color_matrix`` (CalibrationIlluminant1)."""

_RATIONAL_DENOMINATOR = 1_000_000
"""Largest denominator of a DNG rational written here: six decimals, and numerators stay within 32 bits."""


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
    gain: np.ndarray | None = None
    """(R, G, B) linear gains of the DSLR's other exposure and colour (``regrade``)."""

    def regrade(self, image: np.ndarray) -> np.ndarray:
        """An sRGB image (float, [0, 1]) in the DSLR's exposure and colour: the perfectly aligned target of
        the RAW is ``regrade`` of the unwarped photo (without a pasted object)."""
        return regrade(image, self.gain if self.gain is not None else np.ones(3))

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
    margin: int = 0,
) -> SyntheticPair:
    """A RAW synthesised from ``photo`` (float (H, W, 3), even sides) and a DSLR view of the same scene.

    Each ``cell`` x ``cell`` square of the RAW grid (from the top-left corner, as the patch grid) moves by its
    own shift, each coordinate uniform in [-``amplitude``, ``amplitude``] photo pixels. ``paste`` puts a
    textured square in the DSLR view only. With a ``margin``, the RAW sees ``photo`` less that many pixels on
    each side and the DSLR view all of it: a wider frame, so that the roll and offset of the homography do
    not leave the RAW's edge patches outside the photo.
    """
    rng = np.random.default_rng(seed)
    height, width = photo.shape[0] - 2 * margin, photo.shape[1] - 2 * margin
    inner = photo[margin : margin + height, margin : margin + width]
    packed, _, params = unprocess(tf.constant(inner, tf.float32), tf.constant([seed, 0]), "RGGB", noise=noise)
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
    # the view's origin sees the RAW grid's point (-margin, -margin)
    homography = np.array([[1, 0, margin * scale], [0, 1, margin * scale], [0, 0, 1]]) @ random_homography(
        rng, width, height, scale
    )
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
        source[margin + top : margin + top + side, margin + left : margin + left + side] = cv2.resize(
            texture, (side, side), interpolation=cv2.INTER_NEAREST
        )
        pasted = (left, top, left + side, top + side)
    size = (round(photo.shape[1] * scale), round(photo.shape[0] * scale))
    dslr = _render_view(source, pair, size, margin)
    gain = rng.uniform(0.8, 1.25) * rng.uniform(0.9, 1.1, 3)
    dslr = regrade(dslr, gain)
    return SyntheticPair(
        **{**pair.__dict__, "photo": dslr.astype(np.float32), "pasted": pasted, "gain": gain}
    )


def sample_photo(name: str, multiple: int = 2) -> np.ndarray:
    """One of scikit-image's colour photos (``motorcycle_left`` / ``_right``: its stereo pair's views) as
    float32 (H, W, 3) in [0, 1], cut to multiples of ``multiple`` (2: the even sides ``make_pair`` needs)."""
    import skimage.data

    if name.startswith("motorcycle_"):
        image = skimage.data.stereo_motorcycle()[0 if name.endswith("left") else 1]
    else:
        image = getattr(skimage.data, name)()[..., :3]
    height, width = image.shape[0] // multiple * multiple, image.shape[1] // multiple * multiple
    return image[:height, :width].astype(np.float32) / 255


def corner_error(found: np.ndarray, truth: np.ndarray, width: int, height: int) -> float:
    """How far a fitted homography is from the true one: the largest distance, in RAW pixels, between each
    corner of the ``width`` x ``height`` frame and where ``found`` puts that corner's true photo position."""
    corners = frame_corners(width, height)
    back = project(np.linalg.inv(found), project(truth, corners))
    return float(np.linalg.norm(back - corners, axis=1).max())


def regrade(image: np.ndarray, gain: np.ndarray) -> np.ndarray:
    """Another exposure and white balance: linear (gamma 2.2) gains per channel, clipped."""
    return np.clip(np.clip(image, 0, 1) ** 2.2 * gain, 0, 1) ** (1 / 2.2)


def _render_view(source: np.ndarray, pair: SyntheticPair, size: tuple[int, int], margin: int) -> np.ndarray:
    """The DSLR view: each photo pixel y takes the source at the RAW point x with truth(x) = y (the source's
    pixel x + ``margin``).

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
        maps[rows[0] : rows[-1] + 1] = points.reshape(len(rows), size[0], 2) + margin
    return cv2.remap(source, maps[..., 0], maps[..., 1], cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT_101)


def _rationals(values: Sequence[float]) -> tuple[int, ...]:
    """Numbers as flat (numerator, denominator) pairs: exact for simple fractions such as 1/2 and 1/3."""
    pairs = []
    for value in values:
        fraction = Fraction(float(value)).limit_denominator(_RATIONAL_DENOMINATOR)
        pairs += [fraction.numerator, fraction.denominator]
    return tuple(pairs)


def write_dng(
    path: str | Path,
    mosaic: np.ndarray,
    cfa: str,
    black_tile: Sequence[int] = (0, 0, 0, 0),
    white: int = 4095,
    repeat: int = 2,
    white_balance: Sequence[float] = (2.0, 1.0, 3.0),
    color_matrix: np.ndarray | None = None,
) -> Path:
    """A minimal uncompressed CFA DNG: the tags LibRaw needs, black levels per 2x2 tile position.

    ``cfa`` lists the colours of the ``repeat`` x ``repeat`` tile row by row; ``black_tile`` is in tile order
    (0,0) (0,1) (1,0) (1,1). ``white_balance`` is the as-shot (R, G, B) gains, written as AsShotNeutral =
    1 / gains (the default, gains R 2 and B 3, is the tests' camera); LibRaw reads back their ratios to green,
    so a green gain other than 1 (``make_pair``'s brightness gain) does not survive. ``color_matrix``, when given, is
    ``RawImage.color_matrix`` (XYZ (D65) -> camera), written as ColorMatrix1 under illuminant D65. LibRaw
    (0.22) renders with it (rawpy's ``color_matrix``) but leaves ``rgb_xyz_matrix``, which ``read_raw``
    reports, at zeros for a DNG.
    """
    tags = [
        (50706, 1, 4, (1, 4, 0, 0), True),  # DNGVersion
        (50708, 2, 0, "pynet-tf test camera", True),  # UniqueCameraModel
        (33421, 3, 2, (repeat, repeat), True),  # CFARepeatPatternDim
        (33422, 1, len(cfa), tuple(CFA_CODES[c] for c in cfa), True),  # CFAPattern
        (50713, 3, 2, (2, 2), True),  # BlackLevelRepeatDim
        (50714, 4, 4, tuple(int(level) for level in black_tile), True),  # BlackLevel
        (50717, 4, 1, int(white), True),  # WhiteLevel
        (50728, 5, 3, _rationals([1 / gain for gain in white_balance]), True),  # AsShotNeutral
    ]
    if color_matrix is not None:
        matrix = np.asarray(color_matrix, np.float64)[:3, :3]
        tags += [
            (50721, 10, 9, _rationals(matrix.flat), True),  # ColorMatrix1 (signed rationals)
            (50778, 3, 1, D65, True),  # CalibrationIlluminant1
        ]
    tifffile.imwrite(path, mosaic, photometric=32803, subfiletype=0, extratags=tags)  # 32803: CFA
    return Path(path)


def write_raw_dng(path: str | Path, raw: RawImage) -> Path:
    """A ``RawImage`` (a ``SyntheticPair``'s ``.raw``) as a DNG with its pattern, levels, white balance and
    colour matrix, so ``python -m pynet_tf.align`` can take it as a phone's file."""
    offsets = bayer.channel_offsets(raw.pattern)
    black_tile = [0] * 4
    for level, (row, col) in zip(raw.black_levels, offsets):
        black_tile[2 * row + col] = round(level)
    return write_dng(
        path,
        np.ascontiguousarray(raw.mosaic, np.uint16),
        raw.pattern,
        black_tile=black_tile,
        white=round(raw.white_level),
        white_balance=raw.white_balance or (1.0, 1.0, 1.0),
        color_matrix=raw.color_matrix if np.any(raw.color_matrix) else None,
    )
