"""How close an exported TFLite file is to the float Keras model it came from, and to the ground truth.

Held-out inputs are the test split of a data source (``samples`` by default), each the centred crop of the
export's packed shape (the same crops, synthetic RAW seeds and targets as ``pynet_tf.evaluate``):
deterministic. An example smaller than the shape is cropped as large as it goes (multiples of 16) and
mirrored at the bottom and right up to the static shape; only the output's valid (unpadded) area is scored.
The float model and the file (LiteRT ``Interpreter``; uint8/int8 tensors are quantized and dequantized
with the tensor's own scale and zero-point) see the same inputs; outputs are clipped to [0, 1]
as they would be saved. Reported per image and as means: PSNR, SSIM, MS-SSIM (as many scales as the output
has room for, ``pynet_tf.metrics.ms_ssim``) and max abs error of the file against the float model, the same
three scores of both against the ground truth, and ΔPSNR = file − float (vs ground truth). SSIM and MS-SSIM
are null for outputs smaller than their 11-pixel window.

The classical ISP (``pynet_tf.data.isp``) is scored on the very same inputs against the same ground truth:
``pynet_tf.evaluate``'s baseline (oracle metadata on synthetic RAW from photo sources, as-shot metadata on
camera RAW pairs, grey-world on ZRR), rendered from the unpadded crop. It is the reference a learned ISP's
PSNR means something next to (the report flags a file far below it as "not a working ISP").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tensorflow as tf
import tf_keras as keras
from ai_edge_litert.interpreter import Interpreter

from pynet_tf import held_out as test_inputs
from pynet_tf import metrics, runs
from pynet_tf.console import native_quiet
from pynet_tf.data.sources import parse_source
from pynet_tf.nets.pynet.levels import DOWNSAMPLING


class FidelityError(ValueError):
    """Held-out inputs that cannot be prepared as asked; the message names the cause and fix."""


@dataclass(frozen=True)
class ClassicalISP:
    """The classical ISP's render of one held-out input and its scores: computed once, recorded per file."""

    baseline: test_inputs.Baseline
    image: np.ndarray
    """At the target's size, in [0, 1]."""
    scores: dict[str, float | None]
    """``SCORES`` against the target."""


@dataclass
class HeldOut:
    """One held-out example at the export's size, with the float model's output (clipped)."""

    name: str
    packed: np.ndarray
    """(H, W, 4) float32 in [0, 1]."""
    target: np.ndarray
    """Ground truth at the model level's output size, of the valid (unpadded) area."""
    reference: np.ndarray | None
    """The float Keras model's output of the valid area, clipped to [0, 1]; None without a float model."""
    padded: tuple[int, int] = (0, 0)
    """Packed rows and columns mirrored at the bottom and right to reach the export's shape."""
    classical_isp: ClassicalISP | None = None
    """The classical ISP on the same input, scored against ``target``; None where it was not run."""


def model_level(model: keras.Model) -> int:
    """The PyNET level a model computes, from its output size for a 16x16 input."""
    level = runs.model_level(model)
    if level is not None:
        return level
    raise FidelityError(f"the model's output for a {DOWNSAMPLING}x{DOWNSAMPLING} input is no PyNET level's")


def held_out_targets(
    shape: tuple[int, int],
    data: str = "samples",
    *,
    level: int = 0,
    seed: int = 0,
    limit: int | None = None,
) -> list[HeldOut]:
    """The test split of ``data`` cropped (centred) to ``shape`` packed pixels with its ground truth and the
    classical ISP's render at ``level``'s output size, and no float model (``reference`` None): what a
    third-party file is scored on.

    Uses ``pynet_tf.held_out``'s preparation (``prepare_test_input``: crop, synthetic RAW seed per image name,
    the classical ISP's render); an example smaller than ``shape`` is mirrored up to it (see the module's
    docstring).
    """
    source = parse_source(data)
    items = []
    for example in source.examples(test_inputs.SPLIT)[:limit]:
        item = test_inputs.prepare_test_input(example, source.kind, tuple(shape), seed)
        packed = np.asarray(item.packed, np.float32)
        height, width = packed.shape[:2]
        padded = (shape[0] - height, shape[1] - width)
        if padded[0] > height or padded[1] > width:
            raise FidelityError(
                f"--data {data!r}: test example {example.name!r} is {height}x{width} packed, less than "
                f"half the export's {shape[0]}x{shape[1]}; choose a smaller --input-shape or other --data"
            )
        packed = np.pad(packed, ((0, padded[0]), (0, padded[1]), (0, 0)), mode="symmetric")
        target, render = item.at_level(level)
        classical = ClassicalISP(test_inputs.BASELINES[source.kind], render, _pair(render, target))
        items.append(HeldOut(example.name, packed, target, None, padded, classical))
    if not items:
        raise FidelityError(f"--data {data!r}: no {test_inputs.SPLIT} examples to measure fidelity on")
    return items


def held_out(
    model: keras.Model,
    shape: tuple[int, int],
    data: str = "samples",
    *,
    seed: int = 0,
    limit: int | None = None,
) -> list[HeldOut]:
    """``held_out_targets`` at the model's level, each with the float model's output (clipped)."""
    items = held_out_targets(shape, data, level=model_level(model), seed=seed, limit=limit)
    spec = tf.TensorSpec([1, *shape, 4], tf.float32)
    predict = tf.function(lambda raw: model(raw, training=False), input_signature=[spec])
    for item in items:
        reference = np.clip(predict(tf.constant(item.packed[np.newaxis]))[0].numpy(), 0.0, 1.0)
        item.reference = reference[: item.target.shape[0], : item.target.shape[1]]
    return items


class TFLiteRunner:
    """Runs a TFLite flatbuffer on float inputs, quantizing and dequantizing integer io as needed."""

    def __init__(self, content: bytes) -> None:
        with native_quiet():  # LiteRT announces its XNNPACK delegate on stderr
            self.interpreter = Interpreter(model_content=content)
            self.interpreter.allocate_tensors()
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]

    def __call__(self, packed: np.ndarray) -> np.ndarray:
        """(H, W, 4) float in [0, 1] -> the output (h, w, 3) as float32, dequantized, not clipped."""
        batch = packed[np.newaxis].astype(np.float32)
        if tuple(self.input["shape"]) != batch.shape:
            self.interpreter.resize_tensor_input(self.input["index"], batch.shape)
            self.interpreter.allocate_tensors()
            self.input = self.interpreter.get_input_details()[0]
            self.output = self.interpreter.get_output_details()[0]
        self.interpreter.set_tensor(self.input["index"], quantize(batch, self.input))
        self.interpreter.invoke()
        return dequantize(self.interpreter.get_tensor(self.output["index"]), self.output)[0]


class OnnxRunner:
    """Runs an ONNX model (bytes) in onnxruntime's CPUExecutionProvider on float inputs: the same call as
    ``TFLiteRunner``, for ``measure(..., runner=OnnxRunner)``. One float32 input, the first output scored."""

    PROVIDER = "CPUExecutionProvider"

    def __init__(self, content: bytes) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        self.session = onnxruntime.InferenceSession(content, options, providers=[self.PROVIDER])
        self.input = self.session.get_inputs()[0].name
        self.output = self.session.get_outputs()[0].name

    def __call__(self, packed: np.ndarray) -> np.ndarray:
        """(H, W, 4) float in [0, 1] -> the output (h, w, 3) as float32, not clipped."""
        batch = packed[np.newaxis].astype(np.float32)
        return np.asarray(self.session.run([self.output], {self.input: batch})[0], np.float32)[0]


def quantize(values: np.ndarray, detail: dict) -> np.ndarray:
    """Float values -> the tensor's dtype: ``round(x / scale) + zero_point``, saturated (float: as is)."""
    dtype = np.dtype(detail["dtype"])
    if dtype.kind == "f":
        return values.astype(dtype)
    scale, zero_point = detail["quantization"]
    info = np.iinfo(dtype)
    return np.clip(np.round(values / scale) + zero_point, info.min, info.max).astype(dtype)


def dequantize(values: np.ndarray, detail: dict) -> np.ndarray:
    """The tensor's values as float32: ``(q - zero_point) * scale`` for integer tensors."""
    if np.dtype(detail["dtype"]).kind == "f":
        return values.astype(np.float32)
    scale, zero_point = detail["quantization"]
    return ((values.astype(np.float32) - zero_point) * scale).astype(np.float32)


SCORES = ("psnr", "ssim", "ms_ssim")
"""What each comparison reports (``_pair``), in this order."""


def _pair(a: np.ndarray, b: np.ndarray) -> dict[str, float | None]:
    ta, tb = tf.constant(a, tf.float32), tf.constant(b, tf.float32)
    fits = min(a.shape[:2]) >= metrics.SSIM_FILTER_SIZE
    return {
        "psnr": float(metrics.psnr(ta, tb)),
        "ssim": float(metrics.ssim(ta, tb)) if fits else None,
        "ms_ssim": float(metrics.ms_ssim(ta, tb)) if fits else None,
    }


def measure(
    content: bytes, items: list[HeldOut], *, runner=None, channels: tuple[int, ...] | None = None
) -> dict:
    """Fidelity of the flatbuffer ``content`` on ``items`` (see the module's docstring), JSON-ready.

    PSNR of identical images is ``inf`` (Python's json writes ``Infinity``). ``runner``: the class that runs
    ``content`` (``TFLiteRunner`` by default; ``OnnxRunner`` for ONNX files). ``channels``: the file takes its
    packed channels in another order, ``packed[..., channels]`` (``pynet_tf.data.bayer.channel_permutation``).
    Items without a float model's output (``held_out_targets``) leave everything versus the float model null.
    ``classical_isp`` (which one ran) and ``vs_ground_truth.classical_isp`` (its scores on the same inputs)
    are null for items without its render.
    """
    runner = (runner or TFLiteRunner)(content)
    rows = []
    for item in items:
        packed = item.packed if channels is None else item.packed[..., list(channels)]
        output = np.clip(runner(packed), 0.0, 1.0)[: item.target.shape[0], : item.target.shape[1]]
        file_gt = _pair(output, item.target)
        if item.reference is None:
            versus_float, float_gt, delta = None, None, None
        else:
            versus_float = {
                **_pair(output, item.reference),
                "max_abs": float(np.max(np.abs(output - item.reference))),
            }
            float_gt = _pair(item.reference, item.target)
            delta = file_gt["psnr"] - float_gt["psnr"]
        classical = None if item.classical_isp is None else item.classical_isp.scores
        rows.append(
            {
                "name": item.name,
                "padded": list(item.padded),
                "vs_float": versus_float,
                "vs_ground_truth": {
                    "file": file_gt,
                    "float": float_gt,
                    "delta_psnr": delta,
                    "classical_isp": classical,
                },
            }
        )

    def mean(*keys: str) -> float | None:
        values = []
        for row in rows:
            value = row
            for key in keys:
                value = None if value is None else value[key]
            values.append(value)
        return None if any(v is None for v in values) else float(np.mean(values))

    classical = items[0].classical_isp
    versus_float = (
        None
        if items[0].reference is None
        else {
            **{score: mean("vs_float", score) for score in SCORES},
            "max_abs": max(r["vs_float"]["max_abs"] for r in rows),
        }
    )
    return {
        "images": len(rows),
        "input_shape": list(items[0].packed.shape[:2]),
        "outputs": "clipped to [0, 1]; PSNR peak 1.0, SSIM and MS-SSIM as pynet_tf.metrics",
        "vs_float": versus_float,
        "classical_isp": None if classical is None else classical.baseline.record(),
        "vs_ground_truth": {
            "file": {score: mean("vs_ground_truth", "file", score) for score in SCORES},
            "float": {score: mean("vs_ground_truth", "float", score) for score in SCORES},
            "delta_psnr": mean("vs_ground_truth", "delta_psnr"),
            "classical_isp": None
            if classical is None
            else {score: mean("vs_ground_truth", "classical_isp", score) for score in SCORES},
        },
        "per_image": rows,
    }
