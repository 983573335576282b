"""Delegate op-set report: the GPU and NNAPI tables applied to real TFLite files.

Files: the tiny PyNET (level 5, base width 2, 64x64 packed) as float32, fp16, int8 and int16x8 through the export
registry, the third-party MicroISP model (its ops only: nothing is run), and small graphs built here with
ops the tables' sources leave out.
"""

from collections import Counter
from pathlib import Path

import pytest
import tensorflow as tf
import tf_keras as keras
from model_fixtures import informative

from calibration.crops import build_calibration
from export import delegates
from export.delegates import API_NNAPI_12, FULL, NONE, PARTIAL, delegate_report, summary
from export.formats import (
    ExportSettings,
    as_conversion,
    convert_float32,
    convert_fp16,
    convert_int8,
    convert_int16x8,
)
from pynet_tf.nets.pynet.layers import InstanceNorm
from pynet_tf.nets.pynet.model import build_pynet

MICRO_ISP = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "third_party" / "MicroISP.tflite"
SHAPE = (64, 64)


@pytest.fixture(scope="module")
def pynet() -> dict:
    keras.utils.set_random_seed(0)
    model = informative(build_pynet(5, base_filters=2))
    settings = ExportSettings(SHAPE, calibration=build_calibration("samples", 4, SHAPE, candidates=8))
    converters = {
        "float32": convert_float32,
        "fp16": convert_fp16,
        "int8": convert_int8,
        "int16x8": convert_int16x8,
    }
    files = {name: as_conversion(convert(model, settings)).content for name, convert in converters.items()}
    norms = sum(isinstance(layer, InstanceNorm) for layer in model.layers)
    return {"files": files, "norms": norms}


def _graph(function) -> bytes:
    spec = tf.TensorSpec([1, 8, 8, 4], tf.float32)
    concrete = tf.function(function, input_signature=[spec]).get_concrete_function()
    return tf.lite.TFLiteConverter.from_concrete_functions([concrete], tf.Module()).convert()


def test_micro_isp_runs_whole_on_both_delegates():
    report = delegate_report(MICRO_ISP.read_bytes())
    # 298 ops: CONV_2D, PRELU, MUL, ADD, MEAN, RESHAPE, LOGISTIC, TANH, DEPTH_TO_SPACE, CONCATENATION
    assert report["ops"] == 298
    assert report["gpu"]["supported"] == report["nnapi"]["supported"] == FULL
    assert report["gpu"]["unsupported_ops"] == report["nnapi"]["unsupported_ops"] == {}
    assert report["nnapi"]["min_android_api"] == API_NNAPI_12  # PRELU arrived with NNAPI 1.2
    assert summary(report) == "GPU full; NNAPI full, API 29+"


def test_pynet_float_runs_whole_on_both_delegates(pynet):
    report = delegate_report(pynet["files"]["float32"])
    assert report["gpu"]["supported"] == FULL and report["gpu"]["notes"] == []
    # InstanceNorm squares with MUL: tf.square(x - mean) would become SQUARED_DIFFERENCE, which NNAPI does not
    # map (the float graph then split at every norm)
    assert report["nnapi"]["supported"] == FULL and report["nnapi"]["unsupported_ops"] == {}


def test_pynet_int8_adds_float_only_and_requantizing_ops_on_nnapi(pynet):
    report = delegate_report(pynet["files"]["int8"])
    assert report["gpu"]["supported"] == FULL and "run in float on the GPU" in report["gpu"]["notes"][0]
    rejected, why = report["nnapi"]["unsupported_ops"], report["nnapi"]["unsupported_why"]
    assert rejected["RSQRT"] == pynet["norms"]
    assert why["RSQRT"] == "quant inputs are not accepted"
    # a norm's two MEANs change scale (values -> their mean, squares -> variance): NNAPI wants them equal
    assert 0 < rejected["MEAN"] <= 2 * pynet["norms"]
    assert why["MEAN"].startswith("quantized output scale/zero-point differ")
    assert set(rejected) == {"RSQRT", "MEAN"}


def test_int16_activations_run_on_neither_delegate(pynet):
    content = pynet["files"]["int16x8"]
    on_int16 = Counter(node.name for node in delegates.op_nodes(content) if node.input_kind == "int16")
    assert on_int16["CONV_2D"] > 0 and on_int16["RSQRT"] == pynet["norms"]
    report = delegate_report(content)
    for key in ("gpu", "nnapi"):
        # every op on int16 data is refused; only the float io's QUANTIZE is left to the delegate
        assert report[key]["unsupported_ops"] == dict(on_int16.most_common())
        assert report[key]["supported"] == PARTIAL
    assert report["nnapi"]["unsupported_why"]["CONV_2D"] == "int16 inputs are not accepted"


def test_fp16_weights_are_folded_for_nnapi(pynet):
    report = delegate_report(pynet["files"]["fp16"])
    assert "DEQUANTIZE" not in report["nnapi"]["unsupported_ops"]  # constant fp16 -> fp32 weights
    assert any("only whole" in note for note in report["nnapi"]["notes"])
    assert report["gpu"]["supported"] == FULL


def test_ops_outside_the_tables_are_counted_per_delegate():
    content = _graph(
        lambda x: (
            tf.reverse(x, axis=[1]) * tf.math.top_k(tf.reshape(x, [-1]), 3).values[0]
            + tf.math.ceil(x)
            + tf.math.round(x)
            + tf.math.reduce_std(x)
        )
    )
    report = delegate_report(content)
    # gpu_compatibility.cc has no case for these three; NNAPI's Validate maps TOPK_V2 but not CEIL (only
    # FLOOR), REVERSE_V2, ROUND or the SQUARED_DIFFERENCE of reduce_std
    assert report["gpu"]["unsupported_ops"] == {"TOPK_V2": 1, "REVERSE_V2": 1, "ROUND": 1}
    nnapi = {"CEIL": 1, "REVERSE_V2": 1, "SQUARED_DIFFERENCE": 1, "ROUND": 1}
    assert report["nnapi"]["unsupported_ops"] == nnapi
    assert report["gpu"]["supported"] == report["nnapi"]["supported"] == PARTIAL
    assert summary(report).startswith("GPU partial (TOPK_V2 x1, REVERSE_V2 x1, ROUND x1 unsupported); NNAPI")


def test_transpose_conv_is_judged_by_its_data_input_not_its_output_shape():
    # TRANSPOSE_CONV's inputs are (output_shape int32, filter, data): NNAPI checks the data (API 29+)
    filters = tf.constant(0.1, shape=[3, 3, 4, 4])
    content = _graph(lambda x: tf.nn.conv2d_transpose(x, filters, [1, 16, 16, 4], strides=2))
    report = delegate_report(content)
    assert report["nnapi"]["unsupported_ops"] == {} and report["nnapi"]["min_android_api"] == API_NNAPI_12
    assert report["gpu"]["supported"] == FULL


def test_a_file_of_only_unsupported_ops_is_none():
    report = delegate_report(_graph(lambda x: tf.math.round(x)))
    assert report["gpu"]["supported"] == report["nnapi"]["supported"] == NONE
    assert report["nnapi"]["min_android_api"] is None


def test_every_op_is_named_once_per_table():
    # one home per fact: the tables are sets/dicts keyed by the op's LiteRT name, in upper case but the
    # GPU delegate's custom ops, which LiteRT reports by their custom name
    custom = {"Convolution2DTransposeBias", "MaxPoolingWithArgmax2D", "MaxUnpooling2D", "Resampler"}
    assert all(op.isupper() for op in delegates.GPU_OPS - custom)
    assert all(op.isupper() for op in delegates.NNAPI_OPS)
    entries = delegates.NNAPI_OPS.values()
    assert all(entry.float_api or entry.quant_api or entry.other_api for entry in entries)
