"""Raw tensor files for TFLite's ``benchmark_model``: the inputs it reads, the outputs it dumps, its flags.

What the tool does, read from its source (LiteRT = google-ai-edge/LiteRT ``tflite/tools/benchmark/``;
TF = tensorflow/tensorflow ``tensorflow/lite/tools/``), and what this module does about it:

**Input files** (``--input_layer=NAME --input_layer_shape=1,H,W,4 --input_layer_value_files=NAME:FILE``;
LiteRT ``benchmark_tflite_model.cc`` @ 01d971c556e3 ``LoadInputTensorData``, identical in TF @ 0aa069c7491
and 010f3edcdc2). After resizing the input to the given shape and allocating, a non-string tensor's file must
be exactly ``tensor->bytes`` long (elements x the size of the tensor's own type), else the tool logs
``FATAL: The size of FILE is N bytes. It should be M bytes.`` and calls ``std::abort()`` (TF
``tools/logging.h`` @ 202a7abdf1b: FATAL goes to stderr, then abort: SIGABRT, shell exit status 134); an
unreadable file is ``FATAL: Failed to read the input_layer_value_file:FILE``. The bytes are copied as they are
into the tensor before every run (``ResetInputsAndOutputs``, a memcpy): no conversion, no quantization, native
byte order (little-endian on every Android ABI). So ``input_bytes`` quantizes as the converter recorded
(``quantization`` (scale, zero point); round half away from zero, TFLite's ``TfLiteRound``, and clip: a kernel
rounding ties to even differs on exact ties only, by one step) and ``check_size`` refuses a file before it is
pushed. The checks run after init ("Initialized session in ...") and before the first run. Items of
``--input_layer_value_files`` are split on ``,`` and then on ``:``: LiteRT accepts ``::`` for a colon inside a
name (``SplitInputLayerNameAndValueFile``: "ITEM contains more than one delimiter."), TF @ 0aa069c7491 needs
exactly two ``:``-separated parts ("Wrong input value file item specified: ITEM"). Converted Keras models name
their input ``serving_default_...:0``; since the flags' names need not match the model's (a mismatch is only
``WARN: Tensor # I is named X but flags call it Y``, in every version above), ``flag_layer_name`` drops the
separators instead.

**Output dump** (``--output_filepath=FILE``, help text "File path to export outputs layer as binary data.";
LiteRT ``benchmark_tflite_model.cc`` @ 01d971c556e3 ``OutputSaver``; added by tensorflow/tensorflow PR #55493,
approved 2022-07-22, absent from TF @ 0aa069c7491, so prebuilt tools from before mid-2022 lack it). The
listener writes in ``OnBenchmarkEnd``, which ``BenchmarkModel::Run`` (LiteRT ``benchmark_model.cc`` @
7d88950ea445) calls once after the measured runs, after the "Inference timings" and memory lines: the outputs
of the last ``Invoke`` (the last measured run; the last warm-up run with ``--num_runs=0 --min_secs=0``), each
output tensor's raw ``tensor->bytes`` concatenated in the interpreter's ``outputs()`` order (the order of
``get_output_details()``): no header, no shapes, no types. ``read_outputs`` splits it by the output details.
It prints nothing when it writes, and writes nothing, silently, when the file cannot be opened or when init or
the warm-up failed (``Run`` returns before ``OnBenchmarkEnd``); a measured run that fails still gets a dump.
LiteRT also has ``--output_proto_filepath`` (a serialized tf.Example), not used here.

**Unknown flags** (LiteRT ``command_line_flags.cc`` @ 3d0bc1a7018e, ``benchmark_model.cc`` @ 7d88950ea445,
``benchmark_main.cc`` @ 6de1bd66ba92): an unknown ``--name=value`` is left over and warned about,
``WARN: Unconsumed cmdline flags: ARG ARG``, and the run goes on; older tools (TF ``benchmark_model.cc`` @
140b37d45b3) drop them without a word. ``--help`` logs ``ERROR: usage: TOOL <flags>`` and one
``--NAME=DEFAULT<TAB>TYPE<TAB>optional<TAB>HELP`` line per flag, then ``ERROR: Benchmarking failed.``, exit
status 1. ``tool_supports_output_dump`` reads that listing; ``unconsumed_flags`` reads a run's warning.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np

OUTPUT_DUMP_FLAG = "--output_filepath"
_UNCONSUMED = re.compile(r"Unconsumed cmdline flags:(.*)$")
_USAGE = re.compile(r"usage: \S+ <flags>")


class TensorFileError(ValueError):
    """A tensor file that benchmark_model would reject (or a dump that does not fit the model's outputs)."""


def _dtype(detail: dict) -> np.dtype:
    """The tensor's element type in the tool's byte order (little-endian)."""
    return np.dtype(detail["dtype"]).newbyteorder("<")


def expected_size(detail: dict, shape: tuple[int, ...]) -> int:
    """Bytes benchmark_model requires of a value file for this input at ``--input_layer_shape`` ``shape``."""
    return math.prod(int(dim) for dim in shape) * _dtype(detail).itemsize


def check_size(source: Path | bytes, detail: dict, shape: tuple[int, ...], name: str | None = None) -> None:
    """Refuse a value file the tool would abort on; ``name`` names in-memory bytes (default: the path)."""
    size = source.stat().st_size if isinstance(source, Path) else len(source)
    needed = expected_size(detail, shape)
    if size != needed:
        label = name or (str(source) if isinstance(source, Path) else "the tensor file")
        dims = "x".join(str(int(dim)) for dim in shape)
        raise TensorFileError(
            f"{label} is {size} bytes, but benchmark_model needs {needed} bytes for input "
            f"{detail['name']!r} ({dims} {_dtype(detail).name}) and aborts otherwise "
            f'("The size of {label} is {size} bytes. It should be {needed} bytes.")'
        )


def _quantized(values: np.ndarray, detail: dict) -> np.ndarray:
    """``values`` in an integer input's type: q = round(x / scale) + zero_point, clipped to its range."""
    dtype = _dtype(detail)
    scale, zero_point = detail["quantization"]
    if not scale:
        raise TensorFileError(
            f"input {detail['name']!r} is {dtype.name} without quantization parameters: there is no rule to "
            "turn the packed [0, 1] values into it"
        )
    scaled = values.astype(np.float32) / np.float32(scale)  # in float32, as TFLite's QUANTIZE kernel
    rounded = np.sign(scaled) * np.floor(np.abs(scaled) + 0.5)  # half away from zero (std::round)
    info = np.iinfo(dtype)
    return np.clip(rounded + zero_point, info.min, info.max).astype(dtype)


def input_bytes(packed: np.ndarray, detail: dict) -> bytes:
    """The value file for one packed (H, W, C) input: batch 1, C order, in the input's type and quantization.

    Float inputs take the values as they are (float16 rounded to nearest); integer inputs are quantized.
    """
    values = np.asarray(packed)
    if values.ndim != 3:
        raise TensorFileError(f"expected one packed (H, W, C) image, got shape {values.shape}")
    channels = int(detail.get("shape_signature", detail["shape"])[-1])
    if channels > 0 and values.shape[-1] != channels:
        raise TensorFileError(
            f"input {detail['name']!r} takes {channels} channels, the packed image has {values.shape[-1]}"
        )
    dtype = _dtype(detail)
    batch = values[np.newaxis]
    tensor = batch.astype(dtype) if dtype.kind == "f" else _quantized(batch, detail)
    return np.ascontiguousarray(tensor).tobytes()


def _dequantized(raw: np.ndarray, detail: dict) -> np.ndarray:
    """A dumped output as float32: integer outputs through (q - zero_point) * scale."""
    if raw.dtype.kind == "f":
        return raw.astype(np.float32)
    scale, zero_point = detail["quantization"]
    if not scale:
        return raw.astype(np.float32)
    return (raw.astype(np.float32) - np.float32(zero_point)) * np.float32(scale)


def read_outputs(content: bytes, details: list[dict]) -> list[np.ndarray]:
    """The tool's ``--output_filepath`` dump split into float32 arrays of each output's shape.

    ``details`` are the interpreter's output details at the input shape that was run (after
    ``resize_tensor_input`` for a dynamic model: the dump has no shapes of its own).
    """
    sizes = [expected_size(detail, tuple(detail["shape"])) for detail in details]
    if len(content) != sum(sizes):
        listing = ", ".join(
            f"{detail['name']!r} {'x'.join(map(str, detail['shape']))} {_dtype(detail).name} ({size} bytes)"
            for detail, size in zip(details, sizes, strict=True)
        )
        raise TensorFileError(
            f"the output dump is {len(content)} bytes, but the model's outputs take {sum(sizes)}: {listing}"
        )
    arrays, offset = [], 0
    for detail, size in zip(details, sizes, strict=True):
        raw = np.frombuffer(
            content, dtype=_dtype(detail), count=size // _dtype(detail).itemsize, offset=offset
        )
        arrays.append(_dequantized(raw.reshape(tuple(detail["shape"])), detail))
        offset += size
    return arrays


def tensor_details(model_content: bytes, input_shape: tuple[int, ...]) -> tuple[dict, list[dict]]:
    """(input detail, output details) of a one-input model resized to ``input_shape``, as the tool runs it."""
    from ai_edge_litert.interpreter import Interpreter  # LiteRT is loaded only by those who read details

    interpreter = Interpreter(model_content=model_content)
    inputs = interpreter.get_input_details()
    if len(inputs) != 1:
        raise TensorFileError(f"expected a model with one input, this one has {len(inputs)}")
    interpreter.resize_tensor_input(inputs[0]["index"], list(input_shape))
    interpreter.allocate_tensors()
    return interpreter.get_input_details()[0], interpreter.get_output_details()


def flag_layer_name(name: str) -> str:
    """A name for ``--input_layer`` and ``--input_layer_value_files`` that every version parses alike.

    ``:`` and ``,`` separate items there; the tool only warns when the flag's name differs from the model's.
    """
    return re.sub(r"[:,]", "_", name)


def unconsumed_flags(output: str) -> list[str]:
    """The arguments a run's ``Unconsumed cmdline flags:`` warning lists (the tool did not know them)."""
    found = [_UNCONSUMED.search(line) for line in output.splitlines()]
    return [arg for match in found if match for arg in match.group(1).split()]


def tool_supports_output_dump(help_text: str) -> bool | None:
    """Whether ``benchmark_model --help`` lists ``--output_filepath``; None for a text that is no usage."""
    if not _USAGE.search(help_text):
        return None
    return f"{OUTPUT_DUMP_FLAG}=" in help_text
