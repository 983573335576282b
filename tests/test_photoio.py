"""Photos at full bit depth: 16-bit PNG and TIFF keep their low byte, 8-bit formats scale exactly,
and every unreadable file is one PhotoReadError naming it."""

import numpy as np
import pytest
import tensorflow as tf
import tifffile
from PIL import Image

from pynet_tf.data.photoio import PhotoReadError, read_photo

RNG = np.random.default_rng(0)
RGB16 = RNG.integers(0, 65536, size=(6, 7, 3), dtype=np.uint16)
RGB8 = RNG.integers(0, 256, size=(6, 7, 3), dtype=np.uint8)


def test_16_bit_png_keeps_every_bit(tmp_path):
    path = tmp_path / "target.png"
    path.write_bytes(tf.io.encode_png(RGB16).numpy())
    np.testing.assert_array_equal(read_photo(path), RGB16.astype(np.float32) / 65535)


def test_16_bit_tiff_keeps_every_bit(tmp_path):
    tifffile.imwrite(tmp_path / "target.tif", RGB16, photometric="rgb")
    np.testing.assert_array_equal(read_photo(tmp_path / "target.tif"), RGB16.astype(np.float32) / 65535)


@pytest.mark.parametrize("suffix", [".png", ".bmp", ".tiff"])
def test_8_bit_files_scale_to_the_same_values(tmp_path, suffix):
    path = tmp_path / f"photo{suffix}"
    Image.fromarray(RGB8).save(path)
    # float32 division, so 1e-7 (one ulp near 1) covers the PNG path's exact widening v * 257 / 65535
    np.testing.assert_allclose(read_photo(path), RGB8.astype(np.float32) / 255, atol=1e-7)


def test_grey_becomes_rgb_and_alpha_is_dropped(tmp_path):
    Image.fromarray(RGB8[..., 0]).save(tmp_path / "grey.png")
    np.testing.assert_allclose(
        read_photo(tmp_path / "grey.png"), np.repeat(RGB8[..., :1] / 255, 3, -1), atol=1e-7
    )
    rgba = np.concatenate([RGB8, np.zeros_like(RGB8[..., :1])], axis=-1)
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    np.testing.assert_allclose(read_photo(tmp_path / "rgba.png"), RGB8 / 255, atol=1e-7)


@pytest.mark.parametrize(
    "name, content",
    [
        ("missing.png", None),
        ("empty.png", b""),
        ("truncated.png", b"\x89PNG\r\n\x1a\n\x00\x00"),
        ("random.tif", bytes(RNG.integers(0, 256, 300, dtype=np.uint8))),
        ("random.jpg", bytes(RNG.integers(0, 256, 300, dtype=np.uint8))),
    ],
)
def test_unreadable_files_name_themselves(tmp_path, name, content):
    if content is not None:
        (tmp_path / name).write_bytes(content)
    with pytest.raises(PhotoReadError, match=name):
        read_photo(tmp_path / name)
