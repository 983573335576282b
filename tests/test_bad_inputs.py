"""Bad inputs, command by command, as a user or a CI job meets them: exit status 2, one ``error`` line naming the
file or flag, no traceback, and the good outputs already on disk left byte for byte as they were.

Every case runs the command's ``main`` in this process (the same code as its script). The placeholders in a
case's arguments are files the ``world`` fixture makes: ``{model}`` a trained-shape level-0 PyNET (width 2),
``{file}`` a text file where a folder is expected, ``{good}`` a folder of earlier outputs, ``{corrupt}`` a
``.keras`` file holding text, ``{text_tflite}`` a ``.tflite`` holding text, ``{empty}`` an empty ``.png``, ``{cut_png}`` a ZRR mosaic PNG
cut to half its bytes,
``{unreadable}`` a folder whose one results file is cut short, ``{missing}`` a path that does not exist, ``{kdc}`` a real camera RAW (``../shared/data/third_party/``) and
``{read_only}`` a folder under ``/sys``: sysfs refuses new files
to every user, root included (the tests run as root here, where a chmod-ed folder would not stop a write).
Interrupts and SIGTERM have their own tests beside each command (train, the phone benchmark, process).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import tf_keras as keras
from PIL import Image

from android_bench import report, run
from calibration import build
from export import third_party, to_onnx, to_tflite
from pynet_tf import align, evaluate, import_official, process, study, train
from pynet_tf.nets.pynet.model import build_pynet

READ_ONLY = Path("/sys/pynet_tf_bad_inputs")
KDC = Path(__file__).resolve().parents[2] / "shared" / "data" / "third_party" / "RAW_KODAK_DC50.KDC"


@dataclass(frozen=True)
class Case:
    command: Callable[[list[str]], int]
    argv: tuple[str, ...]
    message: str
    """A fragment of the one error line (after the placeholders are filled in)."""


TRAIN = ("--preset", "quick", "--levels", "5", "--steps", "2", "--base-filters", "2", "--patch", "32")
EXPORT = ("--model", "{model}", "--input-shape", "32x32")

CASES = {
    # training: the output location is checked before any model is built; the user's own 0 is checked
    "train --out on a file": Case(
        train.main, (*TRAIN, "--out", "{file}"), "--out {file}: a file is in the way"
    ),
    "train --out under a file": Case(
        train.main, (*TRAIN, "--out", "{file}/run"), "{file} is a file, so no folder can be made there"
    ),
    "train --out read-only": Case(train.main, (*TRAIN, "--out", "{read_only}/run"), "cannot write in /sys"),
    "train --steps 0": Case(
        train.main,
        (*TRAIN, "--steps", "0", "--out", "{good}/run"),
        "--steps must be a positive integer, got 0",
    ),
    "train --batch-size 0": Case(
        train.main,
        (*TRAIN, "--batch-size", "0", "--out", "{good}/run"),
        "--batch-size must be a positive integer, got 0",
    ),
    "train --data missing folder": Case(
        train.main, (*TRAIN, "--data", "zrr:{missing}", "--out", "{good}/run"), "{missing} is not a folder"
    ),
    "train --patch not a multiple": Case(
        train.main, (*TRAIN, "--patch", "40", "--out", "{good}/run"), "--patch 40"
    ),
    "train --vgg-weights missing": Case(
        train.main,
        (*TRAIN, "--loss", "mse=1,vgg=1", "--vgg-weights", "{missing}.h5", "--out", "{good}/run"),
        "{missing}.h5",
    ),
    "train --steps text": Case(
        train.main, (*TRAIN, "--steps", "many"), "argument --steps: invalid int value"
    ),
    # evaluation
    "evaluate --model missing": Case(
        evaluate.main, ("--model", "{missing}"), "{missing}: no trained model there"
    ),
    "evaluate --model corrupt": Case(
        evaluate.main, ("--model", "{corrupt}"), "{corrupt}: cannot load the model"
    ),
    "evaluate --out on a file": Case(
        evaluate.main, ("--model", "{model}", "--out", "{file}"), "--out {file}: a file is in the way"
    ),
    "evaluate --max-size not a multiple": Case(
        evaluate.main,
        ("--model", "{model}", "--max-size", "100x100", "--out", "{good}"),
        "--max-size 100x100",
    ),
    "evaluate --data unknown": Case(
        evaluate.main, ("--model", "{model}", "--data", "bogus:x", "--out", "{good}"), "--data 'bogus:x'"
    ),
    # export to TFLite and ONNX: the output folder is checked before the model is loaded
    "export --out on a file": Case(
        to_tflite.main, (*EXPORT, "--float32", "--out", "{file}"), "--out {file}: a file is in the way"
    ),
    "export --out read-only": Case(
        to_tflite.main, (*EXPORT, "--float32", "--out", "{read_only}"), "cannot write in /sys"
    ),
    "export --model corrupt": Case(
        to_tflite.main, ("--model", "{corrupt}", "--float32", "--out", "{good}"), "{corrupt}: cannot load"
    ),
    "export --model missing": Case(
        to_tflite.main,
        ("--model", "{missing}", "--float32", "--out", "{good}"),
        "{missing}: no trained model",
    ),
    "export --calibration text": Case(
        to_tflite.main, (*EXPORT, "--int8", "--calibration", "{file}", "--out", "{good}"), "{file}"
    ),
    "export --format typo": Case(
        to_tflite.main, (*EXPORT, "--format", "flaot32", "--out", "{good}"), "did you mean 'float32'"
    ),
    "onnx --out on a file": Case(
        to_onnx.main, (*EXPORT, "--out", "{file}"), "--out {file}: a file is in the way"
    ),
    "onnx --opset 12": Case(to_onnx.main, (*EXPORT, "--opset", "12", "--out", "{good}"), "--opset 12"),
    # a third-party TFLite file
    "third_party missing file": Case(
        third_party.main, ("{missing}.tflite", "--out", "{good}"), "{missing}.tflite: no such file"
    ),
    "third_party text file": Case(third_party.main, ("{text_tflite}", "--out", "{good}"), "{text_tflite}"),
    "third_party --out on a file": Case(
        third_party.main, ("{text_tflite}", "--out", "{file}"), "--out {file}: a file is in the way"
    ),
    "third_party --input-shape": Case(
        third_party.main, ("{text_tflite}", "--input-shape", "big", "--out", "{good}"), "--input-shape"
    ),
    "third_party --channel-order": Case(
        third_party.main, ("{text_tflite}", "--channel-order", "R,G,B", "--out", "{good}"), "--channel-order"
    ),
    # calibration sets
    "calibration --out a folder": Case(
        build.main, ("--num", "2", "--shape", "32x32", "--out", "{good}"), "--out {good}: is a folder"
    ),
    "calibration --out read-only": Case(
        build.main, ("--num", "2", "--shape", "32x32", "--out", "{read_only}/set.npz"), "cannot write in /sys"
    ),
    "calibration --data missing folder": Case(
        build.main,
        ("--data", "photos:{missing}", "--shape", "32x32", "--out", "{good}/set.npz"),
        "{missing} is not a folder",
    ),
    "calibration --shape": Case(
        build.main, ("--num", "2", "--shape", "big", "--out", "{good}/set.npz"), "argument --shape"
    ),
    # importing the official checkpoint
    "import_official --out exists": Case(
        import_official.main, ("{missing}.ckpt", "--out", "{good}"), "--out {good} exists"
    ),
    "import_official --out read-only": Case(
        import_official.main, ("{missing}.ckpt", "--out", "{read_only}/run"), "cannot write in /sys"
    ),
    "import_official text as checkpoint": Case(
        import_official.main, ("{file}", "--out", "{good}/official"), "{file}"
    ),
    "import_official missing checkpoint": Case(
        import_official.main, ("{missing}.ckpt", "--out", "{good}/official"), "{missing}.ckpt"
    ),
    # full-resolution processing: a bad input is its own error line (the others still run), exit 2
    "process --out on a file": Case(
        process.main, ("{kdc}", "--model", "{model}", "-o", "{file}"), "--out {file}: a file is in the way"
    ),
    "process --out read-only": Case(
        process.main, ("{kdc}", "--model", "{model}", "-o", "{read_only}"), "cannot write in /sys"
    ),
    "process missing input": Case(
        process.main, ("{missing}.dng", "--model", "{model}", "-o", "{good}"), "{missing}.dng: no such file"
    ),
    "process empty PNG": Case(
        process.main, ("{empty}", "--model", "{model}", "-o", "{good}"), "{empty}: empty file"
    ),
    "process a text file as RAW": Case(
        process.main, ("{file}", "--model", "{model}", "-o", "{good}"), "{file}"
    ),
    "process --model corrupt": Case(
        process.main, ("{kdc}", "--model", "{corrupt}", "-o", "{good}"), "{corrupt}"
    ),
    "process truncated PNG": Case(
        process.main, ("{cut_png}", "--model", "{model}", "-o", "{good}"), "{cut_png}: truncated or corrupt"
    ),
    "process --tile": Case(
        process.main,
        ("{kdc}", "--model", "{model}", "--tile", "40", "-o", "{good}"),
        "--tile/--overlap: tile must be a positive multiple of 16",
    ),
    "process --max-megapixels": Case(
        process.main,
        ("{kdc}", "--model", "{model}", "--max-megapixels", "0", "-o", "{good}"),
        "--max-megapixels",
    ),
    # the phone (or host) benchmark and its report
    "bench --out on a file": Case(
        run.main, ("--host", "--models", "{good}", "--out", "{file}"), "--out {file}: a file is in the way"
    ),
    "bench --out read-only": Case(
        run.main, ("--host", "--models", "{good}", "--out", "{read_only}"), "cannot write in /sys"
    ),
    "bench --models missing": Case(
        run.main, ("--host", "--models", "{missing}.tflite", "--out", "{good}"), "{missing}"
    ),
    "bench --threads 0": Case(
        run.main, ("--host", "--models", "{good}", "--threads", "0", "--out", "{good}"), "--threads"
    ),
    "report a folder of unreadable results": Case(
        report.main, ("{unreadable}", "-o", "{good}/report"), "{unreadable}/r.json: not JSON"
    ),
    "report -o on a file": Case(
        report.main, ("{unreadable}", "-o", "{file}"), "-o {file}: a file is in the way"
    ),
    "report -o read-only": Case(report.main, ("{unreadable}", "-o", "{read_only}"), "cannot write in /sys"),
    # aligning phone RAW with DSLR photos: flags and folders are checked before any file is read
    "align --raw missing": Case(
        align.main,
        ("--raw", "{missing}", "--photos", "{good}", "--out", "{good}/set"),
        "--raw {missing}: no such folder",
    ),
    "align --patch odd": Case(
        align.main,
        ("--raw", "{good}", "--photos", "{good}", "--out", "{good}/set", "--patch", "101"),
        "--patch 101: an even number of RAW pixels",
    ),
    "align --out on a file": Case(
        align.main,
        ("--raw", "{good}", "--photos", "{good}", "--out", "{file}"),
        "--out {file}: a file is in the way",
    ),
    "align --out not empty": Case(
        align.main, ("--raw", "{good}", "--photos", "{good}", "--out", "{good}"), "already holds files"
    ),
    "align no RAW files": Case(
        align.main, ("--raw", "{good}", "--photos", "{good}", "--out", "{good}/set"), "no RAW files"
    ),
    # the loss study
    "study --out on a file": Case(
        study.main,
        ("--losses", "mse=1", "--steps", "1", "--out", "{file}"),
        "--out {file}: a file is in the way",
    ),
}


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bad_inputs")
    keras.utils.set_random_seed(0)
    build_pynet(0, base_filters=2).save(root / "model.keras")
    (root / "a_file.txt").write_text("not a folder\n")
    (root / "corrupt.keras").write_text("not a Keras file\n")
    (root / "notes.tflite").write_text("not a TFLite flatbuffer\n")
    (root / "empty.png").write_bytes(b"")
    whole = root / "whole.png"  # a 16-bit mosaic as ZRR stores them, then cut to its first half
    Image.fromarray(np.arange(64 * 64, dtype=np.uint16).reshape(64, 64)).save(whole)
    (root / "cut.png").write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    (root / "unreadable").mkdir()
    (root / "unreadable" / "r.json").write_text('{"format": "pynet_tf.benchmark_results", "rows": [')
    good = root / "good"
    good.mkdir()
    (good / "earlier_float32.tflite").write_bytes(bytes(range(256)) * 4)
    (good / "earlier_float32.tflite.json").write_text('{"format": "pynet_tf.export_sidecar"}\n')
    return {
        "model": root / "model.keras",
        "file": root / "a_file.txt",
        "good": good,
        "corrupt": root / "corrupt.keras",
        "text_tflite": root / "notes.tflite",
        "empty": root / "empty.png",
        "missing": root / "missing" / "nothing",
        "read_only": READ_ONLY,
        "kdc": KDC,
        "unreadable": root / "unreadable",
        "cut_png": root / "cut.png",
    }


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` by relative path, with its SHA-256: what "left as they were" compares."""
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def fill(text: str, world: dict[str, Path]) -> str:
    return text.format(**{name: str(path) for name, path in world.items()})


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_a_bad_input_is_one_error_line_with_exit_2(case: Case, world, capsys):
    before = snapshot(world["good"])
    try:
        status = case.command([fill(arg, world) for arg in case.argv])
    except SystemExit as exit_:  # argparse's own errors
        status = exit_.code
    captured = capsys.readouterr()
    errors = [line for line in captured.err.splitlines() if "error:" in line]
    assert status == 2, captured.out + captured.err
    assert len(errors) == 1 and fill(case.message, world) in errors[0], captured.err
    assert "Traceback" not in captured.out + captured.err
    assert snapshot(world["good"]) == before
    assert not READ_ONLY.exists()
