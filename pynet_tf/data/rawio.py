"""Reading Bayer mosaics: camera RAW files through rawpy (LibRaw), and the ZRR dataset's raw PNGs.

Every failure to read (missing, directory, empty, truncated, corrupt, not a RAW file, not a 2x2 Bayer
sensor) is one ``RawReadError`` whose message names the file and the cause, so that CLIs can print one
line. It is an ``OSError``, like Pillow's ``UnidentifiedImageError``: the problem is the file.

LibRaw refuses every truncation of a RAW file that we tested (the KDC sample cut at any length, see
``tests/test_rawio.py``) with an I/O error, which becomes ``RawReadError``; a truncated file that LibRaw
still decodes would come back as a ``RawImage`` with whatever samples LibRaw filled in.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rawpy
from PIL import Image

from pynet_tf.data import bayer

# The reference PyNET loader divides ZRR's 10-bit samples by 4 * 255, so 1023 maps to 1.0029, not 1.0.
ZRR_SCALE = 4 * 255

# Pillow's modes for 16-bit single-channel images (a ZRR raw PNG opens as "I;16").
_MODES_16BIT = frozenset({"I;16", "I;16L", "I;16B"})

# What Pillow raises for files it cannot identify or decode (truncated, corrupt, bad chunks, bombs).
PILLOW_ERRORS = (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError)


class RawReadError(OSError):
    """A RAW file (camera RAW or ZRR PNG) that cannot be read as a Bayer mosaic; the message says why."""


@dataclass(frozen=True, eq=False)
class RawImage:
    """A camera RAW frame: the visible Bayer mosaic and the metadata needed to pack and render it.

    ``black_levels`` are in the canonical order (R, Gr, Gb, B) of ``bayer.CHANNELS``. ``white_balance`` is
    the as-shot (R, G, B) gains with green = 1, or None when the file carries none. ``color_matrix`` is
    LibRaw's ``rgb_xyz_matrix[:3]``: the DNG-style XYZ (D65) -> camera matrix, rows in camera R, G, B
    order (invert it for camera -> XYZ); all zeros when LibRaw knows none for the camera.
    """

    path: Path
    mosaic: np.ndarray
    pattern: str
    black_levels: tuple[float, float, float, float]
    white_level: float
    white_balance: tuple[float, float, float] | None
    color_matrix: np.ndarray
    size: tuple[int, int]

    def packed(self) -> np.ndarray:
        """The canonical packed (H/2, W/2, 4) float32 in [0, 1], with this frame's own levels."""
        return bayer.pack(self.mosaic, self.pattern, self.black_levels, self.white_level)


def _check_file(path: Path) -> None:
    """Name the common causes plainly: LibRaw reports all of them as 'Input/output error'."""
    if path.is_dir():
        raise RawReadError(f"{path}: is a directory, not a RAW file")
    if not path.is_file():
        raise RawReadError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise RawReadError(f"{path}: empty file (0 bytes)")


def _visible_tile(path: Path, raw: rawpy.RawPy) -> np.ndarray:
    """The 2x2 colour indices of the visible area's top-left tile; refuses non-Bayer sensors.

    ``raw_pattern`` is anchored at the full raw area's origin, so it is shifted by the visible margins.
    """
    try:
        pattern = raw.raw_pattern
    except NotImplementedError as error:  # rawpy's answer to CFA layouts it has no pattern for
        raise RawReadError(f"{path}: not a 2x2 Bayer sensor ({error})") from error
    if (
        pattern is None
        or pattern.shape[0] % 2
        or not np.array_equal(
            pattern, np.tile(pattern[:2, :2], (pattern.shape[0] // 2, pattern.shape[1] // 2))
        )
    ):
        shape = "none" if pattern is None else f"{pattern.shape[0]}x{pattern.shape[1]}"
        raise RawReadError(
            f"{path}: not a 2x2 Bayer sensor (CFA pattern {shape}: X-Trans, linear or monochrome raws are "
            "not supported)"
        )
    sizes = raw.sizes
    return np.roll(pattern[:2, :2], shift=(-sizes.top_margin, -sizes.left_margin), axis=(0, 1))


def _from_rawpy(path: Path, raw: rawpy.RawPy) -> RawImage:
    """Everything a RawImage holds, from an opened and unpacked LibRaw handle."""
    tile = _visible_tile(path, raw)
    colors = raw.color_desc.decode("ascii")
    pattern = "".join(colors[index] for index in tile.flat)
    try:
        offsets = bayer.channel_offsets(pattern)
    except bayer.UnsupportedCFAError as error:
        raise RawReadError(f"{path}: not a 2x2 Bayer sensor: {error}") from error
    per_color = raw.black_level_per_channel  # indexed by colour index, not by tile position
    black_levels = tuple(float(per_color[tile[row, col]]) for row, col in offsets)
    gains = raw.camera_whitebalance  # also indexed by colour index, in color_desc order
    green = gains[colors.index("G")]
    white_balance = (
        (gains[colors.index("R")] / green, 1.0, gains[colors.index("B")] / green) if green > 0 else None
    )
    mosaic = np.array(raw.raw_image_visible, dtype=np.uint16)
    mosaic.setflags(write=False)
    return RawImage(
        path=path,
        mosaic=mosaic,
        pattern=pattern,
        black_levels=black_levels,
        white_level=float(raw.white_level),
        white_balance=white_balance,
        color_matrix=np.array(raw.rgb_xyz_matrix[:3], dtype=np.float32),
        size=(mosaic.shape[0], mosaic.shape[1]),
    )


def read_raw(path: str | Path) -> RawImage:
    """Read any 2x2 Bayer RAW file LibRaw knows (DNG, NEF, CR2, ARW, KDC, ...)."""
    path = Path(path)
    _check_file(path)
    try:
        with rawpy.imread(str(path)) as raw:
            return _from_rawpy(path, raw)
    except rawpy.LibRawError as error:
        cause = error.args[0] if error.args else ""
        if isinstance(cause, bytes):  # LibRaw's messages come as bytes
            cause = cause.decode(errors="replace")
        raise RawReadError(f"{path}: LibRaw cannot read it ({type(error).__name__}: {cause})") from error


def read_zrr_raw(path: str | Path) -> np.ndarray:
    """A Zurich RAW-to-RGB raw PNG as canonical packed (H/2, W/2, 4) float32, exactly as reference PyNET.

    The reference loader packs ``(B, Gb, R, Gr) = (raw[1::2, 1::2], raw[0::2, 1::2], raw[0::2, 0::2],
    raw[1::2, 0::2])`` and divides by 4 * 255. Its "Gb" at (0, 1) shares the row with red, so it is our Gr,
    and its "Gr" at (1, 0) is our Gb: the sensor is RGGB, and the planes here are (R, Gr, Gb, B) = (its R,
    its Gb, its Gr, its B). No clipping, like the reference: 10-bit values reach 1023 / 1020 = 1.0029.
    """
    path = Path(path)
    _check_file(path)
    try:
        with Image.open(path) as image:
            image.load()
            mode = image.mode
            mosaic = np.array(image)
    except PILLOW_ERRORS as error:
        cause = f"{type(error).__name__}: {error}"
        raise RawReadError(f"{path}: cannot decode it as an image ({cause})") from error
    if mode not in _MODES_16BIT:
        raise RawReadError(f"{path}: not a 16-bit single-channel mosaic (image mode {mode!r})")
    try:
        planes = bayer.split(mosaic, "RGGB")
    except ValueError as error:
        raise RawReadError(f"{path}: {error}") from error
    return planes.astype(np.float32) / ZRR_SCALE
