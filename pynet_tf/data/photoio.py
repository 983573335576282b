"""Reading RGB photos (targets, and the photos synthetic RAW is made from) at their full bit depth, and
encoding results as PNG (8 or 16 bit) or JPEG.

DSLR targets are often 16-bit PNG or TIFF. Pillow opens 16-bit RGB files as 8-bit "RGB", silently dropping
the low byte, so TIFFs (by their suffix) are decoded by tifffile, and everything else by the readers' common
rule (``pynet_tf.data.rawio``): PNGs by libpng (8 and 16 bit), JPEG and BMP, 8-bit formats, by Pillow; each
frame's size checked from its header first. Every failure is one ``PhotoReadError`` naming the file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf
import tifffile

from pynet_tf.data.rawio import (
    DEFAULT_MAX_MEGAPIXELS,
    check_file,
    check_frame_size,
    damaged,
    decode_image,
    open_image,
)

TIFF_SUFFIXES = (".tif", ".tiff")


class PhotoReadError(OSError):
    """A photo that cannot be read as an RGB image; the message names the file and the cause."""


def read_photo(path: str | Path, max_megapixels: float = DEFAULT_MAX_MEGAPIXELS) -> np.ndarray:
    """An RGB photo as float32 (H, W, 3) in [0, 1]: grey becomes RGB, alpha is dropped."""
    path = Path(path)
    check_file(path, PhotoReadError)
    if path.suffix.lower() in TIFF_SUFFIXES:
        return _as_rgb(_read_tiff(path, max_megapixels), path)
    with open_image(path, PhotoReadError, max_megapixels) as image:
        # a PNG's 8-bit samples are widened exactly (v * 257 / 65535 == v / 255)
        return _as_rgb(decode_image(image, path, PhotoReadError, channels=3), path)


def _read_tiff(path: Path, max_megapixels: float) -> np.ndarray:
    """The first series, as ``tifffile.imread`` reads it, once its first page's size is within the cap."""
    try:
        with tifffile.TiffFile(path) as tiff:
            page = tiff.series[0].keyframe
            check_frame_size(path, page.imagewidth, page.imagelength, max_megapixels, PhotoReadError)
            return tiff.asarray()
    except (PhotoReadError, MemoryError):
        raise
    except Exception as error:  # tifffile parses in Python: a damaged file can raise any type
        raise PhotoReadError(damaged(path, "TIFF", error)) from error


def _as_rgb(array: np.ndarray, path: Path) -> np.ndarray:
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=-1)
    if array.ndim != 3 or array.shape[-1] < 3 or array.size == 0:
        raise PhotoReadError(f"{path}: expected an RGB or grey image, got an array of shape {array.shape}")
    array = array[..., :3]
    if array.dtype == np.uint8:
        return array.astype(np.float32) / 255.0
    if array.dtype == np.uint16:
        return array.astype(np.float32) / 65535.0
    if array.dtype.kind == "f":
        return np.clip(array, 0.0, 1.0).astype(np.float32)
    raise PhotoReadError(f"{path}: unsupported sample type {array.dtype} (expected 8 or 16 bit, or float)")


def encode_photo(rgb: np.ndarray, format: str = "png", bits: int = 8, quality: int = 95) -> bytes:
    """float (H, W, 3) -> PNG (8 or 16 bit) or JPEG bytes; values are clipped to [0, 1] and rounded."""
    top = 65535 if bits == 16 else 255
    # in place, in chunks of rows: no full-size float64 temporaries beside the output image
    quantized = np.empty(rgb.shape, np.uint16 if bits == 16 else np.uint8)
    for row in range(0, rgb.shape[0], 256):
        chunk = np.clip(rgb[row : row + 256], 0.0, 1.0) * np.float32(top)
        quantized[row : row + 256] = np.rint(chunk)
    if format == "jpg":
        return tf.io.encode_jpeg(quantized, quality=quality).numpy()
    return tf.io.encode_png(quantized).numpy()
