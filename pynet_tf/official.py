"""A checkpoint of the official PyNET code (TF1) as a run folder of this project (``import_official``): the
library behind ``python -m pynet_tf.import_official``.

The official code saves its generator's unnamed variables with ``tf.train.Saver``: keys
``generator/Variable``, ``generator/Variable_1``, ... numbered in the order its graph creates them (437; 501
when built with ``instance_norm_level_1``). Here that order is derived from ``model.PYRAMID``
(``official_variables``) and each value goes to the layer of that name in ``build_pynet`` at width 32, as
stored (no transposes or flips), except that the convolutions reading the input get their input channels
reordered: the official loader packs (B, Gr, R, Gb), this project (R, Gr, Gb, B) (``bayer``), so an imported
model reads what every reader here produces (ZRR included) as the official one reads its own. The result is
an ordinary run (``level_L/model.keras``, ``saved_model/``,
``level.json``, ``final``), so evaluate, process, the exporters and the benchmarks work on it unchanged. It is
written into a temporary folder beside ``--out`` and renamed at the end: a bad checkpoint or a failure leaves
no run folder behind.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf
import tf_keras as keras

from pynet_tf import atomic, losses, train_config
from pynet_tf.data import bayer
from pynet_tf.nets.pynet.levels import check_level
from pynet_tf.nets.pynet.model import PYRAMID, Block, build_pynet, transfer_weights
from pynet_tf.runs import RunDir
from pynet_tf.trainer import save_level

BASE_FILTERS = 32
"""The official network's width: a checkpoint of another width does not fit (a shape error names the key)."""
_KEY = re.compile(r"generator/Variable(?:_(\d+))?")
_ADAM_SLOT = re.compile(r"/Adam(?:_\d+)?$")


class OfficialCheckpointError(ValueError):
    """A checkpoint this importer cannot turn into PyNET; the message names the file, the key and the fix."""


def official_key(index: int) -> str:
    """The checkpoint key of the official graph's ``index``-th variable (TF1 numbers unnamed variables so)."""
    return "generator/Variable" if index == 0 else f"generator/Variable_{index}"


def official_variables(instance_norm_level_1: bool = False) -> list[tuple[str, str]]:
    """``(layer name, weight attribute)`` of every official variable, in the official creation order.

    That order is: the encoder blocks of levels 1-4; for levels 5..1 the decoder blocks, then (levels 5-2) the
    transposed convolution joined to the next level's input (``up_a``) and the later one (``up_b``), then the
    output convolution; last level 0's transposed and output convolutions. A block goes branch by branch,
    ``a`` before ``b``; a convolution creates kernel, bias, then its norm's shift and scale.
    """
    order: list[tuple[str, str]] = []

    def conv(name: str, norm: bool) -> None:
        order.extend([(name, "kernel"), (name, "bias")])
        if norm:
            order.extend([(f"{name}_norm", "shift"), (f"{name}_norm", "scale")])

    def block(name: str, level: int, spec: Block) -> None:
        norm = spec.norm and (level != 1 or instance_norm_level_1)  # the official levels 2-5 always normalise
        for kernel in range(3, spec.kernel + 1, 2):
            conv(f"{name}_{kernel}x{kernel}a", norm)
            conv(f"{name}_{kernel}x{kernel}b", norm)

    for level in (1, 2, 3, 4):
        block(f"l{level}_enc", level, PYRAMID[level].encoder)
    for level in (5, 4, 3, 2, 1):
        for index, spec in enumerate(PYRAMID[level].decoder, start=1):
            block(f"l{level}_dec{index}", level, spec)
        if level > 1:
            order.extend([(f"l{level}_up_a", "kernel"), (f"l{level}_up_b", "kernel")])
        conv(f"l{level}_out_conv", norm=False)
    order.append(("l0_up", "kernel"))
    conv("l0_out_conv", norm=False)
    return order


VARIANTS = {len(official_variables(flag)): flag for flag in (False, True)}
"""Variable count -> ``instance_norm_level_1``: 437 -> False, 501 -> True."""


@dataclass(frozen=True)
class OfficialCheckpoint:
    """Every value of an official checkpoint, read and checked, and where it came from."""

    prefix: Path
    values: tuple[np.ndarray, ...]
    """By creation order: ``values[i]`` is ``official_key(i)``'s."""
    instance_norm_level_1: bool
    sha256: dict[str, str]
    """File name -> SHA-256 of the index and data files."""

    def provenance(self) -> dict:
        return {
            "source": "official PyNET checkpoint (TF1, github aiff22/PyNET)",
            "checkpoint": str(self.prefix),
            "sha256": self.sha256,
            "variables": len(self.values),
        }


def find_checkpoint(path: str | Path) -> Path:
    """The checkpoint prefix ``path`` names: a prefix, one of its files, or a folder holding exactly one."""
    path = Path(path).expanduser().resolve()
    if path.is_dir():
        indexes = sorted(path.glob("*.index"))
        if len(indexes) != 1:
            found = ", ".join(index.name for index in indexes) or "no *.index file"
            raise OfficialCheckpointError(
                f"{path}: a folder must hold exactly one checkpoint, found {found}; pass its prefix instead "
                f"(e.g. {path / 'pynet_level_0.ckpt'})"
            )
        return indexes[0].with_suffix("")
    prefix = re.sub(r"\.(index|meta|data-\d+-of-\d+)$", "", str(path))
    if not Path(f"{prefix}.index").is_file():
        what = (
            f"not a checkpoint, no {Path(prefix).name}.index" if path.exists() else "no such file or folder"
        )
        raise OfficialCheckpointError(
            f"{path}: {what}; pass the official checkpoint's prefix (e.g. models/original/pynet_level_0.ckpt, "
            "beside its .index and .data-00000-of-00001 files) or its folder"
        )
    return Path(prefix)


def read_checkpoint(path: str | Path) -> OfficialCheckpoint:
    """Read and check every value of the official checkpoint at ``path`` (``find_checkpoint``)."""
    prefix = find_checkpoint(path)
    index_file = Path(f"{prefix}.index")
    data_files = sorted(prefix.parent.glob(f"{prefix.name}.data-*-of-*"))
    try:
        reader = tf.train.load_checkpoint(str(prefix))
    except (tf.errors.OpError, ValueError) as error:
        raise OfficialCheckpointError(
            f"{index_file}: not a TensorFlow checkpoint index ({_first_line(error)}); pass the official "
            "checkpoint's prefix"
        ) from None
    keys = _generator_keys(index_file, reader.get_variable_to_shape_map())
    values = []
    for index, key in enumerate(keys):
        try:
            values.append(reader.get_tensor(key))
        except (tf.errors.OpError, IndexError) as error:
            files = ", ".join(str(file) for file in data_files) or f"{prefix}.data-00000-of-00001 (missing)"
            raise OfficialCheckpointError(
                f"{files}: cannot read {key} ({_first_line(error)}): the data file is missing, truncated or "
                "corrupt; copy or download the checkpoint again"
            ) from None
    return OfficialCheckpoint(
        prefix,
        tuple(values),
        VARIANTS[len(keys)],
        {file.name: _sha256(file) for file in (index_file, *data_files)},
    )


def _generator_keys(index_file: Path, shapes: dict[str, list[int]]) -> list[str]:
    """The official generator's keys in creation order, once all of them, and no more, are found there."""
    found = {int(match.group(1) or 0) for key in shapes if (match := _KEY.fullmatch(key))}
    if not found:
        slots = sorted(key for key in shapes if _ADAM_SLOT.search(key))
        if slots:
            raise OfficialCheckpointError(
                f"{index_file}: holds only Adam optimizer slots (e.g. {slots[0]}), not the generator's "
                "weights; pass the checkpoint the official train_model.py saves (pynet_level_K_iteration_N.ckpt)"
            )
        raise OfficialCheckpointError(
            f"{index_file}: not a checkpoint of the official PyNET, which has keys generator/Variable, "
            f"generator/Variable_1, ...; this one has {', '.join(sorted(shapes)[:3]) or 'no keys'}"
            f"{', ...' if len(shapes) > 3 else ''}"
        )
    count = next((count for count in sorted(VARIANTS) if max(found) < count), None)
    if count is None:
        raise OfficialCheckpointError(
            f"{index_file}: has {official_key(max(found))}, but the official PyNET has "
            f"{' or '.join(map(str, VARIANTS))} variables: a checkpoint of a modified network cannot be "
            "imported"
        )
    missing = sorted(set(range(count)) - found)
    if missing:
        raise OfficialCheckpointError(
            f"{index_file}: key {official_key(missing[0])} is missing ({len(missing)} of the official {count} "
            "generator variables are): the checkpoint is incomplete; copy or download it again"
        )
    return [official_key(index) for index in range(count)]


def load_network(checkpoint: OfficialCheckpoint) -> keras.Model:
    """The whole PyNET (every level's output) holding the checkpoint's values, each checked for shape."""
    network = _build(0, checkpoint, all_outputs=True)
    variables = [
        getattr(network.get_layer(layer), weight)
        for layer, weight in official_variables(checkpoint.instance_norm_level_1)
    ]
    every = {variable.ref() for layer in network.layers for variable in layer.weights}
    if {variable.ref() for variable in variables} != every:
        raise RuntimeError("official_variables() no longer names every weight of build_pynet(): update it")
    for index, (variable, value) in enumerate(zip(variables, checkpoint.values)):
        if tuple(variable.shape) != value.shape:
            raise OfficialCheckpointError(
                f"{checkpoint.prefix}.index: {official_key(index)} has shape {list(value.shape)}, but the "
                f"official PyNET (width {BASE_FILTERS}) has {variable.shape.as_list()} there ({variable.name}): "
                "a checkpoint of a modified PyNET (another width?) cannot be imported"
            )
    for variable, value in zip(variables, checkpoint.values):
        variable.assign(value)
    _read_canonical_input(network)
    return network


OFFICIAL_INPUT_ORDER = bayer.CHANNEL_ORDERS["reference"]
"""The packed order the official loader feeds the network: (B, Gr, R, Gb) in our channel names."""


def input_readers() -> list[str]:
    """The convolutions that read the packed input: the first (``a``) of each branch of level 1's encoder."""
    largest = PYRAMID[1].encoder.kernel
    return [f"l1_enc_{kernel}x{kernel}a" for kernel in range(3, largest + 1, 2)]


def _read_canonical_input(network: keras.Model) -> None:
    """Permute the input channels of the convolutions that read the input, so that the network takes our
    canonical packed layout (every reader of this project produces it) and computes what the official one
    does on its own order: official input channel k is canonical channel ``channel_permutation[k]``."""
    positions = list(bayer.channel_permutation(OFFICIAL_INPUT_ORDER))
    for name in input_readers():
        kernel = network.get_layer(name).kernel
        official = kernel.numpy()
        canonical = np.empty_like(official)
        canonical[:, :, positions, :] = official
        kernel.assign(canonical)


def level_model(network: keras.Model, level: int, checkpoint: OfficialCheckpoint) -> keras.Model:
    """``build_pynet(level)`` with ``network``'s weights, by layer name (``network`` has all the layers)."""
    model = _build(level, checkpoint)
    transfer_weights(network, model)
    return model


def _build(level: int, checkpoint: OfficialCheckpoint, all_outputs: bool = False) -> keras.Model:
    return build_pynet(
        level,
        base_filters=BASE_FILTERS,
        instance_norm=True,
        instance_norm_level_1=checkpoint.instance_norm_level_1,
        all_outputs=all_outputs,
    )


def import_official(path: str | Path, out: str | Path, levels: tuple[int, ...] = (0,)) -> RunDir:
    """Write the checkpoint at ``path`` as run ``out``: ``levels`` (coarsest first), ``final`` -> the finest.

    Everything is checked before anything is written; the run is written beside ``out`` and renamed onto it
    at the end, so ``out`` either holds the whole import or does not exist.
    """
    out = Path(out)
    if out.exists() or out.is_symlink():
        raise OfficialCheckpointError(
            f"--out {out} exists: an import never overwrites a run; pass a new --out "
            "(or delete that folder first)"
        )
    atomic.check_output(out)
    for level in levels:
        check_level(level)
    checkpoint = read_checkpoint(path)
    network = load_network(checkpoint)
    config = train_config.resolve(
        "reference",
        levels=levels,
        base_filters=BASE_FILTERS,
        instance_norm=True,
        instance_norm_level_1=checkpoint.instance_norm_level_1,
        out=str(out),
    )
    with atomic.atomic_path(out, directory=True) as folder:
        run = RunDir(folder)
        atomic.write_json(
            run.config,
            {"config": config.to_json(), "imported": checkpoint.provenance(), "tensorflow": tf.__version__},
        )
        for level in levels:
            save_level(
                level_model(network, level, checkpoint),
                level,
                run,
                {
                    "level": level,
                    "arch": "pynet",
                    "base_filters": BASE_FILTERS,
                    "instance_norm": True,
                    "instance_norm_level_1": checkpoint.instance_norm_level_1,
                    # what the official train_model.py trains the level with (losses.PRESETS["pynet"])
                    "loss": losses.parse_loss("pynet").weights(level),
                    "imported": checkpoint.provenance(),
                    "config": config.to_json(),
                },
            )
            print(f"level {level}: imported -> {out / run.level_dir(level).name}")
        atomic.point_link(run.final, run.level_dir(min(levels)).name)
    return RunDir(out)


def _sha256(path: Path) -> str:
    with path.open("rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


def _first_line(error: Exception) -> str:
    text = getattr(error, "message", None) or str(error) or type(error).__name__
    return text.strip().splitlines()[0]
