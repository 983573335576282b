"""Camera RAW (real KDC file, DNGs written here) and ZRR PNG reading; every bad file is one RawReadError."""

import faulthandler
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
import rawpy
import tifffile
from PIL import Image

from pynet_tf.alignment.synthetic import write_dng
from pynet_tf.data.bayer import PATTERNS, channel_offsets, unpack
from pynet_tf.data.rawio import (
    DEFAULT_MAX_MEGAPIXELS,
    ZRR_SCALE,
    RawImage,
    RawReadError,
    read_raw,
    read_zrr_raw,
)

KDC = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "third_party" / "RAW_KODAK_DC50.KDC"

# pack computes in float64 and rounds once to float32: half an ulp, 2**-24 relative, at most.
F32_RTOL = 2.0**-24
# LibRaw keeps white-balance multipliers (1 / AsShotNeutral) in float32.
LIBRAW_WB_RTOL = 1e-6
# Every fuzz case is a small file (at most the 92 KB KDC), which LibRaw and Pillow read in milliseconds;
# this watchdog only turns a hang into a traceback and a failed run instead of a stuck CI job.
HANG_GUARD_S = 60


def _reference_zrr(raw: np.ndarray) -> np.ndarray:
    """Reference PyNET's extract_bayer_channels, reordered from its (B, Gb, R, Gr) to (R, Gr, Gb, B)."""
    ch_b, ch_gb, ch_r, ch_gr = raw[1::2, 1::2], raw[0::2, 1::2], raw[0::2, 0::2], raw[1::2, 0::2]
    reference = np.dstack((ch_b, ch_gb, ch_r, ch_gr)).astype(np.float32) / (4 * 255)
    return reference[..., [2, 1, 3, 0]]


def _write_png16(path: Path, mosaic: np.ndarray) -> Path:
    Image.fromarray(mosaic.astype(np.uint16)).save(path)
    return path


def png16_bytes(width: int, height: int, rows: int) -> bytes:
    """A 16-bit grey PNG whose header declares ``width`` x ``height`` but whose IDAT holds ``rows`` rows
    (of the sample 300); every chunk is well formed, so only the row count is wrong when ``rows < height``."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 16, 0, 0, 0, 0)  # 16-bit grey, not interlaced
    scanlines = (b"\x00" + np.full(width, 300, ">u2").tobytes()) * rows  # each: filter type 0, samples
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(scanlines))
        + chunk(b"IEND", b"")
    )


@pytest.fixture(scope="module")
def kdc() -> RawImage:
    assert KDC.is_file(), f"the shared test data is missing: {KDC} (CI has ../shared beside the clone)"
    return read_raw(KDC)


def test_kdc_metadata(kdc):
    assert kdc.pattern == "GRBG"
    assert kdc.size == (512, 768) and kdc.mosaic.shape == (512, 768) and kdc.mosaic.dtype == np.uint16
    assert kdc.white_level == 16383
    assert kdc.black_levels == (0.0, 0.0, 0.0, 0.0)
    assert kdc.white_balance == (1.0, 1.0, 1.0)
    assert kdc.color_matrix.shape == (3, 3)
    assert not kdc.mosaic.flags.writeable


def test_kdc_mosaic_and_packing_match_direct_slicing(kdc):
    with rawpy.imread(str(KDC)) as raw:
        visible = raw.raw_image_visible.copy()
    np.testing.assert_array_equal(kdc.mosaic, visible)
    packed = kdc.packed()
    assert packed.shape == (256, 384, 4) and packed.dtype == np.float32
    assert packed.min() >= 0.0 and packed.max() <= 1.0
    # GRBG: green of the red row at (0, 0), red at (0, 1), blue at (1, 0), green of the blue row at (1, 1).
    for channel, (row, col) in enumerate([(0, 1), (0, 0), (1, 1), (1, 0)]):
        direct = visible[row::2, col::2] / 16383.0  # black level 0
        np.testing.assert_allclose(packed[..., channel], direct, rtol=F32_RTOL)
        assert packed[..., channel].mean() == pytest.approx(direct.mean(), rel=1e-6)  # float32 sum of 98k


@pytest.mark.parametrize("pattern", PATTERNS)
def test_dng_of_each_pattern_reads_back_exactly(tmp_path, pattern):
    black_tile = (64, 65, 66, 67)  # one level per tile position, to see them reordered
    rng = np.random.default_rng(3)
    mosaic = rng.integers(67, 4095, size=(32, 48), endpoint=True, dtype=np.uint16)
    image = read_raw(write_dng(tmp_path / f"{pattern}.dng", mosaic, pattern, black_tile))
    assert image.pattern == pattern
    np.testing.assert_array_equal(image.mosaic, mosaic)
    expected_black = tuple(float(black_tile[2 * row + col]) for row, col in channel_offsets(pattern))
    assert image.black_levels == expected_black
    assert image.white_level == 4095
    np.testing.assert_allclose(image.white_balance, (2.0, 1.0, 3.0), rtol=LIBRAW_WB_RTOL)
    restored = unpack(image.packed(), pattern, image.black_levels, image.white_level)
    np.testing.assert_array_equal(restored, mosaic)


@pytest.mark.parametrize(
    ("name", "cfa", "repeat"),
    [("rgbg", "RGBG", 2), ("cmyg", "GMCY", 2), ("xtrans", "GGRRBBRRBBGGRBRGGGBBGRRGRGBRBBBGRBGG", 6)],
)
def test_non_bayer_dng_is_refused(tmp_path, name, cfa, repeat):
    path = write_dng(tmp_path / f"{name}.dng", np.zeros((36, 48), np.uint16), cfa, repeat=repeat)
    with pytest.raises(RawReadError, match="not a 2x2 Bayer sensor") as error:
        read_raw(path)
    assert str(path) in str(error.value)


def test_linear_dng_is_refused(tmp_path):
    path = tmp_path / "linear.dng"
    tifffile.imwrite(
        path,
        np.zeros((64, 96, 3), np.uint16),
        photometric=34892,
        subfiletype=0,
        extratags=[(50706, 1, 4, (1, 4, 0, 0), True), (50708, 2, 0, "pynet-tf test", True)],
    )
    with pytest.raises(RawReadError, match=r"not a 2x2 Bayer sensor \(CFA pattern none"):
        read_raw(path)


def _bad_file(directory: Path, kind: str) -> Path:
    if kind == "missing":
        return directory / "missing.dng"
    if kind == "directory":
        return directory
    path = directory / f"{kind}.dng"
    path.write_bytes(b"" if kind == "empty" else b"not an image\n")
    return path


@pytest.mark.parametrize("reader", [read_raw, read_zrr_raw])
@pytest.mark.parametrize(
    ("kind", "cause"),
    [
        ("missing", "no such file"),
        ("directory", "is a directory"),
        ("empty", "empty file"),
        ("text", "cannot"),
    ],
)
def test_unreadable_files_raise_one_error_naming_file_and_cause(tmp_path, reader, kind, cause):
    path = _bad_file(tmp_path, kind)
    with pytest.raises(RawReadError, match=cause) as error:
        reader(path)
    assert str(path) in str(error.value)


def _fuzz_cases(directory: Path) -> list[Path]:
    """Random bytes (empty to 64 KiB, several seeds), and the KDC cut at 60 lengths from 0 to one short."""
    cases = []
    for seed in range(4):
        for size in (0, 1, 16, 1024, 65536):
            path = directory / f"random_{seed}_{size}.raw"
            path.write_bytes(np.random.default_rng(seed).bytes(size))
            cases.append(path)
    data = KDC.read_bytes()
    for length in np.linspace(0, len(data) - 1, 60, dtype=int):
        path = directory / f"cut_{length}.kdc"
        path.write_bytes(data[:length])
        cases.append(path)
    return cases


@pytest.mark.parametrize("reader", [read_raw, read_zrr_raw])
def test_fuzzed_files_raise_only_raw_read_error(tmp_path, reader):
    outcomes = set()
    for path in _fuzz_cases(tmp_path):
        faulthandler.dump_traceback_later(HANG_GUARD_S, exit=True)
        try:
            result = reader(path)
            outcomes.add(type(result).__name__)  # a truncation LibRaw still decodes: a whole image
        except RawReadError as error:
            assert path.name in str(error)
            outcomes.add("RawReadError")
        finally:
            faulthandler.cancel_dump_traceback_later()
    # Today LibRaw and Pillow refuse every one of these cases; a decoded one must at least be well formed.
    assert "RawReadError" in outcomes and outcomes <= {"RawReadError", "RawImage", "ndarray"}


def test_sixteen_bit_png_values_survive_decoding(tmp_path):
    known = np.array([[0, 1, 255, 256], [1023, 4096, 32768, 65535]], dtype=np.uint16)
    path = _write_png16(tmp_path / "known.png", known)
    with Image.open(path) as image:
        assert image.mode == "I;16"
    packed = read_zrr_raw(path)
    np.testing.assert_array_equal(packed, _reference_zrr(known))  # exact: the same float32 division
    # Gr of the second tile is 256, B is 65535: both beyond 8 bits, so 16 bits survived decoding.
    assert packed[0, 1, 1] == np.float32(256) / np.float32(1020)
    assert packed[0, 1, 3] == np.float32(65535) / np.float32(1020)


def test_zrr_matches_the_reference_loader(tmp_path):
    raw = np.random.default_rng(11).integers(0, 1024, size=(448, 448), dtype=np.uint16)  # 10-bit, as ZRR
    packed = read_zrr_raw(_write_png16(tmp_path / "0.png", raw))
    assert packed.shape == (224, 224, 4) and packed.dtype == np.float32
    np.testing.assert_array_equal(packed, _reference_zrr(raw))  # exact: the same float32 division
    assert packed.max() > 1.0  # not clipped, as the reference


@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_zrr_refuses_images_that_are_not_16_bit_mosaics(tmp_path, mode):
    path = tmp_path / f"{mode}.png"
    Image.new(mode, (8, 8)).save(path)
    with pytest.raises(RawReadError, match=f"not a 16-bit single-channel mosaic \\(image mode '{mode}'\\)"):
        read_zrr_raw(path)


def one_line_error(reader, path: Path, match: str, error_type: type = RawReadError, **cap) -> str:
    """The one-line message ``reader`` refuses ``path`` with (``error_type``, naming the file first)."""
    with pytest.raises(error_type, match=match) as error:
        reader(path, **cap)
    message = str(error.value)
    assert message.startswith(f"{path}: ") and "\n" not in message
    return message


@pytest.mark.parametrize("cut", ["half", "no IEND"])
def test_zrr_png_cut_short_is_refused_as_truncated(tmp_path, cut):
    """A copy cut short must not reach the model: Pillow read a PNG missing only its IEND chunk as whole."""
    data = _write_png16(tmp_path / "whole.png", np.arange(224 * 224).reshape(224, 224) % 1024).read_bytes()
    path = tmp_path / "cut.png"
    path.write_bytes(data[: len(data) // 2] if cut == "half" else data[:-12])
    message = one_line_error(read_zrr_raw, path, "truncated or corrupt PNG data")
    assert "copy the file again" in message


def test_zrr_png_with_fewer_rows_than_its_header_is_refused(tmp_path):
    """Pillow zero-filled the 124 missing rows of this file and raised nothing."""
    path = tmp_path / "short.png"
    path.write_bytes(png16_bytes(224, 224, rows=100))
    one_line_error(read_zrr_raw, path, "truncated or corrupt PNG data")
    path.write_bytes(png16_bytes(224, 224, rows=224))  # the same file whole reads: only the rows were wrong
    np.testing.assert_array_equal(read_zrr_raw(path), np.full((112, 112, 4), np.float32(300) / ZRR_SCALE))


def test_a_bogus_header_is_refused_before_decoding(tmp_path):
    """A tiny file declaring 12000 x 12000 ran as a 144 MP frame (2.2 GB); the header alone now refuses it."""
    path = tmp_path / "bogus.png"
    path.write_bytes(png16_bytes(12000, 12000, rows=0))
    assert path.stat().st_size < 100
    message = one_line_error(read_zrr_raw, path, r"declares 12000x12000 pixels \(144 MP\)")
    assert f"limit of {DEFAULT_MAX_MEGAPIXELS} MP" in message and "--max-megapixels" in message


def test_raising_the_cap_past_pillows_own_guard_reaches_the_decoder(tmp_path):
    """The cap is the only size guard: Pillow's (a warning from 89 MP, an error from 179 MP) would overrule
    a raised --max-megapixels. This 182 MP header then fails where it should, on its missing rows."""
    path = tmp_path / "bogus.png"
    path.write_bytes(png16_bytes(13500, 13500, rows=0))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        one_line_error(read_zrr_raw, path, "truncated or corrupt PNG data", max_megapixels=200)


@pytest.mark.parametrize("reader", [read_raw, read_zrr_raw])
def test_a_frame_over_a_lowered_cap_is_refused_and_passes_when_raised(tmp_path, reader):
    """32 x 48 is 0.001536 MP: the cap is checked on the declared size of both kinds of RAW input."""
    mosaic = np.random.default_rng(5).integers(0, 1024, size=(32, 48), dtype=np.uint16)
    if reader is read_raw:
        path = write_dng(tmp_path / "small.dng", mosaic, "RGGB")
    else:
        path = _write_png16(tmp_path / "small.png", mosaic)
    message = one_line_error(reader, path, r"declares 48x32 pixels \(0.00154 MP\)", max_megapixels=0.0015)
    assert "limit of 0.0015 MP" in message and "--max-megapixels" in message
    raised = reader(path, max_megapixels=0.0016)
    default = reader(path)
    if reader is read_raw:
        raised, default = raised.mosaic, default.mosaic
    np.testing.assert_array_equal(raised, default)
