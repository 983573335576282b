"""Photos at full bit depth: 16-bit PNG and TIFF keep their low byte, 8-bit formats scale exactly,
and every unreadable file is one PhotoReadError naming it."""

import numpy as np
import pytest
import tensorflow as tf
import tifffile
from PIL import Image
from test_rawio import one_line_error, png16_bytes

from pynet_tf.data.photoio import PhotoReadError, read_photo
from pynet_tf.data.rawio import DEFAULT_MAX_MEGAPIXELS

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


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_a_png_missing_rows_is_refused_whatever_its_suffix(tmp_path, suffix):
    """The decoder follows the content: under .jpg this PNG went to Pillow, which zero-fills missing rows."""
    path = tmp_path / f"short{suffix}"
    path.write_bytes(png16_bytes(64, 64, rows=20))
    one_line_error(read_photo, path, error_type=PhotoReadError, match="truncated or corrupt PNG data")


@pytest.mark.parametrize("compression", [None, "zlib"])
def test_a_cut_tiff_is_refused_as_truncated(tmp_path, compression):
    """A cut deflate strip escaped as a bare zlib.error traceback."""
    whole = tmp_path / "whole.tif"
    tifffile.imwrite(whole, RGB16, photometric="rgb", compression=compression)
    path = tmp_path / "cut.tif"
    path.write_bytes(whole.read_bytes()[:-40])
    one_line_error(read_photo, path, error_type=PhotoReadError, match="truncated or corrupt TIFF data")


def test_a_bogus_header_is_refused_before_decoding(tmp_path):
    path = tmp_path / "bogus.png"
    path.write_bytes(png16_bytes(12000, 12000, rows=0))
    message = one_line_error(
        read_photo, path, error_type=PhotoReadError, match=r"declares 12000x12000 pixels \(144 MP\)"
    )
    assert f"limit of {DEFAULT_MAX_MEGAPIXELS} MP" in message


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".bmp", ".tif"])
def test_a_photo_over_a_lowered_cap_is_refused_and_passes_when_raised(tmp_path, suffix):
    """7 x 6 is 42 pixels: the cap is checked on every format's declared size."""
    path = tmp_path / f"photo{suffix}"
    Image.fromarray(RGB8).save(path)
    one_line_error(
        read_photo,
        path,
        error_type=PhotoReadError,
        match=r"declares 7x6 pixels \(4.2e-05 MP\), over the limit of 4e-05 MP",
        max_megapixels=4e-5,
    )
    np.testing.assert_array_equal(read_photo(path, max_megapixels=5e-5), read_photo(path))
