"""Packed-input size rules every network shares: the error, the rule's type and the generic check.

Each network's own numbers (PyNET's levels and poolings, the mobile ISP's strides) live in its folder under
``pynet_tf/nets``; they call ``check_input_shape`` with their ``downsampling`` and reason.
"""

from __future__ import annotations

from collections.abc import Callable

ShapeCheck = Callable[[int | None, int | None], None]
"""A network's input-size rule: ``(height, width)`` -> None, or ``InputShapeError`` for a packed size it
cannot take. ``pynet_tf.architectures`` holds each network's."""


class InputShapeError(ValueError):
    """The packed input cannot go through the network's poolings or strides (or is not 4-channel)."""

    # With Exception's own constructor, autograph re-raises this type from traced code (Keras' predict and
    # fit) instead of wrapping it in a StagingError.
    __init__ = Exception.__init__


def nearest_valid_size(size: int, downsampling: int) -> int:
    """The multiple of ``downsampling`` closest to ``size`` (ties go down: cropping loses less than padding
    invents), never below ``downsampling``."""
    return max(downsampling, downsampling * ((size + downsampling // 2 - 1) // downsampling))


def check_input_shape(
    height: int | None,
    width: int | None,
    channels: int | None,
    *,
    downsampling: int,
    network: str,
    why: str,
) -> None:
    """Raise ``InputShapeError`` unless a packed input of this size can go through ``network``, whose
    ``downsampling`` (the product of its strides and poolings, ``why``) H and W must be multiples of.

    ``None`` means "decided at run time" and passes; the model checks again when it sees real sizes.
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
