"""Accuracy on the device: the export's held-out inputs through the phone's own kernels, scored here.

The exporters score every file on the host through LiteRT's CPU kernels (the sidecar's ``fidelity``); a phone's
GPU (fp16 arithmetic) or NPU (its own int8 kernels) can compute something else. So for each benchmark row the
same held-out packed inputs the sidecar was scored on (its ``--data``, ``--seed`` and input shape) are written
as raw tensor files in the file's input type and quantization (``tensor_files``), pushed, run through
``benchmark_model`` with the row's delegate and threads (``--input_layer_value_files``), and the outputs it
dumps (``--output_filepath``) are pulled and scored by ``export.fidelity.measure``: the code that wrote the
sidecar's figures, against the float Keras model's outputs and the ground truth, next to the classical ISP.

What is needed: the sidecar, and its float model (``source.model``) on this machine, for the references; a
third-party file (``export/third_party.py``) is scored against the ground truth alone, its channel order
applied. Without them a row says why and keeps its latency.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from android_bench import tensor_files
from android_bench.benchmark_output import parse
from android_bench.device import failure_text
from export import fidelity
from pynet_tf import runs
from pynet_tf.cli import image_size
from pynet_tf.console import native_quiet
from pynet_tf.data import bayer


class AccuracyUnavailable(Exception):
    """The rows of this file cannot be scored on the device; the message says why (and what would fix it)."""


@dataclass(frozen=True)
class HeldOutInputs:
    """One exported file's held-out inputs, ready to push: tensor files and what scores their outputs."""

    items: list[fidelity.HeldOut]
    files: list[Path]
    """One raw tensor file per item, in the file's input type (``tensor_files.input_bytes``)."""
    input_name: str
    """The name the tool's flags give the input (``tensor_files.flag_layer_name``)."""
    input_shape: tuple[int, ...]
    outputs: list[dict]
    """The file's output tensor details (LiteRT), to read the tool's dump."""
    content: bytes
    """The exported file (``fidelity.measure`` records it only as the file scored)."""


def prepare(model_path: Path, sidecar: dict | None, folder: Path) -> HeldOutInputs:
    """The held-out inputs of the exported file ``model_path`` written into ``folder``; ``AccuracyUnavailable``
    when its sidecar or float model is missing."""
    if sidecar is None:
        raise AccuracyUnavailable(
            "no sidecar beside the file, so no held-out inputs: export it with export/to_tflite.py"
        )
    settings, source = sidecar.get("settings") or {}, sidecar.get("source") or {}
    shape = _input_shape(sidecar)
    data, seed = settings.get("data", "samples"), settings.get("seed", 0)
    if source.get("third_party"):
        items = fidelity.held_out_targets(shape, data, level=0, seed=seed)
        order = bayer.parse_channel_order(settings.get("channel_order") or "canonical")
        channels = bayer.channel_permutation(order)
    else:
        float_model = source.get("model")
        if not float_model or not Path(float_model).exists():
            raise AccuracyUnavailable(
                f"the float model the sidecar names ({float_model}) is not on this machine, so there is "
                "nothing to score the device's outputs against: benchmark where the file was exported"
            )
        items = fidelity.held_out(runs.load_model(float_model), shape, data, seed=seed)
        channels = None
    content = model_path.read_bytes()
    with native_quiet():
        detail, outputs = tensor_files.tensor_details(content, (1, *shape, 4))
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for index, item in enumerate(items):
        packed = item.packed if channels is None else item.packed[..., list(channels)]
        path = folder / f"{model_path.stem}_input{index}.raw"
        path.write_bytes(tensor_files.input_bytes(packed, detail))
        tensor_files.check_size(path, detail, (1, *shape, 4))  # what the tool would abort on, refused here
        files.append(path)
    return HeldOutInputs(
        items, files, tensor_files.flag_layer_name(detail["name"]), (1, *shape, 4), outputs, content
    )


def _input_shape(sidecar: dict) -> tuple[int, int]:
    """The packed (H, W) the sidecar's fidelity was measured at (a dynamic file's too)."""
    measured = (sidecar.get("fidelity") or {}).get("input_shape")
    if measured:
        return int(measured[0]), int(measured[1])
    return image_size((sidecar.get("settings") or {})["input_shape"])


class _Replay:
    """Stands in for a runner in ``fidelity.measure``: the device's outputs, in the items' order."""

    def __init__(self, outputs: list[np.ndarray]) -> None:
        self.outputs = iter(outputs)

    def __call__(self, packed: np.ndarray) -> np.ndarray:
        return next(self.outputs)


def score(held: HeldOutInputs, dumps: list[bytes]) -> dict:
    """``fidelity.measure``'s record of the device's outputs (one tool dump per held-out item)."""
    outputs = [tensor_files.read_outputs(dump, held.outputs)[0][0] for dump in dumps]
    return fidelity.measure(held.content, held.items, runner=lambda content: _Replay(outputs))


def summary(record: dict) -> dict:
    """The few figures a row and the report show: PSNR/SSIM/MS-SSIM vs float and vs ground truth."""
    versus_float = record.get("vs_float") or {}
    truth = (record.get("vs_ground_truth") or {}).get("file") or {}
    return {
        "images": record["images"],
        "psnr_vs_float": versus_float.get("psnr"),
        "ssim_vs_float": versus_float.get("ssim"),
        "max_abs_vs_float": versus_float.get("max_abs"),
        "psnr_vs_gt": truth.get("psnr"),
        "ssim_vs_gt": truth.get("ssim"),
        "ms_ssim_vs_gt": truth.get("ms_ssim"),
    }


TOO_OLD = (
    "this benchmark_model wrote no output dump: a build from before mid-2022 does not know "
    f"{tensor_files.OUTPUT_DUMP_FLAG} ({{how}}); use a newer build of the tool (LiteRT's, or TFLite's from "
    "TF 2.10 on), or --inference-diff-binary for the deviation on random inputs"
)


def run_failure(
    output: str, exit_code: int | None, error: str | None, dumped: bool
) -> tuple[str, str] | None:
    """(status, message) when a held-out run gave no output dump (``dumped``: the file is on the device), else
    None: ``error`` for a run that failed (the real tool aborts on an input file of the wrong size, for one),
    ``unsupported`` for a tool too old for ``--output_filepath``, which ignores it (with an "Unconsumed cmdline
    flags" warning, or silently in the oldest builds) and writes nothing."""
    if error is not None:
        return "error", error
    if exit_code != 0:
        return "error", parse(output).error_message() or failure_text(output, exit_code)
    if dumped:
        return None
    flag = tensor_files.OUTPUT_DUMP_FLAG
    ignored = [arg for arg in tensor_files.unconsumed_flags(output) if arg.startswith(flag)]
    how = f"it warned: Unconsumed cmdline flags: {ignored[0]}" if ignored else "it ignored the flag silently"
    return "unsupported", TOO_OLD.format(how=how)
