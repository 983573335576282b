"""Per-layer int8 error (TFLite's ``QuantizationDebugger``), and int8 files with chosen layers kept in float.

``analyse`` calibrates the model once (the debugger drives the converter: ``optimizations`` DEFAULT, the
calibration set as representative data) and runs the calibration crops through the debugger's
layer-by-layer verify model: every quantized op is also run in float on the same (dequantized) input, so
each tensor's error is its own op's, not the accumulation of all before it. Per tensor (``TensorError``):

- ``rmse`` of float minus dequantized output, the tensor's ``scale`` and ``rmse_over_scale`` (the TF
  debugger tutorial's metric: 0.29 = 1/sqrt(12) is rounding alone);
- ``nsr``, the noise-to-signal ratio per channel, sqrt(mean over channels of channel MSE / channel
  variance of the float output), the variance floored at one quantization step squared: how much of what
  each channel carries is lost. Per channel because the next instance norm rescales every channel to unit
  variance, so a quiet channel's rounding noise comes out as loud as a busy one's.

Tensors are ranked by ``nsr``, worst first. Measured on the quick-preset PyNET (level 0, base width 4, 64x64
packed, 16 calibration crops; int8 31.3 dB vs the float model, every instance norm in float 34.5 dB, every
layer 53.1 dB): the worst 16 / 128 layers by ``nsr`` in float gave 34.4 / 43.7 dB, by ``rmse_over_scale``
31.2 / 34.7 dB (34.7 dB still at 256 of its 408 layers).

The units kept in float are Keras layers: a TFLite tensor's name carries its layer's name as a path
component (``pynet_level3/l3_dec1_3x3a_norm/Rsqrt``), so a layer's tensors are those with its name as a
component, and keeping a layer in float denylists all of them at once (``denylisted_nodes``), which puts
QUANTIZE/DEQUANTIZE only at the layer's borders. ``Analysis.quantize`` re-quantizes the calibrated model
with any such list in well under a second (no new calibration), so ``auto_fallback`` can search.

Memory: the float statistics keep the float model's intermediate tensors of one input, at most 1 GiB of them
per pass over the calibration crops (``float_statistics``; PyNET's level 0 at 224x224 packed takes 3).
"""

from __future__ import annotations

import contextlib
import csv
import fnmatch
import io
import math
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import tensorflow as tf
import tf_keras as keras
from ai_edge_litert.interpreter import Interpreter
from tensorflow.lite.python.util import modify_model_io_type  # the converter's io rewrite (no public twin)
from tensorflow.lite.tools import flatbuffer_utils

from calibration.calibration_set import CalibrationSet
from export.tflite import converter_for
from pynet_tf.console import native_quiet

AUTO = "auto"
"""``--float-fallback auto``: keep the worst layers in float until ``--min-psnr`` is reached."""
EXACT = 1e-3
"""``rmse_over_scale`` below this: the op adds no error of its own (max-pool, concatenation: ~1e-6)."""
STATISTICS_PASS_BYTES = 1 << 30
"""Most bytes of float tensors ``float_statistics`` keeps in one pass over the calibration crops."""


class UnquantizedIOError(ValueError):
    """Integer inputs/outputs asked of a model whose input or output is computed in float."""


@dataclass(frozen=True)
class TensorError:
    """One quantized tensor's own error, averaged over the debug inputs (see the module's docstring)."""

    tensor: str
    op: str
    layer: str | None
    """The Keras layer whose name is a component of ``tensor`` (None: none is, e.g. an io tensor)."""
    rmse: float
    scale: float
    rmse_over_scale: float
    nsr: float
    max_abs_error: float

    @property
    def unit(self) -> str:
        """What keeping it in float keeps: its Keras layer, or the tensor alone."""
        return self.layer or self.tensor


def layer_of(tensor: str, layer_names: frozenset[str]) -> str | None:
    """The first Keras layer name among the path components of ``tensor`` (fused names: ``a;b``)."""
    for part in tensor.split(";"):
        for component in part.split("/"):
            if component in layer_names:
                return component
    return None


@contextlib.contextmanager
def _debugger_interpreter() -> Iterator[None]:
    """Silence the deprecation warning of the ``tf.lite.Interpreter`` the debugger builds (its only one), and
    the converter's and LiteRT's progress lines (``console.native_quiet``)."""
    with warnings.catch_warnings(), native_quiet():
        warnings.filterwarnings("ignore", r".*tf\.lite\.Interpreter is deprecated", UserWarning)
        yield


class Analysis:
    """A calibrated model, its per-tensor int8 errors (``errors``, worst first) and re-quantization."""

    def __init__(
        self, debugger: tf.lite.experimental.QuantizationDebugger, errors: list[TensorError], inputs: int
    ) -> None:
        self.debugger = debugger
        self.errors = errors
        self.inputs = inputs
        self._links: dict[str, set[str]] | None = None

    def links(self) -> dict[str, set[str]]:
        """Unit -> the units it feeds or is fed by in the int8 graph (computed once)."""
        if self._links is None:
            interpreter = Interpreter(model_content=self.quantize())
            names = {t["index"]: t["name"] for t in interpreter.get_tensor_details()}
            unit_of = {error.tensor: error.unit for error in self.errors}
            self._links = {}
            for op in interpreter._get_ops_details():
                sources, targets = (
                    {unit_of.get(names.get(int(i))) for i in op[key]} - {None}
                    for key in ("inputs", "outputs")
                )
                for source in sources:
                    for target in targets - {source}:
                        self._links.setdefault(source, set()).add(target)
                        self._links.setdefault(target, set()).add(source)
        return self._links

    def with_passthrough(self, tensors: Sequence[str]) -> list[str]:
        """``tensors`` plus those of pass-through units (max-pool, concatenation: no error of their own)
        linked, directly or through other such units, to a unit with a tensor in ``tensors``.

        Kept in int8 between float neighbours, such a unit would only quantize float values again: measured on
        the test net, every layer in float but one max-pool gave 25.0 dB against 42.1 dB with it in float.
        """
        exact: dict[str, bool] = {}
        for error in self.errors:
            exact[error.unit] = exact.get(error.unit, True) and error.rmse_over_scale < EXACT
        given = set(tensors)
        floating = {error.unit for error in self.errors if error.tensor in given}
        links = self.links()
        added: list[str] = []
        grown = True
        while grown:
            grown = False
            for unit, is_exact in exact.items():
                if is_exact and unit not in floating and links.get(unit, set()) & floating:
                    floating.add(unit)
                    added.append(unit)
                    grown = True
        return list(tensors) + [error.tensor for error in self.errors if error.unit in added]

    def units(self) -> list[tuple[str, list[str]]]:
        """Keras layers (or lone tensors) with their tensors, ranked by their worst tensor's ``nsr``."""
        grouped: dict[str, list[str]] = {}
        for error in self.errors:  # already worst first: a unit's first tensor is its worst
            grouped.setdefault(error.unit, []).append(error.tensor)
        return list(grouped.items())

    def layers_of(self, tensors: Sequence[str]) -> list[str]:
        """The units (worst first) with a tensor among ``tensors``."""
        chosen = set(tensors)
        return [unit for unit, members in self.units() if chosen.intersection(members)]

    def resolve(self, names: Sequence[str]) -> dict[str, list[str]]:
        """Each of ``names`` (a Keras layer name or glob, or an exact tensor name) -> the tensors it keeps
        in float; a name that keeps none maps to an empty list."""
        units = self.units()
        resolved = {}
        for name in names:
            tensors = [t for unit, members in units if fnmatch.fnmatchcase(unit, name) for t in members]
            resolved[name] = tensors or [e.tensor for e in self.errors if e.tensor == name]
        return resolved

    def quantize(self, float_tensors: Sequence[str] = (), io_type: tf.DType = tf.float32) -> bytes:
        """The int8 flatbuffer with ``float_tensors`` computed in float, inputs/outputs of ``io_type``.

        Bit-identical to the converter's own int8 file when nothing is kept in float (measured for float32,
        uint8 and int8 io). ``UnquantizedIOError`` when ``io_type`` is integer but the model's input or output
        is not quantized (a layer next to it kept in float).
        """
        try:
            with _debugger_interpreter():
                self.debugger.options = tf.lite.experimental.QuantizationDebugOptions(
                    denylisted_nodes=list(float_tensors) or None
                )
        except ValueError as error:  # every op in float: no verify op left for the debugger's own statistics,
            if "debug mode" not in str(error):  # but the options are set, which is all quantizing needs
                raise
        with native_quiet():
            content = self.debugger.get_nondebug_quantized_model()
            if io_type == tf.float32:
                return content
            content = modify_model_io_type(content, io_type, io_type)  # keeps float io where not quantized
        interpreter = Interpreter(model_content=content)
        ends = interpreter.get_input_details() + interpreter.get_output_details()
        floating = [end["name"] for end in ends if np.dtype(end["dtype"]) != io_type.as_numpy_dtype]
        if floating:
            raise UnquantizedIOError(
                f"{io_type.name} inputs/outputs need the model's input and output "
                f"quantized, but a layer next to {', '.join(floating)} is kept in float"
            )
        return content

    def record(self) -> dict:
        """The sidecar's ``quantization_debug`` entry (see ``export.sidecar``)."""
        worst: dict[str, float] = {}
        for error in self.errors:
            worst.setdefault(error.unit, error.nsr)
        return {
            "tool": "tf.lite.experimental.QuantizationDebugger (layer by layer)",
            "inputs": self.inputs,
            "ranked_by": "nsr",
            "metrics": {
                "rmse": "RMSE of float minus dequantized op output, the op fed the same input",
                "rmse_over_scale": "rmse / the tensor's scale (0.29 = rounding alone)",
                "nsr": "per channel: sqrt(mean of channel MSE / channel variance of the float output), the "
                "variance at least scale^2",
            },
            "layers": [
                {"layer": unit, "nsr": worst[unit], "tensors": len(tensors)} for unit, tensors in self.units()
            ],
            "tensors": [asdict(error) for error in self.errors],
        }


class _ChannelErrors:
    """A ``layer_debug_metrics`` function that keeps each call's per-channel mean squared error.

    The debugger calls it once per verified tensor per input, tensors in the order of its statistics (and
    of ``layer_statistics_dump``'s rows); ``per_row`` regroups the calls by row and checks the grouping
    against the debugger's own per-tensor mean squared error.
    """

    def __init__(self) -> None:
        self.calls: list[np.ndarray] = []

    def __call__(self, diffs: np.ndarray) -> float:
        squared = np.square(diffs.astype(np.float64)).reshape(-1, diffs.shape[-1] if diffs.ndim else 1)
        self.calls.append(squared.mean(axis=0))
        return float(squared.mean())

    def per_row(self, rows: list[dict]) -> list[np.ndarray]:
        """Each row's per-channel MSE, averaged over the inputs as the debugger averages its own metrics
        (``np.nanmean``): an input whose difference holds a NaN drops out (measured on RSQRTs of PyNET's
        instance norms, with the official checkpoint fixture's weights); all NaN gives NaN channels."""
        count = len(rows)
        if not count or len(self.calls) % count:
            raise RuntimeError(f"QuantizationDebugger made {len(self.calls)} metric calls for {count} rows")
        grouped = []
        for index, row in enumerate(rows):
            calls = self.calls[index::count]
            kept = [call for call in calls if not np.isnan(call.mean())]
            channels = np.mean(kept, axis=0) if kept else np.full_like(calls[0], np.nan)
            mse, expected = float(np.mean(channels)), float(row["mean_squared_error"])
            if not (
                math.isclose(mse, expected, rel_tol=1e-3, abs_tol=1e-12)
                or math.isnan(mse)
                and math.isnan(expected)
            ):
                raise RuntimeError("QuantizationDebugger's metric calls are not in its statistics' order")
            grouped.append(channels)
        return grouped


def float_statistics(
    float_model: bytes, calibration: CalibrationSet, pass_bytes: int = STATISTICS_PASS_BYTES
) -> dict[str, np.ndarray]:
    """{tensor name: per-channel variance of its values over all calibration crops} in the float model.

    The debugger's own float tensors (``layer_direct_compare_metrics``) read back as stale memory (values of
    1e38) where XNNPACK ran the float ops, so the spread is measured on the calibrated float model, whose
    tensor names are the int8 model's, with every tensor read as a model output: XNNPACK writes those, and
    the arena keeps them to the end of the run. At most ``pass_bytes`` of them per pass over the crops
    (``_output_groups``). Pooled over crops, the variance of a per-image statistic (a norm's MEAN) is its
    spread across images.
    """
    moments: dict[str, list] = {}
    flat = flatbuffer_utils.convert_bytearray_to_object(bytearray(float_model))  # parsed once, for every pass
    for group in _output_groups(float_model, pass_bytes):
        flat.subgraphs[0].outputs = np.asarray(
            list(group.values()), dtype=np.int32
        )  # its signature unchanged
        content = bytes(flatbuffer_utils.convert_object_to_bytearray(flat))
        interpreter = Interpreter(model_content=content, num_threads=os.cpu_count())
        with native_quiet():
            interpreter.allocate_tensors()
        (source,) = interpreter.get_input_details()
        for crop in calibration.inputs:
            interpreter.set_tensor(source["index"], crop[np.newaxis].astype(np.float32))
            interpreter.invoke()
            for name, index in group.items():
                values = interpreter.get_tensor(index).astype(np.float64)
                values = values.reshape(-1, values.shape[-1] if values.ndim else 1)
                sums = moments.setdefault(name, [0.0, 0.0, 0])
                sums[0] += values.sum(axis=0)
                sums[1] += np.square(values).sum(axis=0)
                sums[2] += values.shape[0]
    return {
        name: np.maximum(total_sq / n - np.square(total / n), 0.0)
        for name, (total, total_sq, n) in moments.items()
    }


def _output_groups(float_model: bytes, pass_bytes: int) -> list[dict[str, int]]:
    """The float op outputs of ``float_model`` ({name: tensor index}, the first op output of a repeated
    name), in run order, split into groups of at most ``pass_bytes`` (a larger tensor is a group alone).

    Keeping every tensor at once (``experimental_preserve_all_tensors``) fails in ``allocate_tensors`` with
    an empty RuntimeError once they pass 2 GiB: PyNET's level 0 at 224x224 packed holds 2.26 GiB.
    """
    interpreter = Interpreter(model_content=float_model)
    details = {t["index"]: t for t in interpreter.get_tensor_details() if np.dtype(t["dtype"]).kind == "f"}
    outputs: dict[str, int] = {}
    for op in interpreter._get_ops_details():
        for index in map(int, op["outputs"]):
            if index in details:
                outputs.setdefault(details[index]["name"], index)
    groups: list[dict[str, int]] = [{}]
    size = 0
    for name, index in outputs.items():
        tensor = details[index]
        nbytes = int(np.prod(tensor["shape"])) * np.dtype(tensor["dtype"]).itemsize
        if groups[-1] and size + nbytes > pass_bytes:
            groups.append({})
            size = 0
        groups[-1][name] = index
        size += nbytes
    return groups


def analyse(
    model: keras.Model,
    batch_shape: Sequence[int],
    calibration: CalibrationSet,
    *,
    float_ops: bool = False,
) -> Analysis:
    """Calibrate ``model`` at ``batch_shape`` on ``calibration`` and measure every tensor's int8 error on it.

    ``float_ops`` lets the converter keep float kernels (TFLITE_BUILTINS beside TFLITE_BUILTINS_INT8), which
    layers kept in float need.
    """
    converter = converter_for(model, batch_shape)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = calibration.representative_dataset
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8] + (
        [tf.lite.OpsSet.TFLITE_BUILTINS] if float_ops else []
    )
    channel_errors = _ChannelErrors()
    with _debugger_interpreter():
        debugger = tf.lite.experimental.QuantizationDebugger(
            converter=converter,
            debug_dataset=calibration.representative_dataset,
            debug_options=tf.lite.experimental.QuantizationDebugOptions(
                layer_debug_metrics={"channel_mse": channel_errors}
            ),
        )
        debugger.run()
    dump = io.StringIO()
    debugger.layer_statistics_dump(dump)
    dump.seek(0)
    rows = list(csv.DictReader(dump))
    variances = float_statistics(debugger.calibrated_model, calibration)
    layer_names = frozenset(layer.name for layer in model.layers)
    # the model's outputs carry the signature's names ("StatefulPartitionedCall:0"): the output layers'
    outputs = Interpreter(model_content=debugger.calibrated_model).get_output_details()
    output_layers = dict(zip((detail["name"] for detail in outputs), model.output_names))
    errors = []
    for row, channel_mse in zip(rows, channel_errors.per_row(rows)):
        scale = float(row["scale"])
        rmse = math.sqrt(float(row["mean_squared_error"]))
        variance = variances.get(row["tensor_name"])
        if variance is None or variance.shape != channel_mse.shape:
            variance = np.zeros_like(channel_mse)
        nsr = math.sqrt(float(np.mean(channel_mse / np.maximum(variance, scale**2)))) if scale else math.inf
        errors.append(
            TensorError(
                tensor=row["tensor_name"],
                op=row["op_name"],
                layer=layer_of(row["tensor_name"], layer_names) or output_layers.get(row["tensor_name"]),
                rmse=rmse,
                scale=scale,
                rmse_over_scale=rmse / scale if scale else math.inf,
                nsr=nsr,
                max_abs_error=float(row["max_abs_error"]),
            )
        )
    errors.sort(key=lambda error: error.nsr, reverse=True)
    return Analysis(debugger, errors, len(calibration))


@dataclass(frozen=True)
class Step:
    """One candidate of the ``auto`` search: the worst ``count`` units in float and its PSNR vs float."""

    count: int
    psnr: float

    def record(self, units: list[tuple[str, list[str]]]) -> dict:
        return {
            "layers": self.count,
            "last": units[self.count - 1][0] if self.count else None,
            "psnr_vs_float": self.psnr,
        }


@dataclass(frozen=True)
class Fallback:
    """The outcome of ``auto_fallback``: the chosen file and how it was found."""

    content: bytes
    measured: dict
    count: int
    """How many of the worst-ranked units went to float (``layers`` adds their pass-through neighbours)."""
    layers: list[str]
    tensors: list[str]
    steps: list[Step]
    reached: bool


def auto_fallback(
    analysis: Analysis,
    measure: Callable[[bytes], dict],
    min_psnr: float,
    io_type: tf.DType = tf.float32,
) -> Fallback:
    """The fewest worst-ranked units (``Analysis.units``) in float whose file reaches ``min_psnr``; the
    pass-through units next to them go along (``Analysis.with_passthrough``).

    ``measure(content)`` returns ``export.fidelity.measure``'s dict. Counts 0, 1, 2, 4, ... up to every unit
    are tried until one reaches the bar, then the gap to the last miss is bisected (PSNR is assumed to grow
    with the count; every probe is kept in ``steps``). If even every unit in float misses, ``reached`` is
    False and the best file tried is returned.
    """
    units = analysis.units()
    probes: dict[int, tuple[bytes, dict]] = {}

    def chosen(count: int) -> list[str]:
        return analysis.with_passthrough([t for _unit, members in units[:count] for t in members])

    def probe(count: int) -> bool:
        if count not in probes:
            content = analysis.quantize(chosen(count), io_type)
            probes[count] = (content, measure(content))
        return _psnr(probes[count][1]) >= min_psnr

    counts = [0, *(2**i for i in range(math.ceil(math.log2(max(len(units), 1))) + 1))]
    counts = sorted({min(count, len(units)) for count in counts})
    missed, hit = -1, None
    for count in counts:
        if probe(count):
            hit = count
            break
        missed = count
    if hit is not None:
        while hit - missed > 1:
            middle = (hit + missed) // 2
            hit, missed = (middle, missed) if probe(middle) else (hit, middle)
    best = hit if hit is not None else max(probes, key=lambda count: _psnr(probes[count][1]))
    steps = [Step(count, _psnr(measured)) for count, (_content, measured) in sorted(probes.items())]
    tensors = chosen(best)
    return Fallback(
        probes[best][0], probes[best][1], best, analysis.layers_of(tensors), tensors, steps, hit is not None
    )


def _psnr(measured: dict) -> float:
    value = measured["vs_float"]["psnr"]
    return -math.inf if value is None else float(value)
