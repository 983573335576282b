"""The project's one packed Bayer layout, and packing/unpacking of 2x2 Bayer mosaics into it.

Canonical packed layout (every reader maps its sensor into it, every model input is in it):

    packed[..., 0] = R    the red sample of each 2x2 tile
    packed[..., 1] = Gr   the green on the red rows
    packed[..., 2] = Gb   the green on the blue rows
    packed[..., 3] = B    the blue sample

shape (H/2, W/2, 4), float32, (x - black) / (white - black) clipped to [0, 1]. With this order,
``depth_to_space(packed, 2)`` is an RGGB mosaic, whatever the sensor's own pattern was.

A pattern string names the colours of the 2x2 tile in reading order (0,0), (0,1), (1,0), (1,1): "GRBG" has
green at the top left and red at the top right. ``CFA_OFFSETS`` is the one home of where each canonical
channel sits inside the tile. Only the four 2x2 Bayer patterns exist here: X-Trans, Quad Bayer, RYYB or
RGBW sensors need another packing and another network input, so they are refused, not guessed at.

Per-channel black levels are always given in the canonical order (R, Gr, Gb, B), the same order as the
packed channels, whatever the pattern; a scalar applies to all four. (rawpy's ``black_level_per_channel``
is indexed by colour index through ``raw_pattern``, not by this order: ``rawio`` converts it.)

Numpy only: this module runs in readers, tests and tools that need no TensorFlow.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

CHANNELS: tuple[str, str, str, str] = ("R", "Gr", "Gb", "B")

Offset = tuple[int, int]

# (row, col) inside the 2x2 tile of each canonical channel, in CHANNELS order.
CFA_OFFSETS: dict[str, tuple[Offset, Offset, Offset, Offset]] = {
    "RGGB": ((0, 0), (0, 1), (1, 0), (1, 1)),
    "BGGR": ((1, 1), (1, 0), (0, 1), (0, 0)),
    "GRBG": ((0, 1), (0, 0), (1, 1), (1, 0)),
    "GBRG": ((1, 0), (1, 1), (0, 0), (0, 1)),
}
PATTERNS: tuple[str, ...] = tuple(CFA_OFFSETS)

# Other networks' packed channel orders, in the canonical channel names. "reference": the order of the
# reference PyNET / PyNET-V2 / MicroISP loaders (aiff22), which stack raw[1::2, 1::2], raw[0::2, 1::2],
# raw[0::2, 0::2], raw[1::2, 0::2] of an RGGB mosaic and call the two greens "Gb" and "Gr" the other way round
# from us (see rawio.read_zrr_raw).
CHANNEL_ORDERS: dict[str, tuple[str, str, str, str]] = {
    "canonical": CHANNELS,
    "reference": ("B", "Gr", "R", "Gb"),
}

BlackLevel = float | Sequence[float]

_log = logging.getLogger(__name__)


class UnsupportedCFAError(ValueError):
    """A colour filter array that is not one of the four 2x2 Bayer patterns."""

    def __init__(self, pattern: object) -> None:
        super().__init__(
            f"unsupported CFA pattern {pattern!r}: only the 2x2 Bayer patterns {', '.join(PATTERNS)} are "
            "supported (X-Trans, Quad Bayer, RYYB, RGBW and other sensors need their own packing)"
        )
        self.pattern = pattern


def channel_offsets(pattern: str) -> tuple[Offset, Offset, Offset, Offset]:
    """(row, col) in the 2x2 tile of R, Gr, Gb, B for ``pattern``; refuses anything but the four."""
    if not isinstance(pattern, str) or pattern.upper() not in CFA_OFFSETS:
        raise UnsupportedCFAError(pattern)
    return CFA_OFFSETS[pattern.upper()]


def parse_channel_order(text: str) -> tuple[str, str, str, str]:
    """A network's packed channel order: a name of ``CHANNEL_ORDERS`` or the four canonical channel names
    comma-separated in its order (``B,Gr,R,Gb``); anything else is one error naming the choices."""
    if text.strip().lower() in CHANNEL_ORDERS:
        return CHANNEL_ORDERS[text.strip().lower()]
    names = tuple(part.strip() for part in text.split(","))
    by_case = {name.lower(): name for name in CHANNELS}
    order = tuple(by_case.get(name.lower(), name) for name in names)
    if sorted(order) != sorted(CHANNELS):
        raise ValueError(
            f"channel order {text!r}: give {' or '.join(CHANNEL_ORDERS)}, or the four packed channels "
            f"{', '.join(CHANNELS)} each once, comma-separated in the network's order (e.g. B,Gr,R,Gb)"
        )
    return order  # type: ignore[return-value]


def channel_permutation(order: tuple[str, ...]) -> tuple[int, int, int, int]:
    """Indices such that ``packed[..., indices]`` holds canonical packed channels in ``order``."""
    return tuple(CHANNELS.index(name) for name in order)  # type: ignore[return-value]


def split(mosaic: np.ndarray, pattern: str) -> np.ndarray:
    """The mosaic's samples as canonical (H/2, W/2, 4) planes, dtype and values unchanged.

    An odd last row or column has no complete 2x2 tile, so it is dropped, with a warning saying how much.
    """
    offsets = channel_offsets(pattern)
    mosaic = np.asarray(mosaic)
    if mosaic.ndim != 2:
        raise ValueError(f"a Bayer mosaic is a 2-D array, got shape {mosaic.shape}")
    height, width = mosaic.shape
    if height < 2 or width < 2:
        raise ValueError(f"a Bayer mosaic needs at least one 2x2 tile, got shape {mosaic.shape}")
    if height % 2 or width % 2:
        _log.warning(
            "mosaic %dx%d has odd size: dropped %d row(s) and %d column(s) to keep whole 2x2 tiles",
            height,
            width,
            height % 2,
            width % 2,
        )
        mosaic = mosaic[: height - height % 2, : width - width % 2]
    return np.stack([mosaic[row::2, col::2] for row, col in offsets], axis=-1)


def _levels(black_level: BlackLevel, white_level: float) -> tuple[np.ndarray, float]:
    """Black levels as a (4,) float64 array in canonical order, after checking white is above them all."""
    black = np.asarray(black_level, dtype=np.float64)
    if black.ndim == 0:
        black = np.full(4, black)
    if black.shape != (4,):
        raise ValueError(f"black_level is a scalar or 4 values (R, Gr, Gb, B), got {black_level!r}")
    white = float(white_level)
    if not (np.all(np.isfinite(black)) and np.isfinite(white) and white > black.max()):
        raise ValueError(
            f"white_level {white_level!r} must be finite and above every black level {black_level!r}"
        )
    return black, white


def pack(mosaic: np.ndarray, pattern: str, black_level: BlackLevel, white_level: float) -> np.ndarray:
    """Mosaic in sensor units -> canonical packed (H/2, W/2, 4) float32 in [0, 1].

    Clipping makes hot pixels above white and noise below black valid network inputs.
    """
    black, white = _levels(black_level, white_level)
    planes = split(mosaic, pattern).astype(np.float64)
    return np.clip((planes - black) / (white - black), 0.0, 1.0).astype(np.float32)


def unpack(packed: np.ndarray, pattern: str, black_level: BlackLevel, white_level: float) -> np.ndarray:
    """Canonical packed (h, w, 4) in [0, 1] -> (2h, 2w) uint16 mosaic in sensor units: the inverse of pack.

    uint16 because that is what sensors and RAW files hold; rounding to the nearest integer makes
    ``unpack(pack(m)) == m`` exact for every m in [black, white]. Values outside [0, 1] are clipped, like
    pack's output, so the result lies in [black, white].
    """
    black, white = _levels(black_level, white_level)
    packed = np.asarray(packed)
    if packed.ndim != 3 or packed.shape[-1] != 4 or packed.size == 0:
        raise ValueError(f"a packed Bayer image is (h, w, 4) and not empty, got shape {packed.shape}")
    if not np.all(np.isfinite(packed)):
        raise ValueError("a packed Bayer image to unpack must be finite (it has NaN or infinity)")
    values = np.clip(packed.astype(np.float64), 0.0, 1.0) * (white - black) + black
    values = np.clip(np.rint(values), 0, np.iinfo(np.uint16).max).astype(np.uint16)
    height, width = packed.shape[0] * 2, packed.shape[1] * 2
    mosaic = np.empty((height, width), dtype=np.uint16)
    for channel, (row, col) in enumerate(channel_offsets(pattern)):
        mosaic[row::2, col::2] = values[..., channel]
    return mosaic
