"""PyNET's sizes: its levels, which packed inputs it accepts and how large each level's output is.

The one home of these facts; the model, the data pipeline and the CLIs all ask here.
"""

from __future__ import annotations

from pynet_tf.shapes import check_input_shape

LEVELS = (5, 4, 3, 2, 1, 0)
"""All levels, coarsest first: the order the reference trains them in. 0 is full resolution."""
DOWNSAMPLING = 16
"""Four 2x2 max-pools lie between the packed input and level 5: H and W must be multiples of this."""


def check_level(level: int) -> None:
    if level not in LEVELS:
        raise ValueError(f"PyNET level must be one of 0..5 (0 = full resolution), got {level!r}")


def output_size(level: int, height: int, width: int) -> tuple[int, int]:
    """Size of level ``level``'s RGB output for a packed input of ``height`` x ``width``.

    Level 0 doubles the packed size (one packed pixel is a 2x2 Bayer quad); level L > 0 is H / 2^(L-1).
    """
    check_level(level)
    if level == 0:
        return 2 * height, 2 * width
    return height // 2 ** (level - 1), width // 2 ** (level - 1)


def validate_input_shape(height: int | None, width: int | None, channels: int | None = 4) -> None:
    """Raise ``InputShapeError`` unless a packed input of this size can go through PyNET (None: run time)."""
    check_input_shape(
        height, width, channels, downsampling=DOWNSAMPLING, network="PyNET", why="PyNET pools 2x2 four times"
    )


def level_of_output(input_size: tuple[int, int], output_hw: tuple[int, int]) -> int | None:
    """The level whose RGB output for a packed input of ``input_size`` is ``output_hw``, or None if no level's
    is: how a model's level is read off its output (all six differ for any valid input)."""
    found = [level for level in LEVELS if output_size(level, *input_size) == tuple(output_hw)]
    return found[0] if found else None
