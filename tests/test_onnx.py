"""ONNX export: tf2onnx (opset 17) converts, onnxruntime matches Keras; sidecar, dynamic shapes, arguments.

A tiny level-3 PyNET (base width 2, with its InstanceNorm and ScaledTanh layers; 64x64 packed -> 16x16 RGB)
with He-normal weights, as tests/test_export.py (``informative``; built here: there is no shared fixture).
A conversion takes about 6 s on a CPU; each file is converted once per module.

Tolerance: 1e-4 max abs error, the export's own gate. Measured on this model, onnxruntime vs Keras: 1.5e-5
on a uniform random input, 1.7e-5 on the held-out crops (64x64), 5.3e-5 for the dynamic file on 224x224 crops.
That is float32 rounding, not a mapping error: against the same model computed in float64, onnxruntime is
off by 7.6e-6 and Keras (float32) itself by 1.25e-5 (``test_onnxruntime_is_as_close_to_float64_as_keras``).
PyNET's instance norms amplify it: without them the difference is 1e-6. With the reference init (std 0.01,
near-constant maps) the same net measured 2.4e-4 on the held-out crops (Keras itself is 7e-5 off float64
there), and the export refuses it at the default --max-abs-error. A wiring or layout mistake moves outputs
by O(0.1).
"""

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import tf_keras as keras
from model_fixtures import informative

from export.formats import STATUS_ABOVE, STATUS_OK
from export.pipeline import export_model
from export.to_onnx import main
from pynet_tf.layers import ScaledTanh
from pynet_tf.nets.mobile.model import build_mobile
from pynet_tf.nets.pynet.layers import InstanceNorm
from pynet_tf.nets.pynet.model import build_pynet

ROOT = Path(__file__).resolve().parent.parent
SHAPE = (64, 64)
TOL = 1e-4


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("onnx")
    keras.utils.set_random_seed(0)
    informative(build_pynet(3, base_filters=2)).save(folder / "model.keras")
    informative(build_pynet(5, base_filters=2)).save(folder / "level5.keras")
    return folder


@pytest.fixture(scope="module")
def model(workdir) -> keras.Model:
    return keras.models.load_model(workdir / "model.keras", compile=False)


@pytest.fixture(scope="module")
def static(workdir):
    (result,) = export_model(workdir / "model.keras", ["onnx"], out=workdir / "out", input_shape=SHAPE)
    return result


@pytest.fixture(scope="module")
def dynamic(workdir):
    """Through the command line (as a user runs it), H and W set at run time."""
    out = workdir / "dynamic"
    assert main(["--model", str(workdir / "model.keras"), "--input-shape", "dynamic", "--out", str(out)]) == 0
    (path,) = out.glob("*.onnx")
    return path


def sidecar_of(path: Path) -> dict:
    return json.loads(Path(f"{path}.json").read_text())


def run(path: Path, packed: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(["rgb"], {"raw": packed})[0]


def test_static_export_matches_keras_in_onnxruntime(static, model):
    assert static.status == STATUS_OK and static.path.name == "model_level3_64x64_opset17.onnx"
    packed = np.random.default_rng(0).uniform(size=(1, *SHAPE, 4)).astype(np.float32)
    got = run(static.path, packed)
    assert got.shape == (1, 16, 16, 3)
    error = np.max(np.abs(got - model(packed).numpy()))
    print(f"onnxruntime vs Keras, random input: {error:.3g}; held-out: {static.max_abs:.3g}")
    assert error <= TOL
    assert static.max_abs <= TOL and static.sidecar["fidelity"]["vs_float"]["max_abs"] == static.max_abs


def test_onnxruntime_is_as_close_to_float64_as_keras(static, model):
    """The measured error is float32 rounding: exact arithmetic (float64 Keras) is as far from either."""
    # the dtype policy, not floatx: a global policy set earlier in this process (mixed-precision training sets
    # and then resets one) would make layers ignore floatx and build a float32 "exact" model
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("float64")
    try:
        exact = build_pynet(3, base_filters=2)
        exact.set_weights([w.astype(np.float64) for w in model.get_weights()])
    finally:
        keras.mixed_precision.set_global_policy(previous)
    assert exact.weights[0].dtype.name == "float64"
    packed = np.random.default_rng(0).uniform(size=(1, *SHAPE, 4)).astype(np.float32)
    truth = exact(packed.astype(np.float64)).numpy()
    onnx_error = np.max(np.abs(run(static.path, packed) - truth))
    keras_error = np.max(np.abs(model(packed).numpy() - truth))
    print(f"vs float64: onnxruntime {onnx_error:.3g}, Keras float32 {keras_error:.3g}")
    assert onnx_error <= 2 * keras_error


def test_sidecar_contents(static, workdir):
    side = sidecar_of(static.path)
    content = static.path.read_bytes()
    digest = hashlib.sha256(content).hexdigest()
    assert side["file"] == {
        "name": static.path.name,
        "bytes": len(content),
        "mb": round(len(content) / 10**6, 6),  # MB = 10^6 bytes
        "sha256": digest,
    }
    assert side["source"]["sha256"] == hashlib.sha256((workdir / "model.keras").read_bytes()).hexdigest()
    assert side["source"]["level"] == 3 and side["export_format"]["name"] == "onnx"
    assert side["settings"]["opset"] == 17 and side["settings"]["input_shape"] == "64x64"
    assert side["settings"]["batch_shape"] == [1, 64, 64, 4]
    assert side["inputs"] == [
        {
            "name": "raw",
            "shape": [1, 64, 64, 4],
            "shape_signature": [1, 64, 64, 4],
            "dtype": "float32",
            "quantization": None,
        }
    ]
    assert side["outputs"][0]["name"] == "rgb" and side["outputs"][0]["shape"] == [1, 16, 16, 3]
    assert side["ops"]["Conv"] > 0 and all(count > 0 for count in side["ops"].values())
    proto = onnx.load(static.path)
    assert side["ops"]["Conv"] == sum(node.op_type == "Conv" for node in proto.graph.node)
    assert {o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")} == {17}
    fid = side["fidelity"]
    assert fid["images"] == 2 and fid["input_shape"] == list(SHAPE) and fid["vs_float"]["psnr"] > 90
    gt = fid["vs_ground_truth"]
    assert gt["delta_psnr"] == pytest.approx(gt["file"]["psnr"] - gt["float"]["psnr"], abs=1e-9)
    versions = side["versions"]
    assert versions["onnx"] == onnx.__version__ and versions["onnxruntime"] == ort.__version__
    assert versions["tf2onnx"] and versions["tensorflow"]
    assert side["calibration"] is None and side["timing"]["convert_s"] > 0


def test_custom_layers_map_to_plain_onnx_ops(static, model):
    names = {type(layer) for layer in model.layers}
    assert InstanceNorm in names and ScaledTanh in names
    proto = onnx.load(static.path)
    assert {node.domain for node in proto.graph.node} <= {"", "ai.onnx"}  # nothing left as a TF or custom op
    ops = sidecar_of(static.path)["ops"]
    # instance norm: mean over H, W (GlobalAveragePool), sqrt, reciprocal; ScaledTanh: Tanh, Mul, Add
    assert {"GlobalAveragePool", "Sqrt", "Reciprocal", "Tanh", "Mul", "Add"} <= set(ops)
    assert ops["Tanh"] == 1


def test_dynamic_export_runs_at_several_sizes(dynamic, model):
    side = sidecar_of(dynamic)
    assert dynamic.name == "model_level3_dynamic_opset17.onnx"
    assert side["inputs"][0]["shape"] == [1, "height", "width", 4]
    assert side["inputs"][0]["shape_signature"] == [1, -1, -1, 4]
    assert side["outputs"][0]["shape"] == [1, "out_height", "out_width", 3]
    assert side["settings"]["input_shape"] == "dynamic" and side["fidelity"]["input_shape"] == [224, 224]
    assert side["fidelity"]["vs_float"]["max_abs"] <= TOL
    rng = np.random.default_rng(1)
    for height, width in ((64, 64), (96, 128)):
        packed = rng.uniform(size=(1, height, width, 4)).astype(np.float32)
        got = run(dynamic, packed)
        assert got.shape == (1, height // 4, width // 4, 3)
        assert np.max(np.abs(got - model(packed).numpy())) <= TOL


def test_over_the_error_bar_is_not_written(workdir, tmp_path, capsys):
    argv = [
        "--model",
        str(workdir / "level5.keras"),
        "--input-shape",
        "64x64",
        "--max-abs-error",
        "1e-12",
        "--out",
        str(tmp_path / "out"),
    ]
    assert main(argv) == 1
    captured = capsys.readouterr()
    assert not (tmp_path / "out").exists()
    assert STATUS_ABOVE in captured.out
    assert "onnx: above --max-abs: not written: max abs error" in captured.err


def test_one_export_writes_tflite_and_onnx_side_by_side(workdir, tmp_path, capsys):
    """ONNX is a row of the one format registry: ``export/to_tflite.py --float32 --onnx`` writes both in one
    run, one table, each file with the sidecar settings of its kind."""
    from export.to_tflite import main as export_main

    argv = ["--model", str(workdir / "model.keras"), "--input-shape", "64x64", "--out", str(tmp_path)]
    assert export_main([*argv, "--float32", "--onnx", "--opset", "18"]) == 0
    rows = [
        line.split()[0]
        for line in capsys.readouterr().out.splitlines()
        if line.endswith((".tflite", ".onnx"))
    ]
    assert rows == ["float32", "onnx"]
    onnx_side = sidecar_of(tmp_path / "model_level3_64x64_opset18.onnx")
    tflite_side = sidecar_of(tmp_path / "model_level3_64x64_float32.tflite")
    assert (
        onnx_side["settings"]["opset"] == 18
        and onnx_side["settings"]["execution_provider"] == "CPUExecutionProvider"
    )
    assert "min_psnr" not in onnx_side["settings"] and "opset" not in tflite_side["settings"]
    assert onnx_side["fidelity"]["vs_float"]["max_abs"] <= TOL


def test_a_mobile_isp_exports_at_its_own_sizes(tmp_path):
    """The network is the model's (a bare mobile ISP file: read off its layers): 36x52 is a multiple of its 4,
    not of PyNET's 16."""
    keras.utils.set_random_seed(0)
    build_mobile(2).save(tmp_path / "mobile.keras")
    (result,) = export_model(tmp_path / "mobile.keras", ["onnx"], out=tmp_path / "out", input_shape=(36, 52))
    assert result.status == STATUS_OK, result.message
    side = result.sidecar
    assert side["source"]["arch"] == "mobile" and side["settings"]["input_shape"] == "36x52"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--opset", "12"], "--opset 12: choose 17..18"),
        (["--opset", "19"], "--opset 19: choose 17..18"),
        (["--input-shape", "100x100"], "not a multiple of 16"),
        (["--input-shape", "big"], "--input-shape"),
        (["--max-abs-error", "0"], "--max-abs-error must be positive"),
    ],
)
def test_invalid_arguments_are_one_line_errors(argv, message, workdir, capsys):
    assert main(["--model", str(workdir / "model.keras"), "--out", str(workdir / "bad"), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err
    assert not (workdir / "bad").exists()


def test_opset_12_refused_as_a_script_from_the_repo_root(workdir):
    process = subprocess.run(
        [sys.executable, "export/to_onnx.py", "--model", str(workdir / "model.keras"), "--opset", "12"],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert process.returncode == 2
    assert process.stderr.strip().splitlines()[-1] == (
        "error: --opset 12: choose 17..18 (17 is the default; tf2onnx 1.17.0 converts up to 18)"
    )
