"""Reading Bayer mosaics: camera RAW files through rawpy (LibRaw), and the ZRR dataset's raw PNGs.

Every failure to read (missing, directory, empty, truncated, corrupt, over the size cap, not a RAW file,
not a 2x2 Bayer sensor) is one ``RawReadError`` whose message names the file and the cause, so that CLIs can print one
line. It is an ``OSError``, like Pillow's ``UnidentifiedImageError``: the problem is the file.

LibRaw refuses every truncation of a RAW file that we tested (the KDC sample cut at any length, see
``tests/test_rawio.py``) with an I/O error, which becomes ``RawReadError``; a truncated file that LibRaw
still decodes would come back as a ``RawImage`` with whatever samples LibRaw filled in.

This module also holds the rule every reader of images (here, and ``photoio``) follows, so that no path
accepts what another refuses:

- the frame's size comes from its header (Pillow's lazy ``Image.open``, tifffile's first IFD, LibRaw's
  metadata) and is checked against ``max_megapixels`` before any pixel is decoded (``check_frame_size``);
- PNGs are decoded by libpng (TensorFlow's ``decode_png``), which refuses an IDAT stream that ends before
  the last row; Pillow fills the missing rows with zeros and raises nothing. Other formats are decoded by
  Pillow, which raises when the data ends early (``ImageFile.LOAD_TRUNCATED_IMAGES`` is off), or tifffile;
- a file whose data is cut or damaged is one error saying so (``damaged``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rawpy
import tensorflow as tf
from PIL import Image

from pynet_tf.data import bayer
from pynet_tf.data.isp import SRGB_TO_XYZ

# The reference PyNET loader divides ZRR's 10-bit samples by 4 * 255, so 1023 maps to 1.0029, not 1.0.
ZRR_SCALE = 4 * 255

# Pillow's modes for 16-bit single-channel images (a ZRR raw PNG opens as "I;16").
_MODES_16BIT = frozenset({"I;16", "I;16L", "I;16B"})

# What Pillow raises for files it cannot identify or decode (truncated, corrupt, bad chunks).
PILLOW_ERRORS = (OSError, SyntaxError, ValueError, EOFError)

DEFAULT_MAX_MEGAPIXELS = 128
"""The largest frame any reader decodes unless told otherwise, in megapixels of the header's declared size.

The largest phone and camera sensors in common use are 108 MP class (Samsung's 12000 x 9000, Fujifilm's
GFX100 at 11648 x 8736): 128 admits them with ~20% to spare, while a corrupt or hostile header, such as a
173-byte PNG declaring 12000 x 12000 (144 MP, 2.2 GB when processed), is refused in milliseconds. Larger real
frames (150 MP medium-format backs, 200 MP phone modes) need ``--max-megapixels`` of ``pynet_tf.process``.
"""

# check_frame_size, applied to every header, replaces Pillow's decompression-bomb guard: its warning at 89 MP
# would fire on real 108 MP frames, and its error at 179 MP would overrule a raised --max-megapixels.
Image.MAX_IMAGE_PIXELS = None


class RawReadError(OSError):
    """A RAW file (camera RAW or ZRR PNG) that cannot be read as a Bayer mosaic; the message says why."""


@dataclass(frozen=True, eq=False)
class RawImage:
    """A camera RAW frame: the visible Bayer mosaic and the metadata needed to pack and render it.

    ``black_levels`` are in the canonical order (R, Gr, Gb, B) of ``bayer.CHANNELS``. ``white_balance`` is
    the as-shot (R, G, B) gains with green = 1, or None when the file carries none. ``color_matrix`` is
    LibRaw's ``rgb_xyz_matrix[:3]`` (for a DNG, derived from its ColorMatrix1: ``_xyz_to_camera``): the
    DNG-style XYZ (D65) -> camera matrix, rows in camera R, G, B order (invert it for camera -> XYZ); all
    zeros when LibRaw knows none for the camera.
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


def check_file(path: Path, error: type[OSError]) -> None:
    """Name the common causes plainly: LibRaw reports all of them as 'Input/output error'."""
    if path.is_dir():
        raise error(f"{path}: is a directory, not a file")
    if not path.is_file():
        raise error(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise error(f"{path}: empty file (0 bytes)")


def check_frame_size(
    path: Path, width: int, height: int, max_megapixels: float, error: type[OSError]
) -> None:
    """Refuse a frame over ``max_megapixels`` by its header's size, before its pixels cost memory and time."""
    megapixels = width * height / 1e6
    if megapixels > max_megapixels:
        raise error(
            f"{path}: declares {width}x{height} pixels ({megapixels:.3g} MP), over the limit of "
            f"{max_megapixels:g} MP (a corrupt header, or a frame beyond 108 MP-class sensors); if the image "
            "is real, raise the limit with --max-megapixels"
        )


def damaged(path: Path, what: str, cause: Exception) -> str:
    """The message for a file whose data a decoder refused: cut short or damaged, and what to do."""
    if isinstance(cause, tf.errors.OpError):  # drop TensorFlow's op and device names around libpng's words
        reason = cause.message.split("}}")[-1].split(" [Op:")[0].strip()
    else:
        reason = f"{type(cause).__name__}: {cause}"
    advice = "copy the file again from its source, or leave it out"
    return f"{path}: truncated or corrupt {what} data ({reason}); {advice}"


def open_image(path: Path, error: type[OSError], max_megapixels: float) -> Image.Image:
    """The image's header (format, size, mode) without its pixels, refused when over ``max_megapixels``."""
    try:
        image = Image.open(path)
    except PILLOW_ERRORS as cause:
        raise error(f"{path}: cannot decode it as an image ({type(cause).__name__}: {cause})") from cause
    try:
        check_frame_size(path, image.width, image.height, max_megapixels, error)
    except error:
        image.close()
        raise
    return image


def decode_image(image: Image.Image, path: Path, error: type[OSError], channels: int) -> np.ndarray:
    """All pixels of an image from ``open_image``, at full bit depth; refuses data cut short or damaged.

    PNGs come from libpng as uint16 (H, W, ``channels``): it widens 8-bit samples exactly, keeps 16-bit ones
    (Pillow reads 16-bit RGB as 8-bit) and refuses missing rows. Other formats come from Pillow as they are.
    """
    try:
        if image.format == "PNG":
            return tf.io.decode_png(tf.io.read_file(str(path)), channels=channels, dtype=tf.uint16).numpy()
        image.load()
        return np.asarray(image)
    except (tf.errors.OpError, *PILLOW_ERRORS) as cause:
        raise error(damaged(path, image.format, cause)) from cause


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


def _xyz_to_camera(raw: rawpy.RawPy) -> np.ndarray:
    """LibRaw's XYZ -> camera matrix; for a DNG, derived from the camera -> sRGB matrix it renders with.

    LibRaw fills ``rgb_xyz_matrix`` from its table of cameras, but not from a DNG's own ColorMatrix1 (0.22
    leaves it zero), which every phone DNG carries; its ``rgb_cam`` (rawpy's ``color_matrix``) is built from
    it. ``rgb_cam = inv(normalise_rows(xyz_to_camera @ SRGB_TO_XYZ))``, so inv(rgb_cam) @ inv(SRGB_TO_XYZ) is
    xyz_to_camera up to the per-row scale that ``isp.srgb_to_camera`` normalises away.
    """
    matrix = np.array(raw.rgb_xyz_matrix[:3], dtype=np.float64)
    camera_to_srgb = np.array(raw.color_matrix, dtype=np.float64)[:3, :3]
    known = np.all(np.isfinite(camera_to_srgb)) and not np.allclose(
        camera_to_srgb, np.eye(3)
    )  # LibRaw's default
    if not np.any(matrix) and known and abs(np.linalg.det(camera_to_srgb)) > 1e-6:
        matrix = np.linalg.inv(camera_to_srgb) @ np.linalg.inv(SRGB_TO_XYZ.astype(np.float64))
    return matrix.astype(np.float32)


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
        color_matrix=_xyz_to_camera(raw),
        size=(mosaic.shape[0], mosaic.shape[1]),
    )


def read_raw(path: str | Path, max_megapixels: float = DEFAULT_MAX_MEGAPIXELS) -> RawImage:
    """Read any 2x2 Bayer RAW file LibRaw knows (DNG, NEF, CR2, ARW, KDC, ...).

    The size check uses the full raw area (margins included, what unpacking allocates) from the metadata
    LibRaw parses on opening; the samples are unpacked only when ``_from_rawpy`` reads them.
    """
    path = Path(path)
    check_file(path, RawReadError)
    try:
        with rawpy.imread(str(path)) as raw:
            sizes = raw.sizes
            check_frame_size(path, sizes.raw_width, sizes.raw_height, max_megapixels, RawReadError)
            return _from_rawpy(path, raw)
    except rawpy.LibRawError as error:
        cause = error.args[0] if error.args else ""
        if isinstance(cause, bytes):  # LibRaw's messages come as bytes
            cause = cause.decode(errors="replace")
        raise RawReadError(f"{path}: LibRaw cannot read it ({type(error).__name__}: {cause})") from error


def read_zrr_raw(path: str | Path, max_megapixels: float = DEFAULT_MAX_MEGAPIXELS) -> np.ndarray:
    """A Zurich RAW-to-RGB raw PNG as canonical packed (H/2, W/2, 4) float32, exactly as reference PyNET.

    The reference loader packs ``(B, Gb, R, Gr) = (raw[1::2, 1::2], raw[0::2, 1::2], raw[0::2, 0::2],
    raw[1::2, 0::2])`` and divides by 4 * 255. Its "Gb" at (0, 1) shares the row with red, so it is our Gr,
    and its "Gr" at (1, 0) is our Gb: the sensor is RGGB, and the planes here are (R, Gr, Gb, B) = (its R,
    its Gb, its Gr, its B). No clipping, like the reference: 10-bit values reach 1023 / 1020 = 1.0029.
    """
    path = Path(path)
    check_file(path, RawReadError)
    with open_image(path, RawReadError, max_megapixels) as image:
        if image.mode not in _MODES_16BIT:
            raise RawReadError(f"{path}: not a 16-bit single-channel mosaic (image mode {image.mode!r})")
        mosaic = decode_image(image, path, RawReadError, channels=1)
    try:
        # libpng's (H, W, 1), or Pillow's (H, W) for another format
        planes = bayer.split(mosaic.reshape(mosaic.shape[:2]), "RGGB")
    except ValueError as error:
        raise RawReadError(f"{path}: {error}") from error
    return planes.astype(np.float32) / ZRR_SCALE
