"""The networks the toolchain trains: PyNET (the default) and the mobile ISP, by name (``--arch``).

Each is a builder ``(level, width) -> keras.Model`` with packed Bayer in and RGB out, the levels it trains
(coarsest first) and its input-size rule; the trainer, the run records and the CLIs ask here and nowhere
else which network a run is. PyNET has six levels trained one after the other; the mobile ISP has one,
level 0 (full resolution), so it trains in one stage.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import tf_keras as keras

from pynet_tf import mobile, runs, shapes
from pynet_tf.model import build_pynet


@dataclass(frozen=True)
class Architecture:
    name: str
    description: str
    levels: tuple[int, ...]
    """The levels it has, coarsest first (its default ``--levels``)."""
    default_width: int
    """``--base-filters`` when neither the flag nor the preset sets it for this network."""
    build: Callable[[int, int], keras.Model]
    """``(level, width) -> model`` taking packed inputs of any valid size."""
    validate_input_shape: Callable[[int | None, int | None], None]
    """Raises ``shapes.InputShapeError`` for a packed H x W the network cannot take."""


ARCHITECTURES: dict[str, Architecture] = {
    arch.name: arch
    for arch in (
        Architecture("pynet", "PyNET (Ignatov et al. 2020): 6-level inverted pyramid with instance norms",
                     shapes.LEVELS, 32, lambda level, width: build_pynet(level, base_filters=width),
                     shapes.validate_input_shape),
        Architecture("mobile", "mobile ISP (pynet_tf/mobile.py): 3 scales, no norms, full-integer int8",
                     (0,), mobile.DEFAULT_WIDTH, lambda level, width: mobile.build_mobile(width),
                     mobile.validate_input_shape),
    )
}  # fmt: skip
DEFAULT = "pynet"


class ArchitectureError(ValueError):
    """An unknown network name, or a level the network does not have."""


def architecture(name: str) -> Architecture:
    """The network ``name``; ``ArchitectureError`` with a "did you mean" otherwise."""
    if name in ARCHITECTURES:
        return ARCHITECTURES[name]
    close = difflib.get_close_matches(name, ARCHITECTURES, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    raise ArchitectureError(f"--arch {name!r}: {hint}choose from {', '.join(ARCHITECTURES)}")


def of_model(path: str | Path) -> Architecture:
    """The network a trained model is, from the ``level.json`` beside it (PyNET when there is none: a bare
    ``.keras`` file, or a run from before ``--arch``)."""
    return architecture(runs.level_record(path).get("arch", DEFAULT))
