"""The JSON sidecar written beside every exported file (``<file>.json``): where it came from and what it is.

Schema (``FORMAT``, ``VERSION`` 6; 2 added ``full_integer``, ``float_fallback``, ``quantization_debug``,
``delegates``; 3 added ``qat``; 4 added MS-SSIM to ``fidelity``; 5 added the classical ISP to ``fidelity``;
6 counts ``file.mb`` in 10^6 bytes, as every table does, no longer 2^20)::

    format, version       "pynet-tf export sidecar", 6
    file                  {name, bytes, mb, sha256}               the exported file (mb: 10^6 bytes)
    export_format         {name, description}                    a key of export.formats.FORMATS
    source                {model, sha256, level, arch, base_filters}  the .keras file it was converted from
    settings              {input_shape ("HxW" | "dynamic"), batch_shape, io, data, seed, min_psnr, float_fallback}
    calibration           int8: {path, file_sha256, inputs_sha256, num, shape, data}; qat: {built, num, shape,
                          data, seed} (ranges from training crops, then fine-tuned); otherwise null
    inputs, outputs       [{name, shape, shape_signature, dtype, quantization: {scale, zero_point} | null}]
    ops                   {op name: count} from the LiteRT interpreter's op details (ONNX: node op_types)
    float_tensors         int8: [{name, dtype, shape}] tensors left in float; otherwise null
    unquantized_ops       int8: [{op, index, float_inputs, float_outputs}] ops that read or write float
    full_integer          int8, qat: true when every op computes in int8 (float io conversion aside); else null
    float_fallback        int8 with --float-fallback: {requested ("auto" | [names]), min_psnr, layers (Keras
                          layers kept in float), tensors (their TFLite tensors, denylisted), float_ops {op:
                          count}, and for auto: ranked_layers (how many of the worst layers it chose; layers
                          adds pass-through neighbours), steps [{layers, last, psnr_vs_float}] (every count
                          of worst layers tried, by count) and reached}; otherwise null
    quantization_debug    int8: export.sensitivity.Analysis.record(): per-tensor error of each quantized op
                          (tensor, op, layer, rmse, scale, rmse_over_scale, nsr, max_abs_error) and per Keras
                          layer (layer, nsr of its worst tensor, tensors), both worst first; otherwise null
    qat                   qat: export.qat.FineTuning.record() (loss, steps, targets, lr, batch_size, patch,
                          data, seed, lab_alpha, vgg, calibration_batches) and step_losses; otherwise null
    delegates             TFLite: export.delegates.delegate_report(): ops (count), per delegate (gpu, nnapi)
                          {delegate, supported (full|partial|none), unsupported_ops {op: count}, notes}, nnapi
                          adds unsupported_why {op: reason} and min_android_api; ONNX: null
    fidelity              export.fidelity.measure's result (vs the float model and vs ground truth); from 5,
                          classical_isp {name, label, description} and vs_ground_truth.classical_isp {psnr,
                          ssim, ms_ssim}: the classical ISP on the same held-out inputs (older: absent)
    versions              {python, tensorflow, tf_keras, ai_edge_litert, numpy}; ONNX adds onnx, onnxruntime,
                          tf2onnx

ONNX files (export/to_onnx.py) use the same schema through ``build_sidecar(..., describer=describe_onnx)``:
settings add ``opset``, ``max_abs_error`` and ``execution_provider``; inputs/outputs' ``shape`` holds ONNX's
dims (an int, or the symbolic name of a run-time dim), ``shape_signature`` the same with -1 for run-time dims
(as LiteRT's), ``quantization`` null.
"""

from __future__ import annotations

import hashlib
import platform
from collections import Counter
from importlib import metadata
from pathlib import Path

import numpy as np
from ai_edge_litert.interpreter import Interpreter

from export.delegates import delegate_report
from pynet_tf.units import MB

FORMAT = "pynet-tf export sidecar"
ANALYSES = ("full_integer", "float_fallback", "quantization_debug", "qat")
"""Keys a format fills through ``build_sidecar(..., analyses=...)`` (null otherwise)."""
VERSION = 6
SUFFIX = ".json"


def sidecar_path(exported: str | Path) -> Path:
    exported = Path(exported)
    return exported.with_name(exported.name + SUFFIX)


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def package_version(package: str) -> str | None:
    """The installed version of distribution ``package``; None when it is not installed."""
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def tool_versions(extra: tuple[str, ...] = ()) -> dict[str, str | None]:
    """Versions of Python and the conversion packages; ``extra`` names more packages (distribution names)."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for package in ("tensorflow", "tf_keras", "ai-edge-litert", "numpy", *extra):
        versions[package.replace("-", "_")] = package_version(package)
    return versions


def _tensor(detail: dict) -> dict:
    scale, zero_point = detail["quantization"]
    quantized = np.dtype(detail["dtype"]).kind in "iu" and scale != 0.0
    return {
        "name": detail["name"],
        "shape": [int(s) for s in detail["shape"]],
        "shape_signature": [int(s) for s in detail.get("shape_signature", detail["shape"])],
        "dtype": np.dtype(detail["dtype"]).name,
        "quantization": {"scale": float(scale), "zero_point": int(zero_point)} if quantized else None,
    }


def describe(content: bytes, *, quantized: bool) -> dict:
    """Inputs, outputs and op counts of a flatbuffer, and with ``quantized`` what was left in float."""
    interpreter = Interpreter(model_content=content)
    ops = interpreter._get_ops_details()
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    info = {
        "inputs": [_tensor(d) for d in interpreter.get_input_details()],
        "outputs": [_tensor(d) for d in interpreter.get_output_details()],
        "ops": dict(Counter(op["op_name"] for op in ops).most_common()),
        "float_tensors": None,
        "unquantized_ops": None,
    }
    if quantized:

        def is_float(index: int) -> bool:
            return index in tensors and np.dtype(tensors[index]["dtype"]).kind == "f"

        info["float_tensors"] = [
            {"name": t["name"], "dtype": np.dtype(t["dtype"]).name, "shape": [int(s) for s in t["shape"]]}
            for t in tensors.values()
            if np.dtype(t["dtype"]).kind == "f"
        ]
        info["unquantized_ops"] = [
            {
                "op": op["op_name"],
                "index": int(op["index"]),
                "float_inputs": [tensors[i]["name"] for i in op["inputs"] if is_float(int(i))],
                "float_outputs": [tensors[i]["name"] for i in op["outputs"] if is_float(int(i))],
            }
            for op in ops
            if any(is_float(int(i)) for i in [*op["inputs"], *op["outputs"]])
        ]
    return info


ONNX_PACKAGES = ("onnx", "onnxruntime", "tf2onnx")


def _onnx_tensor(value_info) -> dict:
    from onnx import helper

    tensor = value_info.type.tensor_type
    shape = [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in tensor.shape.dim]
    return {
        "name": value_info.name,
        "shape": shape,
        "shape_signature": [d if isinstance(d, int) else -1 for d in shape],
        "dtype": np.dtype(helper.tensor_dtype_to_np_dtype(tensor.elem_type)).name,
        "quantization": None,
    }


def describe_onnx(content: bytes) -> dict:
    """Inputs, outputs and node op_type counts of a serialized ONNX model (ops outside the default domain
    are named ``domain.op_type``); ``float_tensors`` / ``unquantized_ops`` null (float models only)."""
    import onnx

    model = onnx.load_model_from_string(content)
    initializers = {t.name for t in model.graph.initializer}
    return {
        "inputs": [_onnx_tensor(v) for v in model.graph.input if v.name not in initializers],
        "outputs": [_onnx_tensor(v) for v in model.graph.output],
        "ops": dict(
            Counter(
                f"{n.domain}.{n.op_type}" if n.domain not in ("", "ai.onnx") else n.op_type
                for n in model.graph.node
            ).most_common()
        ),
        "float_tensors": None,
        "unquantized_ops": None,
    }


def build_sidecar(
    exported: Path,
    content: bytes,
    *,
    export_format: dict,
    source: dict,
    settings: dict,
    calibration: dict | None,
    fidelity: dict | None,
    describer=None,
    packages: tuple[str, ...] = (),
    analyses: dict | None = None,
) -> dict:
    """The sidecar of ``content``, to be written at ``exported``'s sidecar path (see the module's schema).

    ``describer`` (``content -> {inputs, outputs, ops, float_tensors, unquantized_ops}``) replaces the TFLite
    ``describe`` for other file types (``describe_onnx``); ``packages`` adds their versions. ``analyses``:
    the format's own keys (``full_integer``, ``float_fallback``, ``quantization_debug``), null when absent.
    """
    described = describer(content) if describer else describe(content, quantized=calibration is not None)
    analyses = {key: None for key in ANALYSES} | (analyses or {})
    return {
        "format": FORMAT,
        "version": VERSION,
        "file": {
            "name": exported.name,
            "bytes": len(content),
            "mb": round(len(content) / MB, 6),
            "sha256": hashlib.sha256(content).hexdigest(),
        },
        "export_format": export_format,
        "source": source,
        "settings": settings,
        "calibration": calibration,
        **described,
        **analyses,
        "delegates": None if describer else delegate_report(content),
        "fidelity": fidelity,
        "versions": tool_versions(packages),
    }
