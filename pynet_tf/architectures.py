"""The networks the toolchain trains: PyNET (the default) and the mobile ISP, by name (``--arch``).

Each lives in its own folder under ``pynet_tf/nets`` and describes itself as an ``Architecture``: a builder
``(level, width) -> keras.Model`` with packed Bayer in and RGB out, the levels it trains (coarsest first), its
input-size rule and how QAT treats its layers; the trainer, the run records, calibration and the CLIs ask here
and nowhere else which network a run or a model file is. PyNET has six levels trained one after the other;
the mobile ISP has one, level 0 (full resolution), so it trains in one stage.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import TYPE_CHECKING

from pynet_tf import runs
from pynet_tf.nets import Architecture, mobile, pynet

if TYPE_CHECKING:
    import tf_keras as keras


ARCHITECTURES: dict[str, Architecture] = {
    arch.name: arch for arch in (pynet.ARCHITECTURE, mobile.ARCHITECTURE)
}
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


def size_rules() -> str:
    """Each network's packed input sizes, for help texts: "multiples of 16 (pynet) or 4 (mobile)"."""
    rules = [f"{arch.downsampling} ({arch.name})" for arch in ARCHITECTURES.values()]
    return f"multiples of {', '.join(rules[:-1])} or {rules[-1]}"


def of_keras(model: keras.Model) -> Architecture:
    """The network ``model`` is, from its builder's input check layer (``Architecture.input_check``); PyNET
    when it has none (files saved before the check layers existed)."""
    kinds = {type(layer) for layer in model.layers}
    found = (arch for arch in ARCHITECTURES.values() if arch.input_check in kinds)
    return next(found, ARCHITECTURES[DEFAULT])


def of_model(path: str | Path, model: keras.Model) -> Architecture:
    """The network ``model``, loaded from ``path``, is: the ``arch`` of the ``level.json`` beside it or,
    without one (a bare ``.keras`` file, a run from before ``--arch``), the model's own layers (``of_keras``)."""
    record = runs.level_record(path)
    return architecture(record["arch"]) if "arch" in record else of_keras(model)
