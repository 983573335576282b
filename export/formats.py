"""The one registry of TFLite export formats: name, file suffix, what it is, which arguments it takes.

Every format is converted by one function of the same shape, ``(model, settings) -> bytes``. Arguments are
checked against the registry before anything is converted (``validate``), so a bad combination fails in a
second with one line naming the flag, not after minutes of conversion.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import tensorflow as tf
import tf_keras as keras

from calibration.calibration_set import CalibrationError, CalibrationSet
from export.tflite import converter_for
from pynet_tf.shapes import InputShapeError, validate_input_shape

DEFAULT_SHAPE = (224, 224)
"""The packed input (H, W) exported when ``--input-shape`` is not given: the paper's 448x448 photo crops."""
IO_TYPES = {"float32": tf.float32, "uint8": tf.uint8, "int8": tf.int8}
"""``--io``: the int8 model's input and output tensor type (float32: quantize/dequantize inside the model)."""


class ExportError(ValueError):
    """An export that cannot run as asked (format, flags, shapes, calibration); the message names the fix."""


@dataclass(frozen=True)
class ExportSettings:
    """What every conversion function is told. ``input_shape`` None: H and W resizable at run time."""

    input_shape: tuple[int, int] | None = DEFAULT_SHAPE
    io: str = "float32"
    calibration: CalibrationSet | None = None
    """int8 only: the representative data (required by ``convert_int8``)."""

    @property
    def batch_shape(self) -> tuple[int | None, ...]:
        """Batch fixed at 1; H and W static unless ``input_shape`` is None."""
        height, width = self.input_shape or (None, None)
        return (1, height, width, 4)


def convert_float32(model: keras.Model, settings: ExportSettings) -> bytes:
    return converter_for(model, settings.batch_shape).convert()


def convert_fp16(model: keras.Model, settings: ExportSettings) -> bytes:
    converter = converter_for(model, settings.batch_shape)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_types = [tf.float16]
    return converter.convert()


def convert_dynamic(model: keras.Model, settings: ExportSettings) -> bytes:
    converter = converter_for(model, settings.batch_shape)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    return converter.convert()


def convert_int8(model: keras.Model, settings: ExportSettings) -> bytes:
    if settings.calibration is None:
        raise ExportError("int8 needs a calibration set (--calibration FILE or the default)")
    converter = converter_for(model, settings.batch_shape)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = settings.calibration.representative_dataset
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = IO_TYPES[settings.io]
    converter.inference_output_type = IO_TYPES[settings.io]
    return converter.convert()


@dataclass(frozen=True)
class ExportFormat:
    name: str
    suffix: str
    description: str
    arguments: frozenset[str]
    """The format-specific arguments it accepts (beyond the common ``input_shape``)."""
    dynamic_shape: bool
    """Whether ``--input-shape dynamic`` (H and W resizable at run time) is allowed."""
    convert: Callable[[keras.Model, ExportSettings], bytes]

    @property
    def flag(self) -> str:
        return f"--{self.name}"


FORMATS: dict[str, ExportFormat] = {
    f.name: f
    for f in (
        ExportFormat("float32", "_float32.tflite", "TFLite float32: the Keras graph as it is (CPU, GPU)",
                     frozenset(), True, convert_float32),
        ExportFormat("fp16", "_fp16.tflite",
                     "TFLite with float16 weights, float32 compute on CPU (GPU delegate)",
                     frozenset(), True, convert_fp16),
        ExportFormat("dynamic", "_dynamic.tflite",
                     "TFLite dynamic range: int8 weights, float activations (no calibration)",
                     frozenset(), True, convert_dynamic),
        ExportFormat("int8", "_int8.tflite",
                     "TFLite full-integer int8 post-training quantization from a calibration set (NPU, DSP)",
                     frozenset({"io", "calibration"}), False, convert_int8),
    )
}  # fmt: skip
ARGUMENT_FLAGS = {"io": "--io", "calibration": "--calibration"}


def check_format(name: str) -> ExportFormat:
    """The registered format ``name`` (case-insensitive); ``ExportError`` with a "did you mean" otherwise."""
    key = name.strip().lower()
    if key in FORMATS:
        return FORMATS[key]
    close = difflib.get_close_matches(key, FORMATS, n=1, cutoff=0.5)
    hint = f"did you mean {close[0]!r}? " if close else ""
    raise ExportError(f"unknown export format {name!r}: {hint}choose from {', '.join(FORMATS)}")


def validate(
    names: Sequence[str],
    *,
    input_shape: tuple[int, int] | None,
    given: Sequence[str] = (),
) -> list[ExportFormat]:
    """The formats ``names`` (deduplicated, in registry order), after checking the arguments against them.

    ``given`` lists the format-specific arguments the user set (keys of ``ARGUMENT_FLAGS``); each must be
    accepted by at least one chosen format. ``input_shape`` None (dynamic) is refused for formats that need a
    static shape; a static one must be a multiple of 16.
    """
    chosen = {check_format(name).name for name in names}
    if not chosen:
        flags = " ".join(f.flag for f in FORMATS.values())
        raise ExportError(f"no export format chosen: pass one or more of {flags}")
    formats = [f for f in FORMATS.values() if f.name in chosen]
    for argument in given:
        if not any(argument in f.arguments for f in formats):
            takers = [f.flag for f in FORMATS.values() if argument in f.arguments]
            flag = ARGUMENT_FLAGS[argument]
            raise ExportError(f"{flag} applies only to {', '.join(takers)}, which is not chosen")
    if input_shape is None:
        static = [f.flag for f in formats if not f.dynamic_shape]
        if static:
            raise ExportError(
                f"--input-shape dynamic is not possible with {', '.join(static)}: full-integer quantization "
                f"needs a static HxW (e.g. --input-shape {DEFAULT_SHAPE[0]}x{DEFAULT_SHAPE[1]}); "
                "export those separately"
            )
    else:
        try:
            validate_input_shape(*input_shape)
        except InputShapeError as error:
            raise ExportError(f"--input-shape {input_shape[0]}x{input_shape[1]}: {error}") from None
    return formats


def check_calibration(calibration: CalibrationSet, input_shape: tuple[int, int]) -> None:
    """``ExportError`` unless the calibration crops have the export's static shape."""
    try:
        calibration.check_shape(*input_shape)
    except CalibrationError as error:
        raise ExportError(str(error)) from None
