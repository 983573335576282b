"""Reading RGB photos (targets, and the photos synthetic RAW is made from) at their full bit depth, and
encoding results as PNG (8 or 16 bit) or JPEG.

DSLR targets are often 16-bit PNG or TIFF. Pillow opens 16-bit RGB files as 8-bit "RGB", silently dropping
the low byte, so PNGs are decoded by TensorFlow (8 and 16 bit) and TIFFs by tifffile; JPEG and BMP, 8-bit
formats, by Pillow. Every failure is one ``PhotoReadError`` naming the file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf
import tifffile
from PIL import Image

from pynet_tf.data.rawio import PILLOW_ERRORS


class PhotoReadError(OSError):
    """A photo that cannot be read as an RGB image; the message names the file and the cause."""


def read_photo(path: str | Path) -> np.ndarray:
    """An RGB photo as float32 (H, W, 3) in [0, 1]: grey becomes RGB, alpha is dropped."""
    path = Path(path)
    try:
        if path.suffix.lower() == ".png":
            # decode_png widens 8-bit files exactly (v * 257 / 65535 == v / 255)
            array = tf.io.decode_png(tf.io.read_file(str(path)), channels=3, dtype=tf.uint16).numpy()
        elif path.suffix.lower() in (".tif", ".tiff"):
            array = tifffile.imread(path)
        else:
            with Image.open(path) as image:
                array = np.asarray(image)
    except (tf.errors.OpError, tifffile.TiffFileError, *PILLOW_ERRORS) as error:
        raise PhotoReadError(
            f"{path}: cannot read the photo ({error.__class__.__name__}: {error})"
        ) from error
    return _as_rgb(array, path)


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
