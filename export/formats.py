"""The one registry of export formats (the TFLite ones and ONNX): name, file suffix, what it is, which
arguments it takes, and the kind of file it writes (how it is run, described and gated).

Every format is converted by one function of the same shape, ``(model, settings) -> bytes | Conversion``
(a ``Conversion`` when the format has more to tell: analyses for the sidecar, fidelity it already measured).
A format's extra arguments live in ``ExportSettings`` and are named in its ``arguments``, so a new one
(e.g. a step count) is a field, an ``ARGUMENT_FLAGS`` entry and a name in the formats that take it.
Arguments are checked against the registry before anything is converted (``validate``), so a bad
combination fails in a second with one line naming the flag, not after minutes of conversion.
"""

from __future__ import annotations

import difflib
import fnmatch
import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import tensorflow as tf
import tf_keras as keras

from calibration.calibration_set import CalibrationError, CalibrationSet
from export import fidelity, qat, sensitivity, sidecar
from export.tflite import IO_TYPES, convert, converter_for
from pynet_tf.nets.pynet.levels import validate_input_shape
from pynet_tf.shapes import InputShapeError, ShapeCheck

DEFAULT_SHAPE = (224, 224)
"""The packed input (H, W) exported when ``--input-shape`` is not given: the paper's 448x448 photo crops."""
AUTO = sensitivity.AUTO
INT16X8_OPS = tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8
DEFAULT_OPSET, MIN_OPSET, MAX_OPSET = 17, 17, 18
"""ONNX opsets: tf2onnx 1.17 converts up to 18."""
MAX_ABS_ERROR = 1e-4
"""ONNX's default gate: the file is written only if onnxruntime's outputs are this close to Keras'."""
ONNX_DIMS = ("height", "width")
"""The names of an ONNX file's run-time input dims (the output's: ``out_height``, ``out_width``)."""
STATUS_OK, STATUS_BELOW, STATUS_ABOVE, STATUS_ERROR = "ok", "below --min-psnr", "above --max-abs", "error"
"""A format's outcome: written, refused by its gate (TFLite: ``--min-psnr``, ONNX: ``--max-abs-error``), or
failed."""
QAT_ARGUMENTS = ("qat_steps", "qat_targets", "qat_lr", "qat_batch", "qat_patch", "qat_loss", "vgg_weights")
"""``--qat``'s arguments: ``export.qat.plan_fine_tuning``'s, named ``qat_<argument>`` (``vgg_weights`` as it is)."""


class ExportError(ValueError):
    """An export that cannot run as asked (format, flags, shapes, calibration); the message names the fix."""


@dataclass(frozen=True)
class ExportSettings:
    """What every conversion function is told. ``input_shape`` None: H and W resizable at run time."""

    input_shape: tuple[int, int] | None = DEFAULT_SHAPE
    io: str = "float32"
    calibration: CalibrationSet | None = None
    """int8 only: the representative data (required by ``convert_int8``)."""
    float_fallback: tuple[str, ...] = ()
    """int8: Keras layer names or globs, or TFLite tensor names, to keep in float; ``(AUTO,)``: search."""
    min_psnr: float | None = None
    """dB vs the float model that ``--float-fallback auto`` searches for."""
    held_out: tuple[fidelity.HeldOut, ...] = ()
    """The inputs ``--float-fallback auto`` measures each candidate on (``export.fidelity.held_out``)."""
    qat: qat.FineTuning | None = None
    """qat only: the fine-tuning (``export.qat.plan_fine_tuning`` from the ``--qat-*`` flags)."""
    opset: int = DEFAULT_OPSET
    """onnx only: the ONNX opset."""
    max_abs_error: float = MAX_ABS_ERROR
    """onnx only: the largest max abs error against the float model a written file may have."""

    @property
    def batch_shape(self) -> tuple[int | None, ...]:
        """Batch fixed at 1; H and W static unless ``input_shape`` is None."""
        height, width = self.input_shape or (None, None)
        return (1, height, width, 4)


@dataclass(frozen=True)
class Conversion:
    """A converted file with what its format adds: ``sidecar`` keys, ``fidelity`` if already measured on
    ``settings.held_out``, and a ``note`` for the printed row."""

    content: bytes
    sidecar: dict = field(default_factory=dict)
    fidelity: dict | None = None
    note: str = ""


def error_summary(error: BaseException) -> str:
    """One line for a format's failure: its type and the first non-empty line of its message (the
    converter's errors often start with a newline, so the first line alone said only ``RuntimeError:``)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__


def as_conversion(result: bytes | Conversion) -> Conversion:
    """Any conversion function's result as a ``Conversion``."""
    return result if isinstance(result, Conversion) else Conversion(result)


def convert_float32(model: keras.Model, settings: ExportSettings) -> bytes:
    return convert(converter_for(model, settings.batch_shape))


def convert_fp16(model: keras.Model, settings: ExportSettings) -> bytes:
    converter = converter_for(model, settings.batch_shape)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_types = [tf.float16]
    return convert(converter)


def convert_dynamic(model: keras.Model, settings: ExportSettings) -> bytes:
    converter = converter_for(model, settings.batch_shape)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    return convert(converter)


def float_ops(content: bytes) -> dict[str, int]:
    """{op: count} of an int8 file's ops that compute in float (not counting QUANTIZE/DEQUANTIZE, which
    convert between int8 and float)."""
    described = sidecar.describe(content, quantized=True)
    return dict(
        Counter(
            op["op"] for op in described["unquantized_ops"] if op["op"] not in ("QUANTIZE", "DEQUANTIZE")
        ).most_common()
    )


def convert_int8(model: keras.Model, settings: ExportSettings) -> Conversion:
    """Full-integer int8, or with ``settings.float_fallback`` layers kept in float; the per-layer error
    analysis (``export.sensitivity``) goes into the sidecar either way."""
    if settings.calibration is None:
        raise ExportError("int8 needs a calibration set (--calibration FILE or the default)")
    analysis = sensitivity.analyse(
        model, settings.batch_shape, settings.calibration, float_ops=bool(settings.float_fallback)
    )
    record = {"quantization_debug": analysis.record()}
    if not settings.float_fallback:
        content = analysis.quantize((), IO_TYPES[settings.io])
        left = float_ops(content)
        if left:
            raise ExportError(
                f"int8: {', '.join(left)} could not be quantized, so the file would not be "
                "full-integer; keep those layers in float with --float-fallback NAME,..."
            )
        return Conversion(content, {**record, "full_integer": True, "float_fallback": None})
    try:
        content, measured, fallback = _float_fallback(analysis, settings)
    except sensitivity.UnquantizedIOError as error:
        raise ExportError(f"--io {settings.io} with --float-fallback: {error}") from None
    kept = fallback["float_ops"] = float_ops(content)
    note = f"float fallback: {len(fallback['layers'])} layers in float, not full-integer" if kept else ""
    if not fallback.get("reached", True):
        best = max(step["psnr_vs_float"] for step in fallback["steps"])
        every = fallback["steps"][-1]
        note = (
            f"float fallback cannot reach --min-psnr {settings.min_psnr:g}: best {best:.2f} dB "
            f"(all {every['layers']} layers in float: {every['psnr_vs_float']:.2f} dB)"
        )
    analyses = {**record, "full_integer": not kept, "float_fallback": fallback}
    return Conversion(content, analyses, measured, note)


def _float_fallback(
    analysis: sensitivity.Analysis, settings: ExportSettings
) -> tuple[bytes, dict | None, dict]:
    """The int8 file with ``settings.float_fallback`` in float, its fidelity if the search measured it, and
    the sidecar's ``float_fallback`` record (without ``float_ops``)."""
    io_type = IO_TYPES[settings.io]
    record = {"requested": list(settings.float_fallback), "min_psnr": settings.min_psnr}
    if settings.float_fallback == (AUTO,):
        if settings.min_psnr is None or not settings.held_out:
            raise ExportError("--float-fallback auto needs --min-psnr and held-out inputs to measure on")
        found = sensitivity.auto_fallback(
            analysis,
            lambda content: fidelity.measure(content, list(settings.held_out)),
            settings.min_psnr,
            io_type,
        )
        units = analysis.units()
        record |= {
            "requested": AUTO,
            "layers": found.layers,
            "tensors": found.tensors,
            "ranked_layers": found.count,
            "steps": [step.record(units) for step in found.steps],
            "reached": found.reached,
        }
        return found.content, found.measured, record
    resolved = analysis.resolve(settings.float_fallback)
    empty = [name for name, members in resolved.items() if not members]
    if empty:
        worst = ", ".join(unit for unit, _ in analysis.units()[:5])
        raise ExportError(
            f"--float-fallback {','.join(empty)}: no quantized tensor of that name or layer in "
            f"the int8 model (layers by int8 error: {worst}, ...)"
        )
    named = list(dict.fromkeys(t for members in resolved.values() for t in members))
    tensors = analysis.with_passthrough(named)
    record |= {"layers": analysis.layers_of(tensors), "tensors": tensors}
    return analysis.quantize(tensors, io_type), None, record


def convert_int16x8(model: keras.Model, settings: ExportSettings) -> Conversion:
    """16x8 post-training quantization: int16 activations, int8 weights, every op (float io aside).

    For accuracy-sensitive graphs on NPUs with A16W8 kernels: on runs/demo1 at 64x64 it was 50.7 dB from the
    float model where int8 was 32.3; XNNPACK has no int16 kernels, so on a CPU it runs TFLite's reference
    kernels (7-9x slower than int8 here), and NNAPI and the GPU delegate do not take it.
    """
    if settings.calibration is None:
        raise ExportError("int16x8 needs a calibration set (--calibration FILE or the default)")
    converter = converter_for(model, settings.batch_shape)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = settings.calibration.representative_dataset
    converter.target_spec.supported_ops = [INT16X8_OPS]
    content = convert(converter)
    left = float_ops(content)
    if left:
        raise ExportError(
            f"int16x8: {', '.join(left)} stayed in float: the file would not be 16x8 throughout"
        )
    return Conversion(content, {"full_integer": True})


def convert_qat(model: keras.Model, settings: ExportSettings) -> Conversion:
    """Full-integer int8 after quantization-aware fine-tuning from the float weights (``export.qat``); the
    fine-tuning and its step losses go into the sidecar."""
    if settings.qat is None:
        raise ExportError("qat needs its fine-tuning settings (export_model builds them from --qat-* flags)")
    qat_model, losses = qat.quantize_and_fine_tune(model, settings.qat)
    content = qat.convert_qat(qat_model, settings.batch_shape, settings.io)
    tuning = settings.qat.record()
    record = {"qat": {**tuning, "step_losses": [round(loss, 6) for loss in losses]}, "full_integer": True}
    return Conversion(content, record, note=f"QAT: {len(losses)} steps, targets {tuning['targets']}")


def check_opset(opset: int) -> int:
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise ExportError(
            f"--opset {opset}: choose {MIN_OPSET}..{MAX_OPSET} ({MIN_OPSET} is the default; "
            f"tf2onnx {sidecar.package_version('tf2onnx')} converts up to {MAX_OPSET})"
        )
    return opset


def convert_onnx(model: keras.Model, settings: ExportSettings) -> bytes:
    """The model as a serialized ONNX ModelProto: input ``raw`` of the batch shape -> output ``rgb``.

    ``None`` dims are set at run time, named ``ONNX_DIMS`` (the output's ``out_`` + the same).

    As ``export.tflite.converter_for``: the inference function inside a bare ``tf.Module`` holding the
    variables, converted with ``tf2onnx.convert.from_function`` (from_keras would trace every layer). The
    model is checked with ``onnx.checker`` (full check, with shape inference): tf2onnx leaves ops it cannot
    map in the graph rather than failing, and those are caught here or when onnxruntime loads the file.
    """
    import onnx
    import tf2onnx

    logging.getLogger("tf2onnx").setLevel(logging.ERROR)
    spec = tf.TensorSpec(settings.batch_shape, tf.float32, name="raw")
    module = tf.Module()
    module.variables_ = list(model.variables)
    module.serve = tf.function(lambda raw: {"rgb": model(raw, training=False)}, input_signature=[spec])
    proto, _ = tf2onnx.convert.from_function(module.serve, input_signature=[spec], opset=settings.opset)
    for value, prefix in ((proto.graph.input[0], ""), (proto.graph.output[0], "out_")):
        for dim, name in zip(value.type.tensor_type.shape.dim[1:3], ONNX_DIMS):
            if not dim.HasField("dim_value"):  # tf2onnx names run-time dims unk__N
                dim.dim_param = prefix + name
    onnx.checker.check_model(proto, full_check=True)
    return proto.SerializeToString()


def below_min_psnr(measured: dict, settings: ExportSettings) -> str | None:
    """A TFLite file's gate: why it is not written (``--min-psnr`` not reached), or None."""
    psnr = measured["vs_float"]["psnr"]
    if settings.min_psnr is None or (psnr is not None and psnr >= settings.min_psnr):
        return None
    return f"not written: PSNR vs float {psnr:.2f} dB < --min-psnr {settings.min_psnr:g}"


def above_max_abs(measured: dict, settings: ExportSettings) -> str | None:
    """An ONNX file's gate: why it is not written (max abs error above ``--max-abs-error``), or None."""
    max_abs = measured["vs_float"]["max_abs"]
    if max_abs <= settings.max_abs_error:
        return None
    return f"not written: max abs error vs float {max_abs:.3g} > --max-abs-error {settings.max_abs_error:g}"


@dataclass(frozen=True)
class FileKind:
    """What a format's file is: how it runs on the held-out inputs, how its sidecar describes it, which
    gate decides whether it is written and which settings its sidecar records beyond the common ones."""

    name: str
    runner: type
    """``export.fidelity``'s runner for the file's bytes."""
    gate: Callable[[dict, ExportSettings], str | None]
    refused: str
    """The status of a file the gate refuses."""
    settings: Callable[[ExportFormat, ExportSettings], dict]
    """The sidecar's ``settings`` keys of this kind's formats beyond the common ones."""
    describer: Callable[[bytes], dict] | None = None
    """``sidecar.build_sidecar``'s describer; None: the TFLite one."""
    packages: tuple[str, ...] = ()
    """Packages whose versions the sidecar records beyond TensorFlow's."""


TFLITE = FileKind(
    "tflite",
    fidelity.TFLiteRunner,
    below_min_psnr,
    STATUS_BELOW,
    lambda export_format, settings: {
        "min_psnr": settings.min_psnr,
        "float_fallback": (list(settings.float_fallback) or None)
        if "float_fallback" in export_format.arguments
        else None,
    },
)
ONNX = FileKind(
    "onnx",
    fidelity.OnnxRunner,
    above_max_abs,
    STATUS_ABOVE,
    lambda export_format, settings: {
        "opset": settings.opset,
        "max_abs_error": settings.max_abs_error,
        "execution_provider": fidelity.OnnxRunner.PROVIDER,
    },
    sidecar.describe_onnx,
    sidecar.ONNX_PACKAGES,
)


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
    kind: FileKind = TFLITE

    @property
    def flag(self) -> str:
        return f"--{self.name}"

    def file_suffix(self, settings: ExportSettings) -> str:
        """``suffix``, marked ``_fallback`` when layers stay in float and ``_<io>io`` for integer io."""
        suffix = self.suffix
        if "float_fallback" in self.arguments and settings.float_fallback:
            suffix = suffix.replace(".tflite", "_fallback.tflite")
        if "io" in self.arguments and settings.io != "float32":
            suffix = suffix.replace(".tflite", f"_{settings.io}io.tflite")
        if "opset" in self.arguments:
            suffix = f"_opset{settings.opset}{suffix}"
        return suffix


FORMATS: dict[str, ExportFormat] = {
    f.name: f
    for f in (
        ExportFormat(
            "float32",
            "_float32.tflite",
            "TFLite float32: the Keras graph as it is (CPU, GPU)",
            frozenset(),
            True,
            convert_float32,
        ),
        ExportFormat(
            "fp16",
            "_fp16.tflite",
            "TFLite with float16 weights, float32 compute on CPU (GPU delegate)",
            frozenset(),
            True,
            convert_fp16,
        ),
        ExportFormat(
            "dynamic",
            "_dynamic.tflite",
            "TFLite dynamic range: int8 weights, float activations (no calibration)",
            frozenset(),
            True,
            convert_dynamic,
        ),
        ExportFormat(
            "int8",
            "_int8.tflite",
            "TFLite full-integer int8 post-training quantization from a calibration set (NPU, DSP)",
            frozenset({"io", "calibration", "float_fallback"}),
            False,
            convert_int8,
        ),
        ExportFormat(
            "int16x8",
            "_int16x8.tflite",
            "TFLite 16x8: int16 activations, int8 weights, from a calibration set (NPUs with A16W8; "
            "slow on CPUs)",
            frozenset({"calibration"}),
            False,
            convert_int16x8,
        ),
        ExportFormat(
            "qat",
            "_qat_int8.tflite",
            "TFLite full-integer int8 after quantization-aware fine-tuning (tfmot) of the float "
            "weights (NPU, DSP)",
            frozenset({"io", *QAT_ARGUMENTS}),
            False,
            convert_qat,
        ),
        ExportFormat(
            "onnx",
            ".onnx",
            "ONNX float32 (tf2onnx), verified in onnxruntime CPUExecutionProvider",
            frozenset({"opset", "max_abs_error"}),
            True,
            convert_onnx,
            ONNX,
        ),
    )
}
ARGUMENT_FLAGS = {
    "io": "--io",
    "calibration": "--calibration",
    "float_fallback": "--float-fallback",
    "opset": "--opset",
    "max_abs_error": "--max-abs-error",
} | {name: "--" + name.replace("_", "-") for name in QAT_ARGUMENTS}


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
    check_shape: ShapeCheck = validate_input_shape,
) -> list[ExportFormat]:
    """The formats ``names`` (deduplicated, in registry order), after checking the arguments against them.

    ``given`` lists the format-specific arguments the user set (keys of ``ARGUMENT_FLAGS``); each must be
    accepted by at least one chosen format. ``input_shape`` None (dynamic) is refused for formats that need a
    static shape; a static one must pass ``check_shape``, the network's input rule (PyNET's by default).
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
            check_shape(*input_shape)
        except InputShapeError as error:
            raise ExportError(f"--input-shape {input_shape[0]}x{input_shape[1]}: {error}") from None
    return formats


def check_calibration(
    calibration: CalibrationSet, input_shape: tuple[int, int], arch: str | None = None
) -> None:
    """``ExportError`` unless the calibration crops have the export's static shape (the fix it names builds a
    set for network ``arch``)."""
    try:
        calibration.check_shape(*input_shape, arch)
    except CalibrationError as error:
        raise ExportError(str(error)) from None


def parse_float_fallback(text: str) -> tuple[str, ...]:
    """``--float-fallback``'s value: ``auto``, or comma-separated Keras layer names/globs or tensor names."""
    names = tuple(dict.fromkeys(name.strip() for name in text.split(",") if name.strip()))
    if not names:
        raise ExportError("--float-fallback: give 'auto' or layer names ('l3_dec1_3x3a_norm', '*_norm')")
    if AUTO in names and len(names) > 1:
        raise ExportError("--float-fallback: 'auto' chooses the layers itself; give it alone or give names")
    return names


def check_float_fallback(names: Sequence[str], min_psnr: float | None, layer_names: Sequence[str]) -> None:
    """``ExportError`` unless ``auto`` comes with ``min_psnr`` and every name matches a Keras layer of the
    model (exactly or as a glob) or looks like a TFLite tensor name (``scope/op``, checked at conversion)."""
    if tuple(names) == (AUTO,):
        if min_psnr is None:
            raise ExportError("--float-fallback auto needs --min-psnr DB, the PSNR vs float to reach")
        return
    for name in names:
        if "/" in name or any(fnmatch.fnmatchcase(layer, name) for layer in layer_names):
            continue
        close = difflib.get_close_matches(name, layer_names, n=1, cutoff=0.6)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ExportError(
            f"--float-fallback {name!r} matches no layer of the model: {hint}give Keras layer "
            "names or globs (e.g. '*_norm'), tensor names from the sidecar, or 'auto'"
        )
