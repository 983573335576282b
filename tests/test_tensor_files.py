"""android_bench.tensor_files against real converted TFLite files, and tests/fakes/benchmark_model's input
files and output dump (the fake runs directly, without the fake adb: what it prints and writes is tested).

Models: a 1x8x8x4 -> 1x16x16x3 conv + depth-to-space net, converted as float32, as full-integer int8 with
float I/O (the converter's own QUANTIZE/DEQUANTIZE: the reference for the quantized files), with uint8 and
with int8 I/O (the same representative dataset, so the same scales), and with dynamic height and width.
"""

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras
from ai_edge_litert.interpreter import Interpreter

from android_bench import tensor_files
from android_bench.tensor_files import TensorFileError

# the converter warns that a float model's inputs have no statistics: expected, calibration supplies them
pytestmark = pytest.mark.filterwarnings("ignore:Statistics for quantized inputs:UserWarning")
FAKE = Path(__file__).resolve().parent / "fakes" / "benchmark_model"
SHAPE = (1, 8, 8, 4)


def _net(spatial: int | None) -> keras.Model:
    inputs = keras.Input((spatial, spatial, 4), batch_size=1)
    features = keras.layers.Conv2D(12, 3, padding="same")(inputs)
    return keras.Model(inputs, keras.layers.Lambda(lambda t: tf.nn.depth_to_space(t, 2))(features))


def _int8(model: keras.Model, io: tf.DType | None) -> bytes:
    samples = [np.random.default_rng(seed).random(SHAPE, dtype=np.float32) for seed in range(8)]
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([sample] for sample in samples)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    if io is not None:
        converter.inference_input_type = converter.inference_output_type = io
    return converter.convert()


@pytest.fixture(scope="module")
def models() -> dict[str, bytes]:
    keras.utils.set_random_seed(7)
    net = _net(8)
    return {
        "float32": tf.lite.TFLiteConverter.from_keras_model(net).convert(),
        "int8_float_io": _int8(net, None),
        "uint8": _int8(net, tf.uint8),
        "int8": _int8(net, tf.int8),
        "dynamic": tf.lite.TFLiteConverter.from_keras_model(_net(None)).convert(),
    }


@pytest.fixture()
def packed() -> np.ndarray:
    return np.random.default_rng(3).random(SHAPE[1:], dtype=np.float32)


def _run(content: bytes, feed: np.ndarray) -> tuple[np.ndarray, list[dict]]:
    """The raw first output of one LiteRT run, and the output details."""
    interpreter = Interpreter(model_content=content)
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], feed)
    interpreter.invoke()
    details = interpreter.get_output_details()
    return interpreter.get_tensor(details[0]["index"]), details


def _fed(content: bytes, packed: np.ndarray) -> np.ndarray:
    """``input_bytes`` read back the way benchmark_model does: raw bytes in the input's own type."""
    detail = Interpreter(model_content=content).get_input_details()[0]
    raw = tensor_files.input_bytes(packed, detail)
    tensor_files.check_size(raw, detail, SHAPE)
    return np.frombuffer(raw, dtype=detail["dtype"]).reshape(SHAPE)


def test_float32_file_is_the_packed_values(models, packed):
    fed = _fed(models["float32"], packed)
    np.testing.assert_array_equal(fed, packed[None])  # exact: float32 bytes of the same values
    raw, details = _run(models["float32"], fed)
    (dumped,) = tensor_files.read_outputs(raw.tobytes(), details)
    np.testing.assert_array_equal(dumped, _run(models["float32"], packed[None])[0])


@pytest.mark.parametrize("io", ["uint8", "int8"])
def test_quantized_file_matches_the_converters_own_quantization(models, packed, io):
    raw, details = _run(models[io], _fed(models[io], packed))
    (dumped,) = tensor_files.read_outputs(raw.tobytes(), details)
    scale, zero_point = details[0]["quantization"]
    np.testing.assert_array_equal(dumped, (raw.astype(np.float32) - zero_point) * np.float32(scale))
    reference, reference_details = _run(models["int8_float_io"], packed[None])
    assert reference_details[0]["quantization"] == (0.0, 0)  # float output: dequantized inside the model
    # same scales (same representative data): only a rounding tie on the input could move an output, and by
    # at most one output step
    np.testing.assert_allclose(dumped, reference, rtol=0, atol=scale * 1.001)


def test_quantization_rule_rounds_half_away_and_clips():
    # scale 0.25 divides exactly, so 0.125 and 0.625 are ties (0.5, 2.5): half-to-even would give 0 and 2
    detail = {"name": "x", "dtype": np.uint8, "shape": [1, 1, 1, 4], "quantization": (0.25, 0)}
    values = np.array([[[0.0, 0.125, 0.625, 100.0]]], dtype=np.float32)
    assert list(tensor_files.input_bytes(values, detail)) == [0, 1, 3, 255]
    signed = {**detail, "dtype": np.int8, "quantization": (0.25, -128)}
    offset = np.frombuffer(tensor_files.input_bytes(values, signed), np.int8)
    assert offset.tolist() == [-128, -127, -125, 127]
    negative = np.array([[[-0.125, -0.625, 0.125, -100.0]]], dtype=np.float32)
    centred = np.frombuffer(
        tensor_files.input_bytes(negative, {**signed, "quantization": (0.25, 0)}), np.int8
    )
    assert centred.tolist() == [-1, -3, 1, -128]
    half = {**detail, "dtype": np.float16, "quantization": (0.0, 0)}
    assert tensor_files.input_bytes(values, half) == values.astype("<f2").tobytes()


def test_refuses_what_it_cannot_encode():
    raw_uint8 = {"name": "x", "dtype": np.uint8, "shape": [1, 1, 1, 4], "quantization": (0.0, 0)}
    with pytest.raises(TensorFileError, match="without quantization parameters"):
        tensor_files.input_bytes(np.zeros((1, 1, 4), np.float32), raw_uint8)
    with pytest.raises(TensorFileError, match="takes 4 channels, the packed image has 3"):
        tensor_files.input_bytes(np.zeros((1, 1, 3), np.float32), {**raw_uint8, "dtype": np.float32})


def test_size_check_names_the_file_and_both_sizes(models, tmp_path):
    detail = Interpreter(model_content=models["uint8"]).get_input_details()[0]
    assert tensor_files.expected_size(detail, SHAPE) == 256
    short = tmp_path / "held_out.raw"
    short.write_bytes(bytes(255))
    with pytest.raises(TensorFileError) as error:
        tensor_files.check_size(short, detail, SHAPE)
    assert f"{short} is 255 bytes, but benchmark_model needs 256 bytes" in str(error.value)
    assert f"The size of {short} is 255 bytes. It should be 256 bytes." in str(error.value)
    with pytest.raises(TensorFileError, match="^dump.raw is 4 bytes, but benchmark_model needs 256 bytes"):
        tensor_files.check_size(bytes(4), detail, SHAPE, name="dump.raw")


def test_output_dump_of_the_wrong_size_is_refused(models):
    raw, details = _run(models["float32"], np.zeros(SHAPE, np.float32))
    with pytest.raises(
        TensorFileError, match=r"dump is 3068 bytes, but the model's outputs take 3072: .*1x16x16x3"
    ):
        tensor_files.read_outputs(raw.tobytes()[:-4], details)


def test_details_at_the_shape_run(models):
    detail, outputs = tensor_files.tensor_details(models["dynamic"], (1, 12, 20, 4))
    assert list(detail["shape"]) == [1, 12, 20, 4]
    assert list(outputs[0]["shape"]) == [1, 24, 40, 3]  # the dump has no shapes: they come from here


def test_flag_names_and_warnings():
    assert tensor_files.flag_layer_name("serving_default_keras_tensor:0") == "serving_default_keras_tensor_0"
    output = (
        "STARTING!\nWARN: Unconsumed cmdline flags: --output_filepath=/d/o.raw --foo=1\n"
        "Unconsumed cmdline flags: --x=2"  # older tools log without a severity tag
    )
    assert tensor_files.unconsumed_flags(output) == ["--output_filepath=/d/o.raw", "--foo=1", "--x=2"]
    assert tensor_files.unconsumed_flags("INFO: STARTING!") == []
    assert tensor_files.tool_supports_output_dump("sh: benchmark_model: not found") is None


# --- tests/fakes/benchmark_model, run as the fake adb runs it (every run imports TensorFlow: ~4 s) ---


def _fake(*args: str, old: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FAKE_BENCHMARK_")}
    env.update({"FAKE_BENCHMARK_NO_OUTPUT_FILEPATH": old} if old else {})
    return subprocess.run(
        [sys.executable, str(FAKE), *args], capture_output=True, text=True, env=env, check=False
    )


def _flags(model: Path, name: str, values: Path, dump: Path) -> list[str]:
    return [
        f"--graph={model}",
        "--num_threads=1",
        "--warmup_runs=0",
        "--num_runs=1",
        f"--input_layer={name}",
        f"--input_layer_shape={','.join(map(str, SHAPE))}",
        f"--input_layer_value_files={name}:{values}",
        f"--output_filepath={dump}",
    ]


def _files(models: dict, kind: str, packed: np.ndarray, folder: Path) -> tuple[Path, Path, dict]:
    model, values = folder / f"{kind}.tflite", folder / f"{kind}_input0.raw"
    model.write_bytes(models[kind])
    detail = Interpreter(model_content=models[kind]).get_input_details()[0]
    values.write_bytes(tensor_files.input_bytes(packed, detail))
    return model, values, detail


@pytest.mark.parametrize("kind", ["float32", "uint8"])
def test_fake_dumps_what_litert_computes(models, packed, tmp_path, kind):
    model, values, detail = _files(models, kind, packed, tmp_path)
    name, dump = tensor_files.flag_layer_name(detail["name"]), tmp_path / "out.raw"
    done = _fake(*_flags(model, name, values, dump))
    assert done.returncode == 0, done.stdout + done.stderr
    assert (
        f"WARN: Tensor # {detail['index']} is named {detail['name']} but flags call it {name}" in done.stdout
    )
    assert done.stdout.index("Inference timings in us") < done.stdout.index("Memory footprint delta")
    raw, details = _run(models[kind], _fed(models[kind], packed))
    # exact: the same LiteRT kernels on the same bytes (XNNPACK in both, one thread)
    np.testing.assert_array_equal(
        tensor_files.read_outputs(dump.read_bytes(), details)[0],
        tensor_files.read_outputs(raw.tobytes(), details)[0],
    )


def test_fake_aborts_on_a_file_of_the_wrong_size(models, packed, tmp_path):
    model, values, detail = _files(models, "float32", packed, tmp_path)
    values.write_bytes(values.read_bytes()[:-1])
    done = _fake(*_flags(model, "x", values, tmp_path / "out.raw"))
    assert done.returncode == -signal.SIGABRT  # std::abort(); a device shell reports 128 + 6 = 134
    fatal = f"FATAL: The size of {values} is 1023 bytes. It should be 1024 bytes."
    assert done.stderr.strip().splitlines()[-1] == fatal  # after LiteRT's own stderr lines
    assert "Initialized session in" in done.stdout and "Running benchmark" not in done.stdout
    assert not (tmp_path / "out.raw").exists()
    with pytest.raises(TensorFileError, match="The size of .* is 1023 bytes. It should be 1024 bytes."):
        tensor_files.check_size(values, detail, SHAPE)  # the same verdict before the push


def test_fake_rejects_an_unescaped_colon_in_the_name(models, packed, tmp_path):
    model, values, detail = _files(models, "float32", packed, tmp_path)
    done = _fake(*_flags(model, detail["name"], values, tmp_path / "out.raw"))
    item = f"{detail['name']}:{values}"
    assert done.returncode == 1
    assert done.stdout.splitlines()[1:] == [
        f"ERROR: {item} contains more than one delimiter.",
        f"ERROR: Wrong input value file item specified: {item}",
        "ERROR: 1",
        "ERROR: Benchmarking failed.",
    ]


@pytest.mark.parametrize("old", ["warn", "silent"])
def test_fake_old_tool_writes_no_dump(models, packed, tmp_path, old):
    model, values, _ = _files(models, "float32", packed, tmp_path)
    dump = tmp_path / "out.raw"
    done = _fake(*_flags(model, "x", values, dump), old=old)
    assert done.returncode == 0, done.stdout + done.stderr
    assert not dump.exists()
    expected = [f"--output_filepath={dump}"] if old == "warn" else []
    assert tensor_files.unconsumed_flags(done.stdout) == expected


@pytest.mark.parametrize("old, supported", [(None, True), ("warn", False)])
def test_fake_help_lists_the_flags(old, supported):
    done = _fake("--help", old=old)
    assert done.returncode == 1 and done.stdout.rstrip().endswith("ERROR: Benchmarking failed.")
    assert tensor_files.tool_supports_output_dump(done.stdout) is supported
    # the runtime info flags (2024) with the real defaults and help, in a tool that dumps outputs (2022)
    listed = [line.split("\t") for line in done.stdout.splitlines() if "model_runtime_info" in line]
    assert [[row[1].rstrip(), *row[2:]] for row in listed] == (
        [
            ["--export_model_runtime_info=false", "bool", "optional", "Enable Model Runtime Info Export"],
            [
                "--model_runtime_info_output_file=",
                "string",
                "optional",
                "Proto File to export model runtime info to",
            ],
        ]
        if supported
        else []
    )
