"""Importing checkpoints of the official PyNET code: the shared fixture's round trip, the mapping, bad input.

The fixture (``shared/data/pynet_official``, see its README) describes the official checkpoint of
``PyNET(instance_norm=True, instance_norm_level_1=False)`` variable by variable, with a fill rule that
regenerates every value and the official graph's six outputs for those values. A checkpoint with those keys
and values is written once per module (47.5M values, seconds) and imported at the paper's width 32.
"""

import hashlib
import json
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras
from model_fixtures import OFFICIAL as FIXTURE
from model_fixtures import official_checkpoint, official_table, save_checkpoint
from model_fixtures import official_fill as fill

from pynet_tf import import_official, runs
from pynet_tf import official as importer
from pynet_tf.architectures import of_model
from pynet_tf.data import bayer
from pynet_tf.nets.pynet.levels import LEVELS
from pynet_tf.nets.pynet.model import build_pynet
from pynet_tf.official import OfficialCheckpointError, official_key, official_variables

# float32 outputs of the same graph through other kernels (oneDNN here, the official TF1 run there) and
# summation orders: measured at most 1.6e-5 per level when the fixture was made. Wrong mappings (scale and
# shift swapped, up_a/up_b swapped, flipped kernels) miss by 0.03-0.9, so 1e-4 tells them apart with room.
GOLDEN_ATOL = 1e-4
# Variables a level's model uses, of the official checkpoint's 437: level 0 all but the five coarser heads.
USED = {0: 427, 5: 62}
WEIGHTS = ("kernel", "bias", "shift", "scale")
"""The layer attributes official variables load into (``official_variables``)."""

pytestmark = pytest.mark.skipif(not FIXTURE.is_dir(), reason=f"shared fixture {FIXTURE} is not there")


def kinds(network: keras.Model, instance_norm_level_1: bool) -> list[tuple[tuple[int, ...], str]]:
    """(shape, fixture kind) of each official variable, read off the built network's layers."""
    rows = []
    for layer_name, weight in official_variables(instance_norm_level_1):
        layer = network.get_layer(layer_name)
        transposed = isinstance(layer, keras.layers.Conv2DTranspose)
        kind = {
            "kernel": "tconv_kernel" if transposed else "conv_kernel",
            "bias": "conv_bias",
            "shift": "inorm_shift",
            "scale": "inorm_scale",
        }[weight]
        rows.append((tuple(getattr(layer, weight).shape), kind))
    return rows


@pytest.fixture(scope="module")
def table() -> list[dict]:
    return official_table()


@pytest.fixture(scope="module")
def golden() -> dict[str, np.ndarray]:
    """The fixture, plus its input as this project packs it (``canonical``). The official graph read ``input``
    as the official loader packs an RGGB mosaic: raw[1::2, 1::2], raw[0::2, 1::2], raw[0::2, 0::2],
    raw[1::2, 0::2]. That mosaic, rebuilt here, packed by ``bayer.split`` as the ZRR reader does."""
    arrays = dict(np.load(FIXTURE / "golden.npz"))
    packed = arrays["input"][0]
    mosaic = np.empty((2 * packed.shape[0], 2 * packed.shape[1]), np.float32)
    for channel, (row, col) in enumerate([(1, 1), (0, 1), (0, 0), (1, 0)]):
        mosaic[row::2, col::2] = packed[..., channel]
    return arrays | {"canonical": bayer.split(mosaic, "RGGB")[None]}


@pytest.fixture(scope="module")
def official(tmp_path_factory, table) -> Path:
    """The fixture's checkpoint, alone in its folder: ``.../pynet_level_0.ckpt``."""
    prefix = official_checkpoint(tmp_path_factory.mktemp("official"), table)
    assert [name for name, _ in tf.train.list_variables(str(prefix))] == sorted(row["name"] for row in table)
    return prefix


@pytest.fixture(scope="module")
def checkpoint(official):
    return importer.read_checkpoint(official)


@pytest.fixture(scope="module")
def network(checkpoint) -> keras.Model:
    return importer.load_network(checkpoint)


@pytest.fixture(scope="module")
def imported(network, checkpoint) -> dict[int, keras.Model]:
    return {level: importer.level_model(network, level, checkpoint) for level in LEVELS}


def test_the_official_order_derived_from_the_pyramid_matches_the_fixture(table, network):
    """Shape and kind of every variable, and the official helper that created it (``created_by``) against the
    layer it lands in: its block's largest kernel, width and norm, and its branch's kernel, read off the model."""
    assert len(official_variables(False)) == len(table) == 437 and len(official_variables(True)) == 501
    assert [(tuple(map(int, row["shape"].split("x"))), row["kind"]) for row in table] == kinds(network, False)
    layers = {layer.name: layer for layer in network.layers}
    for row, (layer_name, _) in zip(table, official_variables(False)):
        conv = layers[layer_name.removesuffix("_norm")]
        created = row["created_by"]
        if block := re.fullmatch(r"multi_block\(max=(\d),maps=(\d+),norm=(True|False)\):(\d)x\d", created):
            prefix = conv.name.rsplit("_", 1)[0] + "_"
            largest = max(
                layers[name].kernel_size[0]
                for name in layers
                if name.startswith(prefix) and isinstance(layers[name], keras.layers.Conv2D)
            )
            found = (largest, conv.filters, f"{conv.name}_norm" in layers, conv.kernel_size[0])
            assert found == (int(block[1]), int(block[2]), block[3] == "True", int(block[4])), (
                row,
                layer_name,
            )
        elif up := re.fullmatch(r"conv_tranpose_layer\((\d+),3,s2\)", created):
            assert isinstance(conv, keras.layers.Conv2DTranspose) and conv.filters == int(up[1]), row
        else:
            assert created == "output_conv:3x3" and re.fullmatch(r"l\d_out_conv", conv.name), row


def test_every_level_matches_the_official_graph(imported, golden):
    errors = {}
    for level, model in imported.items():
        output = model(golden["canonical"], training=False).numpy()
        errors[level] = float(np.abs(output - golden[f"out_level_{level}"]).max())
    print("max abs error vs golden per level:", {level: f"{error:.2e}" for level, error in errors.items()})
    assert max(errors.values()) < GOLDEN_ATOL, errors


def test_every_imported_weight_is_the_checkpoint_value_by_name(imported, table):
    """Outputs alone do not see the biases of normalised convs (the norm cancels them): compare every weight."""
    order = official_variables(False)
    index = {position: i for i, position in enumerate(order)}
    for level, model in imported.items():
        used = [
            index[layer.name, weight]
            for layer in model.layers
            for weight in WEIGHTS
            if isinstance(getattr(layer, weight, None), tf.Variable)
        ]
        assert len(used) == len(set(used)) == len(model.weights), level
        for i in used:
            layer_name, weight = order[i]
            expected = fill(i, tuple(map(int, table[i]["shape"].split("x"))), table[i]["kind"])
            if layer_name in importer.input_readers() and weight == "kernel":  # reads canonical channels
                canonical = np.empty_like(expected)
                canonical[:, :, list(bayer.channel_permutation(importer.OFFICIAL_INPUT_ORDER))] = expected
                expected = canonical
            np.testing.assert_array_equal(
                getattr(model.get_layer(layer_name), weight).numpy(),
                expected,
                f"level {level}: {layer_name}.{weight}",
            )
        if level in USED:
            assert len(used) == USED[level]


def test_the_instance_norm_level_1_variant_is_detected_from_its_501_variables(tmp_path):
    network = build_pynet(0, all_outputs=True, instance_norm_level_1=True)
    values = {official_key(i): fill(i, shape, kind) for i, (shape, kind) in enumerate(kinds(network, True))}
    checkpoint = importer.read_checkpoint(save_checkpoint(tmp_path / "norm1.ckpt", values))
    assert checkpoint.instance_norm_level_1 and len(checkpoint.values) == 501
    model = importer.level_model(importer.load_network(checkpoint), 1, checkpoint)
    position = official_variables(True).index(("l1_dec3_9x9b_norm", "scale"))
    np.testing.assert_array_equal(
        model.get_layer("l1_dec3_9x9b_norm").scale.numpy(), values[official_key(position)]
    )


def test_the_cli_writes_a_run_the_project_loads(official, golden, tmp_path, capsys):
    """Level 5, the cheapest to write and load (a width-32 level 0's model.keras takes a minute to load here)."""
    run = tmp_path / "runs" / "official"
    assert (
        import_official.main([str(official.parent), "--out", str(run), "--level", "5"]) == 0
    )  # CKPT as its folder
    assert os.readlink(run / "final") == "level_5" and sorted(p.name for p in run.iterdir()) == [
        "config.json",
        "final",
        "level_5",
    ]
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["official"]  # no temporary left
    record = runs.level_record(run)
    expected = {
        "level": 5,
        "arch": "pynet",
        "base_filters": 32,
        "instance_norm": True,
        "instance_norm_level_1": False,
    }
    assert {key: record[key] for key in expected} == expected
    files = [Path(f"{official}.index"), Path(f"{official}.data-00000-of-00001")]
    assert record["imported"]["checkpoint"] == str(official) and record["imported"]["sha256"] == {
        file.name: hashlib.sha256(file.read_bytes()).hexdigest() for file in files
    }
    config = json.loads((run / "config.json").read_text())["config"]
    assert (config["base_filters"], config["instance_norm"], config["instance_norm_level_1"]) == (
        32,
        True,
        False,
    )

    model = runs.load_model(run)  # final -> level_5/model.keras
    assert (
        runs.RunDir(run).completed(5)
        and runs.model_level(model) == 5
        and of_model(run, model).name == "pynet"
    )
    np.testing.assert_allclose(model(golden["canonical"]).numpy(), golden["out_level_5"], atol=GOLDEN_ATOL)
    serve = tf.saved_model.load(str(run / "level_5" / "saved_model")).signatures["serving_default"]
    np.testing.assert_allclose(
        serve(raw=tf.constant(golden["canonical"]))["rgb"].numpy(), golden["out_level_5"], atol=GOLDEN_ATOL
    )

    capsys.readouterr()
    assert import_official.main([str(official), "--out", str(run)]) == 2
    error = capsys.readouterr().err
    assert f"--out {run} exists" in error and "Traceback" not in error


@pytest.mark.parametrize("flag, levels", [([], (0,)), (["--level", "3"], (3,)), (["--level", "all"], LEVELS)])
def test_the_cli_imports_level_0_by_default_or_the_levels_asked(flag, levels, tmp_path, monkeypatch):
    asked = []

    def record(path, out, levels):
        asked.append(levels)
        Path(out).mkdir()
        (Path(out) / "final").symlink_to(f"level_{min(levels)}")
        return runs.RunDir(out)

    monkeypatch.setattr(import_official, "import_official", record)
    assert import_official.main(["ckpt", "--out", str(tmp_path / "run"), *flag]) == 0 and asked == [levels]
    with pytest.raises(SystemExit):
        import_official.main(["ckpt", "--out", str(tmp_path / "other"), "--level", "6"])


def test_a_failure_while_writing_leaves_no_run_folder(official, tmp_path, monkeypatch):
    def fail(model, level, run, record):
        run.level_dir(level).mkdir()
        (run.level_dir(level) / "model.keras").write_bytes(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(importer, "save_level", fail)
    with pytest.raises(OSError, match="disk full"):
        importer.import_official(official, tmp_path / "runs" / "official", levels=(5,))
    assert list((tmp_path / "runs").iterdir()) == []


def _copy(official: Path, folder: Path) -> Path:
    for file in official.parent.glob(f"{official.name}.*"):
        shutil.copy(file, folder / file.name)
    return folder / official.name


def _truncated(official, folder):
    prefix = _copy(official, folder)
    os.truncate(f"{prefix}.data-00000-of-00001", os.path.getsize(f"{prefix}.data-00000-of-00001") // 2)
    return prefix


def _corrupt(official, folder):
    prefix = _copy(official, folder)
    with open(f"{prefix}.data-00000-of-00001", "r+b") as file:
        file.seek(os.path.getsize(file.name) // 2)
        byte = file.read(1)
        file.seek(-1, os.SEEK_CUR)
        file.write(bytes([byte[0] ^ 0xFF]))
    return prefix


def _holding(name: str, keys) -> Callable[[Path, Path], Path]:
    """A maker of a checkpoint ``name`` holding ``keys`` (a zero each): enough for the checks of its keys."""
    return lambda official, folder: save_checkpoint(
        folder / name, {key: np.zeros(1, np.float32) for key in keys}
    )


def _other_width(official, folder):
    """A checkpoint of the official graph at width 4: every key there, the shapes of another network."""
    network = build_pynet(0, base_filters=4, all_outputs=True)
    return save_checkpoint(
        folder / "w4.ckpt",
        {official_key(i): np.zeros(shape, np.float32) for i, (shape, _) in enumerate(kinds(network, False))},
    )


def _two_checkpoints(official, folder):
    for name in ("a", "b"):
        _holding(f"both/{name}.ckpt", ["generator/Variable"])(official, folder)
    return folder / "both"


def _text_file(official, folder):
    (folder / "model.ckpt").write_text("not a checkpoint")
    return folder / "model.ckpt"


def _junk_index(official, folder):
    (folder / "x.ckpt.index").write_bytes(b"\x00junk" * 20)
    return folder / "x.ckpt"


DATA = r"pynet_level_0\.ckpt\.data-00000-of-00001: cannot read generator/Variable"
BAD_INPUT = {
    "missing path": (lambda official, folder: folder / "nope.ckpt", r"nope\.ckpt: no such file"),
    "not a checkpoint": (_text_file, r"model\.ckpt: not a checkpoint, no model\.ckpt\.index"),
    "not a checkpoint index": (_junk_index, r"x\.ckpt\.index: not a TensorFlow checkpoint index"),
    "empty folder": (lambda official, folder: folder, r"exactly one checkpoint, found no \*\.index file"),
    "two checkpoints": (_two_checkpoints, r"found a\.ckpt\.index, b\.ckpt\.index"),
    "truncated data file": (_truncated, DATA),
    "corrupt data file": (_corrupt, DATA + r".*(?i:checksum)"),
    "missing key": (
        _holding("m.ckpt", [official_key(i) for i in range(437) if i != 17]),
        r"m\.ckpt\.index: key generator/Variable_17 is missing",
    ),
    "more variables": (
        _holding("m.ckpt", [official_key(i) for i in range(502)]),
        r"m\.ckpt\.index: has generator/Variable_501, but the official PyNET has 437 or 501",
    ),
    "another width": (
        _other_width,
        (
            r"w4\.ckpt\.index: generator/Variable has shape \[3, 3, 4, 4\], but the "
            r"official PyNET \(width 32\) has \[3, 3, 4, 32\] there \(l1_enc_3x3a/kernel"
        ),
    ),
    "another network": (
        _holding("vgg.ckpt", ["conv1/weights", "conv1/biases"]),
        r"vgg\.ckpt\.index: not a checkpoint of the official PyNET.*has conv1/biases, conv1/",
    ),
    "Adam slots only": (
        _holding("adam.ckpt", ["generator/Variable/Adam", "generator/Variable/Adam_1", "beta1"]),
        r"adam\.ckpt\.index: holds only Adam optimizer slots \(e\.g\. generator/Variable/Adam\)",
    ),
}


@pytest.mark.parametrize("case", list(BAD_INPUT))
def test_bad_input_is_one_error_naming_the_file_and_key_and_writes_nothing(case, official, tmp_path):
    make, message = BAD_INPUT[case]
    path = make(official, tmp_path)
    out = tmp_path / "runs" / "official"
    with pytest.raises(OfficialCheckpointError, match=message):
        importer.import_official(path, out)
    assert not out.parent.exists()


def test_the_cli_prints_a_bad_checkpoint_in_one_line_and_exits_2(tmp_path, capsys):
    assert import_official.main([str(tmp_path / "nope.ckpt"), "--out", str(tmp_path / "run")]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: ") and "nope.ckpt: no such file" in error and "Traceback" not in error
