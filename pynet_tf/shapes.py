"""PyNET's sizes: which packed inputs it accepts and how large each level's output is.

The one home of these facts; the model, the data pipeline and the CLIs all ask here.
"""

from __future__ import annotations

from collections.abc import Callable

LEVELS = (5, 4, 3, 2, 1, 0)
"""All levels, coarsest first: the order the reference trains them in. 0 is full resolution."""
DOWNSAMPLING = 16
"""Four 2x2 max-pools lie between the packed input and level 5: H and W must be multiples of this."""


ShapeCheck = Callable[[int | None, int | None], None]
"""A network's input-size rule: ``(height, width)`` -> None, or ``InputShapeError`` for a packed size it
cannot take. ``validate_input_shape`` is PyNET's; ``pynet_tf.architectures`` holds each network's."""


class InputShapeError(ValueError):
    """The packed input cannot go through PyNET's four poolings (or is not 4-channel)."""

    # With Exception's own constructor, autograph re-raises this type from traced code (Keras' predict and
    # fit) instead of wrapping it in a StagingError.
    __init__ = Exception.__init__


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


def nearest_valid_size(size: int, downsampling: int = DOWNSAMPLING) -> int:
    """The multiple of ``downsampling`` closest to ``size`` (ties go down: cropping loses less than padding
    invents), never below ``downsampling``."""
    return max(downsampling, downsampling * ((size + downsampling // 2 - 1) // downsampling))


def validate_input_shape(
    height: int | None,
    width: int | None,
    channels: int | None = 4,
    *,
    downsampling: int = DOWNSAMPLING,
    network: str = "PyNET",
    why: str = "PyNET pools 2x2 four times",
) -> None:
    """Raise ``InputShapeError`` unless a packed input of this size can go through the network.

    ``None`` means "decided at run time" and passes; the model checks again when it sees real sizes. The
    defaults are PyNET's; another network gives its own ``downsampling``, name and reason.
    """
    if channels != 4:
        raise InputShapeError(
            f"{network} reads packed 4-channel Bayer input (H x W x 4); got {channels} channels. "
            "Pack the RAW mosaic into its four CFA planes first."
        )
    if any(size is not None and (size <= 0 or size % downsampling) for size in (height, width)):
        fix = "x".join(
            str(nearest_valid_size(s, downsampling)) if s is not None else "any" for s in (height, width)
        )
        raise InputShapeError(
            f"packed input {height}x{width} is not a multiple of {downsampling} in height and width "
            f"({why}); the nearest valid size is {fix}: crop or pad the input to it."
        )


def level_of_output(input_size: tuple[int, int], output_hw: tuple[int, int]) -> int | None:
    """The level whose RGB output for a packed input of ``input_size`` is ``output_hw``, or None if no level's
    is: how a model's level is read off its output (all six differ for any valid input)."""
    found = [level for level in LEVELS if output_size(level, *input_size) == tuple(output_hw)]
    return found[0] if found else None
