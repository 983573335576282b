"""The JSON sidecar written beside every exported file (``<file>.json``): where it came from and what it is.

Schema (``FORMAT``, ``VERSION`` 1)::

    format, version       "pynet-tf export sidecar", 1
    file                  {name, bytes, mb, sha256}               the exported file
    export_format         {name, description}                    a key of export.formats.FORMATS
    source                {model, sha256, level, base_filters}   the .keras file it was converted from
    settings              {input_shape ("HxW" | "dynamic"), batch, io, data, seed, min_psnr}
    calibration           int8: {path, file_sha256, inputs_sha256, num, shape, data}; otherwise null
    inputs, outputs       [{name, shape, shape_signature, dtype, quantization: {scale, zero_point} | null}]
    ops                   {op name: count} from the LiteRT interpreter's op details
    float_tensors         int8: [{name, dtype, shape}] tensors left in float; otherwise null
    unquantized_ops       int8: [{op, index, float_inputs, float_outputs}] ops that read or write float
    fidelity              export.fidelity.measure's result (vs the float model and vs ground truth)
    versions              {python, tensorflow, tf_keras, ai_edge_litert, numpy}
"""

from __future__ import annotations

import hashlib
import platform
from collections import Counter
from importlib import metadata
from pathlib import Path

import numpy as np
from ai_edge_litert.interpreter import Interpreter

FORMAT = "pynet-tf export sidecar"
VERSION = 1
SUFFIX = ".json"
MB = 1024 * 1024


def sidecar_path(exported: str | Path) -> Path:
    exported = Path(exported)
    return exported.with_name(exported.name + SUFFIX)


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def tool_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for package in ("tensorflow", "tf_keras", "ai-edge-litert", "numpy"):
        try:
            versions[package.replace("-", "_")] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package.replace("-", "_")] = None
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
    ops = interpreter._get_ops_details()  # noqa: SLF001 (LiteRT's only op listing; stable since TF 2.5)
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
            for t in tensors.values() if np.dtype(t["dtype"]).kind == "f"
        ]
        info["unquantized_ops"] = [
            {"op": op["op_name"], "index": int(op["index"]),
             "float_inputs": [tensors[i]["name"] for i in op["inputs"] if is_float(int(i))],
             "float_outputs": [tensors[i]["name"] for i in op["outputs"] if is_float(int(i))]}
            for op in ops
            if any(is_float(int(i)) for i in [*op["inputs"], *op["outputs"]])
        ]  # fmt: skip
    return info


def build_sidecar(
    exported: Path,
    content: bytes,
    *,
    export_format: dict,
    source: dict,
    settings: dict,
    calibration: dict | None,
    fidelity: dict | None,
) -> dict:
    """The sidecar of ``content``, to be written at ``exported``'s sidecar path (see the module's schema)."""
    return {
        "format": FORMAT,
        "version": VERSION,
        "file": {"name": exported.name, "bytes": len(content), "mb": round(len(content) / MB, 6),
                 "sha256": hashlib.sha256(content).hexdigest()},
        "export_format": export_format,
        "source": source,
        "settings": settings,
        "calibration": calibration,
        **describe(content, quantized=calibration is not None),
        "fidelity": fidelity,
        "versions": tool_versions(),
    }  # fmt: skip
