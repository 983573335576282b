"""The canonical packed layout (R, Gr, Gb, B), packing and unpacking of the four 2x2 Bayer patterns."""

import logging

import numpy as np
import pytest

from pynet_tf.data import bayer
from pynet_tf.data.bayer import CHANNELS, PATTERNS, UnsupportedCFAError, channel_offsets, pack, unpack

# pack computes in float64 and rounds once to float32: half an ulp, 2**-24 relative, at most.
F32_RTOL = 2.0**-24


def _channel_codes(pattern: str) -> np.ndarray:
    """The 2x2 tile of ``pattern`` as canonical channel numbers 1..4, worked out from the letters alone.

    A green is Gr when the other sample of its row is red, Gb when it is blue; independent of CFA_OFFSETS.
    """
    tile = np.array(list(pattern)).reshape(2, 2)
    codes = np.zeros((2, 2), dtype=np.uint16)
    for row in range(2):
        for col in range(2):
            letter = tile[row, col]
            if letter == "G":
                letter = "Gr" if "R" in tile[row] else "Gb"
            codes[row, col] = CHANNELS.index(letter) + 1
    return codes


@pytest.mark.parametrize("pattern", PATTERNS)
def test_each_colour_lands_in_its_canonical_channel(pattern):
    mosaic = np.tile(_channel_codes(pattern), (3, 5))  # every sample holds its own channel number
    packed = pack(mosaic, pattern, black_level=0, white_level=4)
    assert packed.shape == (3, 5, 4) and packed.dtype == np.float32
    for channel in range(4):  # exact: k / 4 is exact in binary floating point
        assert np.all(packed[..., channel] == (channel + 1) / 4), (pattern, CHANNELS[channel])


@pytest.mark.parametrize("pattern", PATTERNS)
def test_offsets_table_agrees_with_the_pattern_letters(pattern):
    codes = _channel_codes(pattern)
    assert [codes[row, col] for row, col in channel_offsets(pattern)] == [1, 2, 3, 4]


@pytest.mark.parametrize("pattern", PATTERNS)
@pytest.mark.parametrize(("black", "white"), [(0, 65535), (64, 1023), ((60, 61, 62, 63), 4095)])
def test_unpack_inverts_pack_exactly(pattern, black, white):
    rng = np.random.default_rng(7)
    mosaic = rng.integers(np.max(black), white, size=(12, 18), endpoint=True).astype(np.uint16)
    packed = pack(mosaic, pattern, black, white)
    assert packed.min() >= 0.0 and packed.max() <= 1.0
    restored = unpack(packed, pattern, black, white)
    assert restored.dtype == np.uint16
    np.testing.assert_array_equal(restored, mosaic)


@pytest.mark.parametrize("pattern", PATTERNS)
def test_per_channel_black_levels_are_in_canonical_order(pattern):
    black = (10.0, 20.0, 30.0, 40.0)  # R, Gr, Gb, B
    mosaic = np.full((4, 6), 100, dtype=np.uint16)
    packed = pack(mosaic, pattern, black, white_level=110)
    for channel, level in enumerate(black):
        np.testing.assert_allclose(packed[..., channel], (100 - level) / (110 - level), rtol=F32_RTOL)


def test_out_of_range_values_are_clipped():
    mosaic = np.array([[0, 50], [5000, 4095]], dtype=np.uint16)  # R, Gr below black; Gb above white; B white
    packed = pack(mosaic, "RGGB", black_level=64, white_level=4095)
    assert packed.tolist() == [[[0.0, 0.0, 1.0, 1.0]]]
    assert unpack(np.array([[[-0.5, 2.0, 0.0, 1.0]]]), "RGGB", 64, 4095).tolist() == [[64, 4095], [64, 4095]]


def test_odd_sizes_are_cropped_and_reported(caplog):
    mosaic = np.arange(5 * 7, dtype=np.uint16).reshape(5, 7)
    with caplog.at_level(logging.WARNING, logger="pynet_tf.data.bayer"):
        packed = pack(mosaic, "BGGR", black_level=0, white_level=100)
    assert packed.shape == (2, 3, 4)
    np.testing.assert_array_equal(unpack(packed, "BGGR", 0, 100), mosaic[:4, :6])
    (record,) = caplog.records
    assert record.levelno == logging.WARNING
    assert "5x7" in record.getMessage() and "1 row(s) and 1 column(s)" in record.getMessage()


def test_even_sizes_log_nothing(caplog):
    with caplog.at_level(logging.WARNING, logger="pynet_tf.data.bayer"):
        pack(np.zeros((4, 4), dtype=np.uint16), "RGGB", 0, 1)
    assert not caplog.records


@pytest.mark.parametrize("pattern", ["XTRANS", "RGBW", "RYYB", "QUADBAYER", "RGBG", "GGRB", "CMYG", "", 42])
def test_other_cfa_patterns_are_refused_by_name(pattern):
    with pytest.raises(UnsupportedCFAError, match="RGGB, BGGR, GRBG, GBRG") as error:
        pack(np.zeros((4, 4), dtype=np.uint16), pattern, 0, 1)
    assert repr(pattern) in str(error.value)
    assert isinstance(error.value, ValueError)


def test_lowercase_pattern_is_the_same_pattern():
    assert channel_offsets("grbg") == channel_offsets("GRBG")


@pytest.mark.parametrize(
    ("mosaic", "black", "white", "message"),
    [
        (np.zeros((2, 2, 2)), 0, 1, "2-D"),
        (np.zeros(8), 0, 1, "2-D"),
        (np.zeros((0, 0)), 0, 1, "2x2 tile"),
        (np.zeros((1, 6)), 0, 1, "2x2 tile"),
        (np.zeros((4, 4)), 100, 100, "white_level"),
        (np.zeros((4, 4)), (0, 0, 0, 200), 100, "white_level"),
        (np.zeros((4, 4)), 0, float("nan"), "white_level"),
        (np.zeros((4, 4)), (0, 0, 0), 100, "4 values"),
    ],
)
def test_bad_inputs_raise_clear_value_errors(mosaic, black, white, message):
    with pytest.raises(ValueError, match=message):
        pack(mosaic, "RGGB", black, white)


@pytest.mark.parametrize("packed", [np.zeros((2, 2, 3)), np.zeros((0, 2, 4)), np.full((1, 1, 4), np.nan)])
def test_unpack_refuses_what_pack_cannot_produce(packed):
    with pytest.raises(ValueError, match="packed Bayer image"):
        unpack(packed, "RGGB", 0, 1)


def test_reference_channel_order_is_the_reference_loaders_packing():
    """The reference PyNET / MicroISP loaders stack (raw[1::2, 1::2], raw[0::2, 1::2], raw[0::2, 0::2],
    raw[1::2, 0::2]) of the mosaic; our canonical split permuted by the "reference" order is exactly that."""
    raw = np.random.default_rng(0).integers(0, 1024, (6, 8)).astype(np.uint16)
    theirs = np.dstack((raw[1::2, 1::2], raw[0::2, 1::2], raw[0::2, 0::2], raw[1::2, 0::2]))
    order = bayer.parse_channel_order("reference")
    assert np.array_equal(bayer.split(raw, "RGGB")[..., list(bayer.channel_permutation(order))], theirs)
    assert bayer.parse_channel_order("canonical") == CHANNELS
    assert bayer.parse_channel_order(" b, gr ,R,GB") == ("B", "Gr", "R", "Gb")


@pytest.mark.parametrize("text", ["R,G,B", "R,Gr,Gr,B", "R,Gr,Gb,B,B", "rggb", ""])
def test_a_channel_order_that_is_no_permutation_is_refused(text):
    with pytest.raises(ValueError, match="each once, comma-separated"):
        bayer.parse_channel_order(text)
