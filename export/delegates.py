"""Which ops of a TFLite file fall outside what Android's GPU delegate and NNAPI delegate accept.

A delegate takes the ops it supports and leaves the rest to the CPU; every unsupported op splits the graph
into another partition with a copy in and out, and by default both delegates run only the largest partition
(``max_delegated_partitions`` 1), so one unsupported op in the middle of a net can keep most of it off the
accelerator. ``delegate_report(content)`` lists, per delegate, the ops (and how many) the tables below reject.

The tables transcribe these sources, one entry per op (the op's name as LiteRT reports it):

- **GPU**: ``CheckGpuDelegateCompatibility`` in
  https://github.com/tensorflow/tensorflow/blob/master/tensorflow/lite/tools/versioning/gpu_compatibility.cc,
  the check the delegate and ``tf.lite.experimental.Analyzer(gpu_compatibility=True)`` run (the list on
  https://ai.google.dev/edge/litert/performance/gpu is older and shorter). Per-op parameter limits there
  (broadcast shapes, strides, activations) are not modelled. Quantized models: "It also supports 8-bit
  quantized models and provides GPU performance on par with their float versions"
  (https://ai.google.dev/edge/litert/performance/delegates): int8 buys no GPU speed, fp16 is its format.
- **NNAPI**: ``NNAPIDelegateKernel::Validate`` in
  https://github.com/tensorflow/tensorflow/blob/master/tensorflow/lite/delegates/nnapi/nnapi_delegate.cc:
  per op, the first Android API level that accepts it with float32 inputs, with quantized (uint8/int8)
  inputs, and with other inputs (int32, bool); ``None`` where that input type is refused at every level
  (e.g. RSQRT is float-only; quantized MEAN needs the output's scale and zero-point equal to the input's).
  Constant float16 DEQUANTIZE nodes (fp16 weights) are folded by the delegate (``DoPrepare``), which then
  delegates fp16 models only whole. Op versions and shape limits are not modelled. NNAPI is deprecated
  since Android 15 (https://developer.android.com/ndk/guides/neuralnetworks/migration-guide).

- **16x8 files** (int16 activations): neither delegate takes an op on int16 data. The GPU delegate's model
  builder allows float32, float16, int8 and uint8 tensors (``GetOpsToReplace`` in
  tensorflow/lite/delegates/gpu/common/model_builder.cc); NNAPI's ``Validate`` has no int16 activation path
  for these ops. Such files are for CPUs and vendor NPU delegates with A16W8 kernels.

So "full" means no op outside the documented lists, not a guarantee that the delegate will take the
file on a given phone (drivers refuse more); ``android_bench`` measures that.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
from ai_edge_litert.interpreter import Interpreter

API_NNAPI_10, API_NNAPI_11, API_NNAPI_12, API_NNAPI_13 = 27, 28, 29, 30
"""Android API levels of NNAPI 1.0 (Android 8.1) to 1.3 (Android 11), the levels ``Validate`` tests."""

GPU_OPS = frozenset(
    {
        "ABS",
        "ADD",
        "ADD_N",
        "ATAN2",
        "AVERAGE_POOL_2D",
        "BATCH_MATMUL",
        "CAST",
        "CEIL",
        "CONCATENATION",
        "CONV_2D",
        "COS",
        "CUMSUM",
        "DENSIFY",
        "DEPTHWISE_CONV_2D",
        "DEPTH_TO_SPACE",
        "DEQUANTIZE",
        "DIV",
        "DYNAMIC_UPDATE_SLICE",
        "ELU",
        "EMBEDDING_LOOKUP",
        "EQUAL",
        "EXP",
        "FLOOR",
        "FLOOR_DIV",
        "FLOOR_MOD",
        "FULLY_CONNECTED",
        "GATHER",
        "GELU",
        "GREATER",
        "GREATER_EQUAL",
        "HARD_SWISH",
        "LEAKY_RELU",
        "LESS",
        "LESS_EQUAL",
        "LOG",
        "LOGICAL_AND",
        "LOGISTIC",
        "LSTM",
        "MAXIMUM",
        "MAX_POOL_2D",
        "MEAN",
        "MINIMUM",
        "MIRROR_PAD",
        "MUL",
        "NEG",
        "NOT_EQUAL",
        "ONE_HOT",
        "PACK",
        "PAD",
        "PADV2",
        "POW",
        "PRELU",
        "QUANTIZE",
        "REDUCE_MAX",
        "REDUCE_MIN",
        "REDUCE_PROD",
        "RELU",
        "RELU6",
        "RELU_N1_TO_1",
        "RESHAPE",
        "RESIZE_BILINEAR",
        "RESIZE_NEAREST_NEIGHBOR",
        "RSQRT",
        "SELECT",
        "SELECT_V2",
        "SIGN",
        "SIN",
        "SLICE",
        "SOFTMAX",
        "SPACE_TO_DEPTH",
        "SPLIT",
        "SPLIT_V",
        "SQRT",
        "SQUARE",
        "SQUARED_DIFFERENCE",
        "STABLEHLO_CLAMP",
        "STRIDED_SLICE",
        "SUB",
        "SUM",
        "TANH",
        "TILE",
        "TRANSPOSE",
        "TRANSPOSE_CONV",
        # custom ops the GPU delegate implements
        "Convolution2DTransposeBias",
        "MaxPoolingWithArgmax2D",
        "MaxUnpooling2D",
        "Resampler",
    }
)
"""Ops ``CheckGpuDelegateCompatibility`` accepts (float32, float16 and 8-bit quantized models alike)."""


@dataclass(frozen=True)
class NnapiOp:
    """The first Android API level at which NNAPI's ``Validate`` accepts the op, by its first input's type."""

    float_api: int | None
    quant_api: int | None = None
    other_api: int | None = None
    """int32 or bool inputs."""
    same_quantization: bool = False
    """Quantized: the output must have the input's scale and zero-point."""
    data_input: int = 0
    """The input whose type ``Validate`` checks (TRANSPOSE_CONV: 2, after output shape and filter)."""


_F = API_NNAPI_10
NNAPI_OPS: dict[str, NnapiOp] = {
    "ABS": NnapiOp(API_NNAPI_12),
    "ADD": NnapiOp(_F, _F, API_NNAPI_13),
    "ARG_MAX": NnapiOp(API_NNAPI_12, API_NNAPI_12, API_NNAPI_12),
    "ARG_MIN": NnapiOp(API_NNAPI_12, API_NNAPI_12, API_NNAPI_12),
    "AVERAGE_POOL_2D": NnapiOp(_F, _F),
    "BATCH_TO_SPACE_ND": NnapiOp(API_NNAPI_11, API_NNAPI_11),
    "BIDIRECTIONAL_SEQUENCE_LSTM": NnapiOp(API_NNAPI_12),
    "CAST": NnapiOp(API_NNAPI_12, API_NNAPI_12, API_NNAPI_12),
    "CONCATENATION": NnapiOp(_F, _F),
    "CONV_2D": NnapiOp(_F, _F),
    "DENSIFY": NnapiOp(API_NNAPI_13, API_NNAPI_13, API_NNAPI_13),
    "DEPTHWISE_CONV_2D": NnapiOp(_F, _F),
    "DEPTH_TO_SPACE": NnapiOp(_F, _F),
    "DEQUANTIZE": NnapiOp(API_NNAPI_13, _F),  # float: float16 input (constant fp16 weights: folded)
    "DIV": NnapiOp(API_NNAPI_11),
    "ELU": NnapiOp(API_NNAPI_13),
    "EMBEDDING_LOOKUP": NnapiOp(_F),
    "EQUAL": NnapiOp(API_NNAPI_11, API_NNAPI_11, API_NNAPI_11),
    "EXP": NnapiOp(API_NNAPI_12),
    "EXPAND_DIMS": NnapiOp(API_NNAPI_12, API_NNAPI_12, API_NNAPI_12),
    "FILL": NnapiOp(API_NNAPI_13, None, API_NNAPI_13),
    "FLOOR": NnapiOp(_F),
    "FULLY_CONNECTED": NnapiOp(_F, _F),
    "GATHER": NnapiOp(API_NNAPI_12, API_NNAPI_12, API_NNAPI_12),
    "GREATER": NnapiOp(API_NNAPI_11, API_NNAPI_11, API_NNAPI_11),
    "GREATER_EQUAL": NnapiOp(API_NNAPI_11, API_NNAPI_11, API_NNAPI_11),
    "HARD_SWISH": NnapiOp(_F, _F),
    "HASHTABLE_LOOKUP": NnapiOp(_F, _F, _F),
    "L2_NORMALIZATION": NnapiOp(_F, API_NNAPI_12),
    "L2_POOL_2D": NnapiOp(_F),
    "LEAKY_RELU": NnapiOp(API_NNAPI_12, API_NNAPI_12),
    "LESS": NnapiOp(API_NNAPI_11, API_NNAPI_11, API_NNAPI_11),
    "LESS_EQUAL": NnapiOp(API_NNAPI_11, API_NNAPI_11, API_NNAPI_11),
    "LOCAL_RESPONSE_NORMALIZATION": NnapiOp(_F),
    "LOG": NnapiOp(API_NNAPI_12),
    "LOGICAL_AND": NnapiOp(None, None, API_NNAPI_12),
    "LOGICAL_NOT": NnapiOp(None, None, API_NNAPI_12),
    "LOGICAL_OR": NnapiOp(None, None, API_NNAPI_12),
    "LOGISTIC": NnapiOp(_F, _F),
    "LOG_SOFTMAX": NnapiOp(API_NNAPI_12),
    "LSH_PROJECTION": NnapiOp(_F, _F, _F),
    "LSTM": NnapiOp(API_NNAPI_11, API_NNAPI_11),
    "MAXIMUM": NnapiOp(API_NNAPI_12, API_NNAPI_12, API_NNAPI_12),
    "MAX_POOL_2D": NnapiOp(_F, _F),
    "MEAN": NnapiOp(API_NNAPI_11, API_NNAPI_12, same_quantization=True),
    "MINIMUM": NnapiOp(API_NNAPI_12, API_NNAPI_12, API_NNAPI_12),
    "MUL": NnapiOp(_F, _F, API_NNAPI_13),
    "NEG": NnapiOp(API_NNAPI_11, None, API_NNAPI_11),
    "NOT_EQUAL": NnapiOp(API_NNAPI_11, API_NNAPI_11, API_NNAPI_11),
    "PACK": NnapiOp(API_NNAPI_13, API_NNAPI_13, API_NNAPI_13),
    "PAD": NnapiOp(API_NNAPI_11, API_NNAPI_12),
    "PADV2": NnapiOp(API_NNAPI_12, API_NNAPI_12),
    "POW": NnapiOp(API_NNAPI_12),
    "PRELU": NnapiOp(API_NNAPI_12, API_NNAPI_12),
    "QUANTIZE": NnapiOp(API_NNAPI_12, API_NNAPI_12),
    "REDUCE_ANY": NnapiOp(None, None, API_NNAPI_12),
    "REDUCE_MAX": NnapiOp(API_NNAPI_12, API_NNAPI_12),
    "REDUCE_MIN": NnapiOp(API_NNAPI_12, API_NNAPI_12),
    "REDUCE_PROD": NnapiOp(API_NNAPI_12),
    "RELU": NnapiOp(_F, _F),
    "RELU6": NnapiOp(_F, _F),
    "RELU_N1_TO_1": NnapiOp(_F, _F),
    "RESHAPE": NnapiOp(_F, _F),
    "RESIZE_BILINEAR": NnapiOp(_F, API_NNAPI_12),
    "RESIZE_NEAREST_NEIGHBOR": NnapiOp(API_NNAPI_12, API_NNAPI_12),
    "RNN": NnapiOp(_F),
    "RSQRT": NnapiOp(API_NNAPI_12),
    "SELECT": NnapiOp(API_NNAPI_11, API_NNAPI_11, API_NNAPI_11),
    "SIN": NnapiOp(API_NNAPI_12),
    "SLICE": NnapiOp(API_NNAPI_12, API_NNAPI_12, API_NNAPI_12),
    "SOFTMAX": NnapiOp(_F, _F),
    "SPACE_TO_BATCH_ND": NnapiOp(API_NNAPI_11, API_NNAPI_11),
    "SPACE_TO_DEPTH": NnapiOp(_F, _F),
    "SPLIT": NnapiOp(API_NNAPI_12, API_NNAPI_12, API_NNAPI_12, data_input=1),
    "SQRT": NnapiOp(API_NNAPI_12),
    "SQUEEZE": NnapiOp(API_NNAPI_11, API_NNAPI_11),
    "STRIDED_SLICE": NnapiOp(API_NNAPI_11, API_NNAPI_11),
    "SUB": NnapiOp(API_NNAPI_11, API_NNAPI_12, API_NNAPI_13),
    "SUM": NnapiOp(API_NNAPI_12),
    "SVDF": NnapiOp(API_NNAPI_11),
    "TANH": NnapiOp(_F, API_NNAPI_12),
    "TILE": NnapiOp(API_NNAPI_12, API_NNAPI_12, API_NNAPI_12),
    "TOPK_V2": NnapiOp(API_NNAPI_12, API_NNAPI_12, API_NNAPI_12),
    "TRANSPOSE": NnapiOp(API_NNAPI_11, API_NNAPI_11),
    "TRANSPOSE_CONV": NnapiOp(API_NNAPI_12, API_NNAPI_12, data_input=2),
    "UNIDIRECTIONAL_SEQUENCE_LSTM": NnapiOp(API_NNAPI_12),
    "UNIDIRECTIONAL_SEQUENCE_RNN": NnapiOp(API_NNAPI_12),
}
"""Ops ``NNAPIDelegateKernel::Validate`` maps, with the Android API levels that accept them."""

DELEGATES = {
    "gpu": "Android GPU delegate (OpenCL/OpenGL; float32, float16, 8-bit quantized run in float)",
    "nnapi": "NNAPI delegate (Android 8.1+, deprecated since Android 15)",
}
FULL, PARTIAL, NONE = "full", "partial", "none"


@dataclass(frozen=True)
class OpNode:
    """One op of a flatbuffer as the delegates see it."""

    name: str
    input_kind: str
    """``float``, ``quant`` (uint8/int8), ``int16`` (16x8 activations) or ``other``: the data input's type,
    which selects the kernels."""
    constant_input: bool
    same_quantization: bool
    """The data input and the output carry the same scale and zero-point (or neither is quantized)."""


def _kind(dtype) -> str:
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return "float"
    return "quant" if dtype in (np.int8, np.uint8) else "int16" if dtype == np.int16 else "other"


def op_nodes(content: bytes) -> list[OpNode]:
    """The ops of ``content`` in execution order, with what the tables need to judge them."""
    interpreter = Interpreter(model_content=content)
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    ops = interpreter._get_ops_details()
    computed = {int(i) for op in ops for i in op["outputs"]}
    computed |= {int(d["index"]) for d in interpreter.get_input_details()}
    nodes = []
    for op in ops:
        inputs = [int(i) for i in op["inputs"]]
        position = NNAPI_OPS[op["op_name"]].data_input if op["op_name"] in NNAPI_OPS else 0
        data = inputs[position] if position < len(inputs) and inputs[position] >= 0 else None
        first = tensors[data] if data is not None else None
        output = tensors[int(op["outputs"][0])] if len(op["outputs"]) else None
        same = (
            first is not None
            and output is not None
            and (tuple(first["quantization"]) == tuple(output["quantization"]))
        )
        nodes.append(
            OpNode(
                op["op_name"],
                _kind(first["dtype"]) if first else "other",
                data is not None and data not in computed,
                same,
            )
        )
    return nodes


def _folded(node: OpNode) -> bool:
    """A DEQUANTIZE of constant float16 weights, which the NNAPI delegate folds into float32 constants."""
    return node.name == "DEQUANTIZE" and node.input_kind == "float" and node.constant_input


def _refusal(node: OpNode) -> str:
    """Why NNAPI's ``Validate`` refuses ``node`` (one the table rejects)."""
    if node.name not in NNAPI_OPS:
        return "not mapped by the NNAPI delegate"
    if node.input_kind == "quant" and NNAPI_OPS[node.name].same_quantization:
        return "quantized output scale/zero-point differ from the input's"
    return f"{node.input_kind} inputs are not accepted"


def nnapi_api(node: OpNode) -> int | None:
    """The first Android API level whose NNAPI delegate accepts ``node``; None: none does."""
    entry = NNAPI_OPS.get(node.name)
    if entry is None:
        return None
    if _folded(node):
        return API_NNAPI_10
    if node.input_kind == "quant" and entry.same_quantization and not node.same_quantization:
        return None
    return {"float": entry.float_api, "quant": entry.quant_api, "other": entry.other_api, "int16": None}[
        node.input_kind
    ]


def _status(unsupported: int, total: int) -> str:
    return FULL if unsupported == 0 else NONE if unsupported == total else PARTIAL


def delegate_report(content: bytes) -> dict:
    """Per delegate (``gpu``, ``nnapi``): ``supported`` (full / partial / none), ``unsupported_ops``
    ({op: count}, most frequent first), ``notes``; NNAPI adds ``min_android_api`` (the API level that
    accepts every supported op, null if none) and ``unsupported_why`` per op. JSON-ready."""
    nodes = op_nodes(content)
    quantized = any(node.input_kind == "quant" for node in nodes)
    gpu_rejected = Counter(
        node.name for node in nodes if node.name not in GPU_OPS or node.input_kind == "int16"
    )
    gpu_notes = ["8-bit quantized ops run in float on the GPU: no speed-up over fp16"] if quantized else []
    apis = [nnapi_api(node) for node in nodes]
    nnapi_rejected = Counter(node.name for node, api in zip(nodes, apis) if api is None)
    why = {node.name: _refusal(node) for node, api in zip(nodes, apis) if api is None}
    accepted = [api for api in apis if api is not None]
    nnapi_notes = ["only the largest delegated partition runs on NNAPI by default"] if nnapi_rejected else []
    if any(_folded(node) for node in nodes):
        nnapi_notes.append("fp16 weights: the delegate takes such a model only whole")
    return {
        "gpu": {
            "delegate": DELEGATES["gpu"],
            "supported": _status(sum(gpu_rejected.values()), len(nodes)),
            "unsupported_ops": dict(gpu_rejected.most_common()),
            "notes": gpu_notes,
        },
        "nnapi": {
            "delegate": DELEGATES["nnapi"],
            "supported": _status(sum(nnapi_rejected.values()), len(nodes)),
            "unsupported_ops": dict(nnapi_rejected.most_common()),
            "unsupported_why": why,
            "min_android_api": max(accepted) if accepted else None,
            "notes": nnapi_notes,
        },
        "ops": len(nodes),
        "source": __name__,
    }


def summary(report: dict) -> str:
    """One line: each delegate's verdict and unsupported ops (``GPU full; NNAPI partial (RSQRT x4 ...)``)."""
    parts = []
    for key in ("gpu", "nnapi"):
        entry = report[key]
        ops = ", ".join(f"{op} x{count}" for op, count in entry["unsupported_ops"].items())
        api = f", API {entry['min_android_api']}+" if entry.get("min_android_api") else ""
        parts.append(f"{key.upper()} {entry['supported']}{api}" + (f" ({ops} unsupported)" if ops else ""))
    return "; ".join(parts)
