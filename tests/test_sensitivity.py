"""Per-layer int8 error analysis (QuantizationDebugger) and --float-fallback, on the tiny PyNET.

The model is level 5 at base width 2 (64x64 packed -> 4x4 RGB, He-normal weights as in test_export), whose
int8 file is far from float (12.9 dB measured, see test_export for why instance norm does that): a net on
which keeping layers in float visibly matters. An analysis takes about 8 s, an export about 12 s.
"""

import json
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras
from model_fixtures import informative

from calibration.calibration_set import CalibrationSet
from calibration.crops import build_calibration
from export import fidelity, sensitivity
from export.formats import FORMATS, STATUS_BELOW, STATUS_OK, ExportSettings
from export.pipeline import export_model
from export.tflite import converter_for
from export.to_tflite import main
from pynet_tf import runs
from pynet_tf.nets.pynet.layers import InstanceNorm
from pynet_tf.nets.pynet.model import build_pynet

SHAPE = (64, 64)
# --float-fallback auto's bar for this net: measured 12.9 dB in int8, 17.0 dB with every norm in float,
# 28.4 dB with the 32 worst of its 55 layers in float, 32.9 dB with 38, 118.9 dB with all (no int8 op left).
AUTO_MIN_PSNR = 30.0
# A quantized op's own error is rounding of its output: RMSE/scale 1/sqrt(12) = 0.29 for a uniform spread;
# measured 0.29-0.44 for this net's hidden convolutions and 1.18 for its output conv (int8 bias and a
# narrow output range); a mistake in the verify wiring would give ~0 or >> 1 (tens of steps).
ROUNDING = (0.2, 2.0)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("sensitivity")
    keras.utils.set_random_seed(0)
    informative(build_pynet(5, base_filters=2)).save(folder / "model.keras")
    build_calibration("samples", 8, SHAPE, candidates=16).save(folder / "calibration.npz")
    return folder


@pytest.fixture(scope="module")
def model(workdir) -> keras.Model:
    return runs.load_model(workdir / "model.keras")


@pytest.fixture(scope="module")
def analysis(workdir, model) -> sensitivity.Analysis:
    return sensitivity.analyse(
        model, (1, *SHAPE, 4), CalibrationSet.load(workdir / "calibration.npz"), float_ops=True
    )


def sidecar_of(path: Path) -> dict:
    return json.loads(Path(f"{path}.json").read_text())


def test_every_quantized_tensor_is_measured_and_ranked(analysis, model):
    errors = analysis.errors
    layer_names = {layer.name for layer in model.layers}
    assert len(errors) > 100 and all(error.layer in layer_names for error in errors)
    assert [e.nsr for e in errors] == sorted((e.nsr for e in errors), reverse=True)
    convolutions = [e for e in errors if e.op == "CONV_2D"]
    assert convolutions and all(ROUNDING[0] < e.rmse_over_scale < ROUNDING[1] for e in convolutions)
    # max-pool and concatenation pass int8 values through: no error of their own
    passing = [e for e in errors if e.op in ("MAX_POOL_2D", "CONCATENATION")]
    assert passing and all(e.rmse_over_scale < sensitivity.EXACT for e in passing)
    norms = {layer.name for layer in model.layers if isinstance(layer, InstanceNorm)}
    assert analysis.units()[0][0] in norms  # the instance norms lead the ranking on this net


def test_channel_errors_average_over_inputs_as_the_debugger_does():
    # the debugger calls the metric tensor by tensor, input by input, and averages with np.nanmean: an
    # input whose difference holds a NaN drops out of the mean (RSQRTs of the official PyNET's norms do it)
    errors = sensitivity._ChannelErrors()
    for diffs in ([1, 3], [4, 4], [np.nan, 2], [2, 0], [np.nan, np.nan], [np.nan, 1]):  # 2 inputs x 3 rows
        errors(np.array(diffs, np.float32))
    rows = [{"mean_squared_error": "3.5"}, {"mean_squared_error": "16"}, {"mean_squared_error": "nan"}]
    first, second, third = errors.per_row(rows)
    np.testing.assert_allclose(first, [2.5, 4.5])
    np.testing.assert_allclose(second, [16.0, 16.0])
    assert np.isnan(third).all()
    with pytest.raises(RuntimeError, match="order"):
        errors.per_row([rows[1], rows[0], rows[2]])


def test_float_statistics_in_passes_are_the_whole_models(analysis, workdir):
    # the reference: one run keeping every tensor (LiteRT's experimental_preserve_all_tensors, which fails
    # past 2 GiB of tensors), against the statistics read as outputs, every tensor in a pass of its own
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    content = analysis.debugger.calibrated_model
    crops = CalibrationSet.load(workdir / "calibration.npz")
    interpreter = Interpreter(
        model_content=content,
        experimental_preserve_all_tensors=True,
        experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
    )
    interpreter.allocate_tensors()
    source = interpreter.get_input_details()[0]["index"]
    (tensors,) = sensitivity._output_groups(content, sensitivity.STATISTICS_PASS_BYTES)  # {name: index}
    per_crop = []
    for crop in crops.inputs:
        interpreter.set_tensor(source, crop[np.newaxis].astype(np.float32))
        interpreter.invoke()
        values = {name: interpreter.get_tensor(index) for name, index in tensors.items()}
        per_crop.append({name: v.reshape(-1, v.shape[-1] if v.ndim else 1) for name, v in values.items()})
    whole = sensitivity.float_statistics(content, crops)
    assert len(sensitivity._output_groups(content, 1)) == len(whole) == len(tensors) > 100
    for name, variance in sensitivity.float_statistics(content, crops, pass_bytes=1).items():
        expected = np.concatenate([crop[name] for crop in per_crop]).astype(np.float64).var(axis=0)
        # XNNPACK's float kernels against the builtin ones: another summation order and its own RSQRT and
        # TANH approximations (1.1e-5 of a norm's RSQRT variance measured); stale memory is off by 1e38
        np.testing.assert_allclose(variance, expected, rtol=5e-5, atol=1e-9, err_msg=name)
        np.testing.assert_array_equal(variance, whole[name])


def test_plain_quantization_is_the_converters_int8_bit_for_bit(analysis, workdir, model):
    calibration = CalibrationSet.load(workdir / "calibration.npz")
    packed = np.random.default_rng(0).uniform(size=(*SHAPE, 4)).astype(np.float32)
    for io in (tf.float32, tf.uint8):
        converter = converter_for(model, (1, *SHAPE, 4))
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = calibration.representative_dataset
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = converter.inference_output_type = io
        expected = fidelity.TFLiteRunner(converter.convert())(packed)
        np.testing.assert_array_equal(fidelity.TFLiteRunner(analysis.quantize((), io))(packed), expected)


def test_names_resolve_to_layers_globs_and_tensors(analysis):
    first_norm = next(unit for unit, _ in analysis.units() if unit.endswith("_norm"))
    worst = analysis.errors[0].tensor
    resolved = analysis.resolve([first_norm, "*_norm", worst, "no_such_layer"])
    assert resolved[first_norm] and all(f"/{first_norm}/" in t for t in resolved[first_norm])
    assert set(resolved[first_norm]) < set(resolved["*_norm"])
    assert resolved[worst] == [worst]
    assert resolved["no_such_layer"] == []


def test_passthrough_layers_follow_their_float_neighbours(analysis):
    pools = [e for e in analysis.errors if e.op == "MAX_POOL_2D"]
    everything_else = [e.tensor for e in analysis.errors if e.op != "MAX_POOL_2D"]
    assert {e.tensor for e in pools} <= set(analysis.with_passthrough(everything_else))
    assert analysis.with_passthrough([]) == []


def test_fallback_by_name_keeps_the_norms_in_float(workdir, model, analysis):
    (result,) = export_model(
        workdir / "model.keras",
        ["int8"],
        out=workdir / "names",
        input_shape=SHAPE,
        calibration=workdir / "calibration.npz",
        float_fallback=("*_norm",),
    )
    assert result.status == STATUS_OK and result.path.name.endswith("_int8_fallback.tflite")
    side = sidecar_of(result.path)
    norms = {layer.name for layer in model.layers if isinstance(layer, InstanceNorm)}
    fallback = side["float_fallback"]
    assert fallback["requested"] == ["*_norm"] and set(fallback["layers"]) == norms
    assert side["full_integer"] is False and "not full-integer" in result.note
    # the float ops are the norms' own: mean, centre and variance, 1/sqrt(var + eps), scale and shift
    assert set(fallback["float_ops"]) == {"MEAN", "SUB", "ADD", "RSQRT", "MUL"}
    assert side["settings"]["float_fallback"] == ["*_norm"]
    # measured 17.0 dB against 12.9 dB for full-integer int8 on this net
    items = fidelity.held_out(model, SHAPE)
    assert result.psnr_vs_float > fidelity.measure(analysis.quantize(), items)["vs_float"]["psnr"] + 2.0


def test_integer_io_needs_a_quantized_input(analysis):
    norms = [t for members in analysis.resolve(["*_norm"]).values() for t in members]
    content = analysis.quantize(norms, tf.uint8)
    runner = fidelity.TFLiteRunner(content)
    assert runner.input["dtype"] == runner.output["dtype"] == np.uint8
    with pytest.raises(sensitivity.UnquantizedIOError, match="uint8 inputs/outputs need the model's input"):
        analysis.quantize(analysis.resolve(["l1_enc_3x3a"])["l1_enc_3x3a"], tf.uint8)


def test_file_names_say_fallback_and_io():
    settings = ExportSettings(SHAPE, io="uint8", float_fallback=("*_norm",))
    assert FORMATS["int8"].file_suffix(settings) == "_int8_fallback_uint8io.tflite"
    assert FORMATS["int8"].file_suffix(ExportSettings(SHAPE)) == "_int8.tflite"
    assert FORMATS["float32"].file_suffix(settings) == "_float32.tflite"


def test_auto_reaches_min_psnr_and_prints_why(workdir, capsys):
    out = workdir / "auto"
    argv = [
        "--model",
        str(workdir / "model.keras"),
        "--int8",
        "--input-shape",
        "64x64",
        "--calibration",
        str(workdir / "calibration.npz"),
        "--float-fallback",
        "auto",
        "--min-psnr",
        str(AUTO_MIN_PSNR),
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    (path,) = out.glob("*_int8_fallback.tflite")
    side = sidecar_of(path)
    fallback = side["float_fallback"]
    assert fallback["requested"] == "auto" and fallback["reached"] is True
    assert side["fidelity"]["vs_float"]["psnr"] >= AUTO_MIN_PSNR
    counts = [step["layers"] for step in fallback["steps"]]
    assert counts == sorted(counts) and counts[0] == 0 and 0 < len(fallback["layers"])
    chosen = {step["layers"]: step["psnr_vs_float"] for step in fallback["steps"]}
    assert chosen[fallback["ranked_layers"]] >= AUTO_MIN_PSNR
    assert fallback["ranked_layers"] <= len(fallback["layers"])  # plus the max-pools between them
    # no count below the chosen one reached the bar (the search kept the fewest it found)
    assert all(psnr < AUTO_MIN_PSNR for count, psnr in chosen.items() if count < fallback["ranked_layers"])
    assert fallback["steps"][0]["psnr_vs_float"] < AUTO_MIN_PSNR  # int8 alone does not reach it
    assert side["quantization_debug"]["layers"][0]["layer"] == fallback["layers"][0]
    assert "not full-integer" in printed and "int8 error, worst layers" in printed
    assert "float fallback (auto)" in printed and "delegates: GPU full; NNAPI full" in printed


def test_auto_says_when_it_cannot(workdir, capsys):
    out = workdir / "cannot"
    argv = [
        "--model",
        str(workdir / "model.keras"),
        "--int8",
        "--input-shape",
        "64x64",
        "--calibration",
        str(workdir / "calibration.npz"),
        "--float-fallback",
        "auto",
        "--min-psnr",
        "200",
        "--out",
        str(out),
    ]
    assert main(argv) == 1
    captured = capsys.readouterr()
    assert STATUS_BELOW in captured.out and not out.exists()
    assert "float fallback cannot reach --min-psnr 200" in captured.err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--int8", "--float-fallback", "auto"], "--float-fallback auto needs --min-psnr"),
        (["--int8", "--float-fallback", "l2_enc_3x3a_nrom"], "did you mean 'l2_enc_3x3a_norm'"),
        (["--int8", "--float-fallback", "auto,l1_pool"], "give it alone"),
        (["--int8", "--float-fallback", ","], "--float-fallback: give 'auto'"),
        (["--float32", "--float-fallback", "*_norm"], "--float-fallback applies only to --int8"),
    ],
)
def test_bad_float_fallback_is_a_one_line_error(argv, message, workdir, capsys):
    out = workdir / "bad"
    common = ["--model", str(workdir / "model.keras"), "--input-shape", "64x64", "--out", str(out)]
    assert main([*common, *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err
    assert not out.exists()
