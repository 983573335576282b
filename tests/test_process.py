"""python -m pynet_tf.process: RAW / ZRR PNG -> PNG or JPEG through a level-0 model, tiled, atomically."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from test_rawio import png16_bytes

from pynet_tf import process as proc
from pynet_tf import processing
from pynet_tf.data.photoio import read_photo
from pynet_tf.data.rawio import read_raw, read_zrr_raw
from pynet_tf.nets.pynet.model import build_pynet
from pynet_tf.tiling import run_tiled

KDC = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "third_party" / "RAW_KODAK_DC50.KDC"
TILING = ["--tile", "128", "--overlap", "32"]  # the KDC (256 x 384 packed) in 3 x 4 tiles


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("model") / "model.keras"
    model = build_pynet(0, base_filters=2)
    # the reference init (std 0.01) gives a nearly constant image: variance-preserving random weights make
    # the output depend on the input, mostly inside (0, 1)
    rng = np.random.default_rng(0)
    weights = []
    for weight in model.get_weights():
        if weight.ndim == 4:
            weight = rng.normal(0, 1 / np.sqrt(np.prod(weight.shape[:-1])), weight.shape)
        else:
            weight = weight + rng.normal(0, 0.2, weight.shape)
        weights.append(weight.astype(np.float32))
    model.set_weights(weights)
    model.save(path)
    return path


_real_load_level0 = processing.load_level0
_loaded = {}


def _load_once(path):
    """load_level0 once per model file: loading and tracing PyNET takes seconds; every test still goes
    through the real loader (the first call per file), and through main."""
    key = str(path)
    if key not in _loaded:
        _loaded[key] = _real_load_level0(path)
    return _loaded[key]


@pytest.fixture(autouse=True)
def _cached_models(monkeypatch):
    monkeypatch.setattr(processing, "load_level0", _load_once)


@pytest.fixture(scope="module")
def level3_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("model3") / "model.keras"
    build_pynet(3, base_filters=2).save(path)
    return path


@pytest.fixture(scope="module")
def zrr_png(tmp_path_factory) -> Path:
    """A small ZRR-style raw PNG: a 16-bit single-channel RGGB mosaic with 10-bit values."""
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:80, 0:112]
    mosaic = 400 + 300 * np.sin(yy / 9.0) * np.cos(xx / 13.0) + rng.normal(0, 20, yy.shape)
    path = tmp_path_factory.mktemp("zrr") / "1234.png"
    Image.fromarray(np.clip(mosaic, 0, 1023).astype(np.uint16)).save(path)
    return path


@pytest.fixture(scope="module")
def kdc() -> Path:
    assert KDC.is_file(), f"the shared test data is missing: {KDC} (CI has ../shared beside the clone)"
    return KDC


def _run(capsys, *argv):
    code = proc.main([str(arg) for arg in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _leftovers(folder: Path) -> list[str]:
    """Anything in OUT that is not a finished output: atomic writes' temporaries start with a dot."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def _expected(model_file, packed, **tiling) -> np.ndarray:
    loaded = _load_once(model_file)
    return run_tiled(loaded.function, packed, scale=2, **tiling)


def test_processes_a_camera_raw_and_a_zrr_png_at_twice_the_packed_size(
    model_file, kdc, zrr_png, tmp_path, capsys
):
    out = tmp_path / "out"
    code, stdout, _ = _run(capsys, kdc, zrr_png, "-o", out, "--model", model_file, *TILING, "--no-progress")
    assert code == 0
    kdc_png, zrr_out = out / "RAW_KODAK_DC50.png", out / "1234.png"
    packed = read_raw(kdc).packed()
    assert packed.shape == (256, 384, 4)
    with Image.open(kdc_png) as image:
        assert (image.mode, image.size) == ("RGB", (768, 512))
        written = np.asarray(image)
    with Image.open(zrr_out) as image:
        assert image.size == (112, 80)  # 56 x 40 packed -> 112 x 80
    # exactly the tiled model output, clipped and rounded to 8 bits
    expected = _expected(model_file, packed, tile=128, overlap=32)
    np.testing.assert_array_equal(written, np.rint(np.clip(expected, 0, 1) * 255).astype(np.uint8))
    assert written.std() > 1  # the model's output depends on the image: the test means something
    assert "RAW_KODAK_DC50.KDC: 768x512 RGB" in stdout and "12 tiles of 112x128 packed" in stdout
    record = json.loads((out / "process.json").read_text())
    assert record["options"]["tile"] == 128 and [f["error"] for f in record["files"]] == [None, None]
    assert _leftovers(out) == []
    assert sorted(p.name for p in out.iterdir()) == ["1234.png", "RAW_KODAK_DC50.png", "process.json"]


def test_compare_writes_the_classical_isp_beside_it(model_file, kdc, zrr_png, tmp_path, capsys):
    out = tmp_path / "out"
    code, _, _ = _run(capsys, kdc, zrr_png, "-o", out, "--model", model_file, "--compare", "--no-progress")
    assert code == 0
    classical = read_photo(out / "RAW_KODAK_DC50_classical.png")
    assert classical.shape == (512, 768, 3)
    expected = processing.classical(read_raw(kdc).packed(), read_raw(kdc))
    np.testing.assert_array_equal(np.rint(classical * 255), np.rint(np.clip(expected, 0, 1) * 255))
    # a ZRR PNG has no metadata: grey world, camera RGB
    zrr = read_photo(out / "1234_classical.png")
    assert zrr.shape == (80, 112, 3)
    zrr_expected = processing.classical(read_zrr_raw(zrr_png), None)
    np.testing.assert_allclose(zrr, zrr_expected, atol=0.5 / 255 + 1e-6)
    assert not np.allclose(zrr, read_photo(out / "1234.png"), atol=0.05)  # the model's, not the ISP's


def test_sixteen_bit_png_round_trips(model_file, zrr_png, tmp_path, capsys):
    out = tmp_path / "out"
    code, _, _ = _run(capsys, zrr_png, "-o", out, "--model", model_file, "--bits", "16", "--no-progress")
    assert code == 0
    decoded = tf.io.decode_png(tf.io.read_file(str(out / "1234.png")), dtype=tf.uint16).numpy()
    expected = _expected(
        model_file, read_zrr_raw(zrr_png), tile=processing.DEFAULT_TILE, overlap=processing.DEFAULT_OVERLAP
    )
    np.testing.assert_array_equal(decoded, np.rint(np.clip(expected, 0, 1) * 65535).astype(np.uint16))
    assert len(np.unique(decoded)) > 256  # more levels than 8 bits hold


def test_jpeg_output(model_file, zrr_png, tmp_path, capsys):
    out = tmp_path / "out"
    code, _, _ = _run(
        capsys,
        zrr_png,
        "-o",
        out,
        "--model",
        model_file,
        "--format",
        "jpg",
        "--quality",
        "90",
        "--no-progress",
    )
    assert code == 0
    with Image.open(out / "1234.jpg") as image:
        assert (image.format, image.size) == ("JPEG", (112, 80))
    code, _, err = _run(capsys, zrr_png, "-o", out, "--model", model_file, "--format", "jpg", "--bits", "16")
    assert code == 2 and err.strip() == "error: --bits 16 needs --format png: JPEG holds 8 bits per channel"


def test_a_coarser_level_is_refused_by_name(level3_file, zrr_png, tmp_path, capsys):
    out = tmp_path / "out"
    code, _, err = _run(capsys, zrr_png, "-o", out, "--model", level3_file)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --model ")
    assert "level-3 model" in lines[0] and "needs level 0" in lines[0] and "runs/NAME/final" in lines[0]
    assert not (out / "1234.png").exists()


def test_a_model_built_for_one_input_size_is_refused(zrr_png, tmp_path, capsys):
    fixed = tmp_path / "fixed.keras"
    inputs = tf.keras.Input((32, 32, 4))
    tf.keras.Model(inputs, tf.keras.layers.Conv2D(3, 1)(inputs)).save(fixed)
    code, _, err = _run(capsys, zrr_png, "-o", tmp_path / "out", "--model", fixed)
    assert code == 2 and err.count("\n") == 1 and "built for 32x32 inputs only" in err


def test_missing_and_corrupt_inputs_are_one_line_each_and_the_others_are_written(
    model_file, kdc, zrr_png, tmp_path, capsys
):
    corrupt = tmp_path / "broken.dng"
    corrupt.write_bytes(b"II*\x00" + bytes(200))
    eight_bit = tmp_path / "photo.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(eight_bit)
    out = tmp_path / "out"
    missing = tmp_path / "nope.NEF"
    code, stdout, err = _run(
        capsys, missing, zrr_png, corrupt, eight_bit, "-o", out, "--model", model_file, "--no-progress"
    )
    assert code == 2
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 3
    assert errors[0] == f"error: {missing}: no such file"
    assert errors[1].startswith(f"error: {corrupt}: LibRaw cannot read it")
    assert errors[2] == f"error: {eight_bit}: not a 16-bit single-channel mosaic (image mode 'RGB')"
    assert err.splitlines()[-1] == "3 of 4 inputs failed (see the error lines above)"
    assert "Traceback" not in err
    assert (out / "1234.png").is_file() and "1234.png: 112x80 RGB" in stdout
    assert sorted(p.name for p in out.iterdir()) == ["1234.png", "process.json"]
    record = json.loads((out / "process.json").read_text())
    assert [bool(f["error"]) for f in record["files"]] == [True, False, True, True]


def test_truncated_and_bogus_zrr_inputs_are_one_line_each_and_write_nothing(
    model_file, zrr_png, tmp_path, capsys
):
    """Each was read before: zero-filled rows went through the model, a tiny header as a 144 MP frame."""
    data = zrr_png.read_bytes()
    cut, short, bogus = tmp_path / "cut.png", tmp_path / "short.png", tmp_path / "bogus.png"
    cut.write_bytes(data[:-12])  # every row there, the file cut before its IEND chunk
    short.write_bytes(png16_bytes(112, 80, rows=30))
    bogus.write_bytes(png16_bytes(12000, 12000, rows=0))
    out = tmp_path / "out"
    code, stdout, err = _run(
        capsys, cut, short, bogus, zrr_png, "-o", out, "--model", model_file, "--no-progress"
    )
    assert code == 2
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert [line.split(": ")[1] for line in errors] == [str(cut), str(short), str(bogus)]
    assert "truncated or corrupt PNG data" in errors[0] and "truncated or corrupt PNG data" in errors[1]
    assert "declares 12000x12000 pixels (144 MP)" in errors[2] and "--max-megapixels" in errors[2]
    assert err.splitlines()[-1] == "3 of 4 inputs failed (see the error lines above)"
    assert sorted(p.name for p in out.iterdir()) == ["1234.png", "process.json"]
    assert "1234.png: 112x80 RGB" in stdout  # the good input after them is still processed


def test_max_megapixels_refuses_a_larger_input_and_raising_it_admits_it(
    model_file, zrr_png, tmp_path, capsys
):
    """The ZRR fixture is 112 x 80, 0.00896 MP: refused under 0.008, processed under 0.009."""
    out = tmp_path / "out"
    code, _, err = _run(capsys, zrr_png, "-o", out, "--model", model_file, "--max-megapixels", "0.008")
    assert code == 2
    assert err.splitlines()[0] == (
        f"error: {zrr_png}: declares 112x80 pixels (0.00896 MP), over the limit of 0.008 MP (a corrupt header, "
        "or a frame beyond 108 MP-class sensors); if the image is real, raise the limit with --max-megapixels"
    )
    assert not out.exists()  # nothing written: no folder, no record
    code, _, _ = _run(
        capsys, zrr_png, "-o", out, "--model", model_file, "--max-megapixels", "0.009", "--no-progress"
    )
    assert code == 0 and (out / "1234.png").is_file()
    assert json.loads((out / "process.json").read_text())["options"]["max_megapixels"] == 0.009


@pytest.mark.parametrize("value", ["0", "-5", "nan"])
def test_max_megapixels_must_be_positive(zrr_png, tmp_path, capsys, value):
    code, _, err = _run(
        capsys, zrr_png, "-o", tmp_path / "out", "--model", tmp_path / "none", "--max-megapixels", value
    )
    assert code == 2 and err == f"error: --max-megapixels must be positive, got {float(value)!r}\n"


def test_two_inputs_with_one_output_name(model_file, zrr_png, tmp_path, capsys):
    other = tmp_path / "other"
    other.mkdir()
    twin = other / zrr_png.name
    twin.write_bytes(zrr_png.read_bytes())
    code, _, err = _run(capsys, zrr_png, twin, "-o", tmp_path / "out", "--model", model_file, "--no-progress")
    assert code == 2 and f"error: {twin}: its output" in err and "rename one" in err


def test_no_model_is_one_line(zrr_png, tmp_path, capsys):
    code, _, err = _run(capsys, zrr_png, "-o", tmp_path / "out", "--model", tmp_path / "runs" / "nothing")
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("error: --model ") and "no trained model there" in err
    corrupt = tmp_path / "bad.keras"
    corrupt.write_bytes(b"not a zip")
    code, _, err = _run(capsys, zrr_png, "-o", tmp_path / "out", "--model", corrupt)
    assert code == 2 and err.count("\n") == 1 and "cannot load it" in err


def test_an_interrupt_leaves_only_whole_files(model_file, kdc, zrr_png, tmp_path, capsys, monkeypatch):
    calls = []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return run_tiled(*args, **kwargs)

    monkeypatch.setattr(processing, "run_tiled", interrupted)
    out = tmp_path / "out"
    code, _, err = _run(capsys, zrr_png, kdc, "-o", out, "--model", model_file, "--no-progress")
    assert code == 130 and "interrupted" in err
    assert sorted(p.name for p in out.iterdir()) == ["1234.png"]


def test_command_line_errors_exit_2_without_a_traceback(tmp_path):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pynet_tf.process",
            str(tmp_path / "x.dng"),
            "-o",
            str(tmp_path / "out"),
            "--model",
            str(tmp_path / "missing.keras"),
        ],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error: --model ")
    assert "Traceback" not in result.stderr
