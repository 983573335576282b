"""Bring a third-party learned-ISP TFLite file into the comparison: a copy at our export's input shape, scored.

    python export/third_party.py ../shared/data/third_party/MicroISP.tflite --input-shape 128x128 \\
        --channel-order reference --out exported/microisp
    python export/third_party.py vendor_isp.tflite --input-shape 224x224 --data zrr:/data/zrr

A third-party network (MicroISP, a vendor's ISP) ships at one input size (MicroISP: 1x1500x2000x4) and has no
float Keras model here, so benchmarked as shipped it lands in a report section of its own with empty accuracy
columns. This writes ``<stem>_<H>x<W>.tflite``: the same graph and weights with every tensor's shape set for a
1xHxWx4 input (the shapes LiteRT infers when the input is resized; the copy's output equals the resized
original's, checked on LiteRT's built-in kernels), and the sidecar our exports have (export/sidecar.py), its
fidelity measured against the ground truth of --data's held-out inputs only (``vs_float`` null: there is no
float model), next to the classical ISP's on the same inputs. Benchmarked and reported with our files exported
at the same shape, it shares their report section: one latency-vs-PSNR chart, one ship decision.

--channel-order is the file's packed channel order in our channel names (pynet_tf/data/bayer.py):
``canonical`` (R,Gr,Gb,B), ``reference`` (B,Gr,R,Gb: the reference PyNET's and MicroISP's loaders), or four
names. The held-out inputs are reordered for the file; their values are ours ([0, 1] after black and white
levels). The network must be fully convolutional: one packed input, one RGB output of twice its height and
width. Exit status: 0 written, 2 bad input (one line on stderr).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import export  # noqa: F401  (Keras 2 and the quiet console, before ai_edge_litert loads TensorFlow)

# isort: split
import numpy as np
from ai_edge_litert.interpreter import Interpreter, OpResolverType

from export import fidelity, sidecar
from export.formats import STATUS_OK
from export.results import FormatResult, timing
from pynet_tf import atomic
from pynet_tf.cli import command_parser, image_size
from pynet_tf.data import bayer
from pynet_tf.data.sources import DataSourceError

FORMAT = {"name": "third_party", "description": "a third-party TFLite file, its input shape fixed by us"}
DEFAULT_OUT = Path("exported")
BUILTIN = OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
"""LiteRT's reference kernels: no delegate that could refuse a resized graph or change its arithmetic."""


class ThirdPartyError(ValueError):
    """A file or flag this command cannot use; the message names it and the fix."""


def _interpreter(content: bytes, name: str) -> Interpreter:
    try:
        return Interpreter(model_content=content, experimental_op_resolver_type=BUILTIN)
    except (ValueError, RuntimeError) as error:
        raise ThirdPartyError(f"{name}: not a TFLite file LiteRT can load ({error})") from None


def _run(interpreter: Interpreter, batch: np.ndarray) -> np.ndarray:
    detail = interpreter.get_input_details()[0]
    interpreter.set_tensor(detail["index"], fidelity.quantize(batch, detail))
    interpreter.invoke()
    output = interpreter.get_output_details()[0]
    return fidelity.dequantize(interpreter.get_tensor(output["index"]), output)


def fix_input_shape(content: bytes, shape: tuple[int, int], name: str) -> bytes:
    """``content`` with its input, and every tensor after it, shaped for a 1 x H x W x 4 input.

    The shapes are LiteRT's own, inferred by resizing the input of the original; the copy's output on a random
    input must equal the resized original's exactly (same kernels) and be finite, else one ThirdPartyError.
    """
    from tensorflow.lite.tools import flatbuffer_utils

    original = _interpreter(content, name)
    inputs, outputs = original.get_input_details(), original.get_output_details()
    model = flatbuffer_utils.read_model_from_bytearray(bytearray(content))
    if len(model.subgraphs) != 1 or len(inputs) != 1 or len(outputs) != 1:
        raise ThirdPartyError(
            f"{name}: {len(model.subgraphs)} subgraphs, {len(inputs)} inputs, {len(outputs)} outputs; only "
            "image-to-image networks with one subgraph, one packed input and one RGB output are supported"
        )
    given = tuple(int(side) for side in inputs[0]["shape"])
    if len(given) != 4 or given[0] != 1 or given[3] != 4:
        raise ThirdPartyError(f"{name}: input shape {list(given)}, expected 1 x H x W x 4 packed Bayer")
    batch = (1, *shape, 4)
    try:
        original.resize_tensor_input(inputs[0]["index"], batch, strict=False)
        original.allocate_tensors()
    except (ValueError, RuntimeError) as error:
        raise ThirdPartyError(f"{name}: LiteRT cannot resize its input to {list(batch)} ({error})") from None
    output_shape = tuple(int(side) for side in original.get_output_details()[0]["shape"])
    if output_shape != (1, 2 * shape[0], 2 * shape[1], 3):
        raise ThirdPartyError(
            f"{name}: for a {shape[0]}x{shape[1]} packed input its output is {list(output_shape)}, not "
            f"[1, {2 * shape[0]}, {2 * shape[1]}, 3]: only full-resolution RGB outputs can be scored"
        )
    shapes = {detail["index"]: detail["shape"] for detail in original.get_tensor_details()}
    for index, tensor in enumerate(model.subgraphs[0].tensors):
        tensor.shape = np.asarray(shapes[index], np.int32)
        if tensor.shapeSignature is not None:
            tensor.shapeSignature = np.asarray(shapes[index], np.int32)
    fixed = bytes(flatbuffer_utils.convert_object_to_bytearray(model))
    probe = np.random.default_rng(0).uniform(0.0, 1.0, batch).astype(np.float32)
    expected = _run(original, probe)
    copy = _interpreter(fixed, name)
    copy.allocate_tensors()
    got = _run(copy, probe)
    if not np.all(np.isfinite(got)):
        raise ThirdPartyError(
            f"{name}: at {shape[0]}x{shape[1]} its output is not finite (NaN or infinity): the network "
            "downsamples more than that input allows; give a larger --input-shape"
        )
    if not np.array_equal(got, expected):
        raise ThirdPartyError(
            f"{name}: the fixed-shape copy computes something else (max abs difference "
            f"{np.max(np.abs(got - expected)):.3g}); this file cannot be reshaped"
        )
    return fixed


def import_file(
    path: str | Path,
    *,
    input_shape: tuple[int, int] | None = None,
    channel_order: tuple[str, ...] = bayer.CHANNELS,
    data: str = "samples",
    seed: int = 0,
    out: str | Path = DEFAULT_OUT,
) -> FormatResult:
    """Write the fixed-shape copy of ``path`` and its sidecar into ``out``; the exporters' result type, with
    no PSNR vs float (there is no float model) and its PSNR vs ground truth in the note.

    ``input_shape`` None keeps the file's own. Nothing is written when any check or measurement fails.
    """
    started = time.perf_counter()
    out = atomic.check_output(out)
    path = Path(path)
    if not path.is_file():
        raise ThirdPartyError(f"{path}: no such file; give a third-party .tflite file")
    content = path.read_bytes()
    if input_shape is None:
        given = _interpreter(content, str(path)).get_input_details()[0]["shape"]
        input_shape = (int(given[1]), int(given[2])) if len(given) == 4 else (0, 0)
    fixed = fix_input_shape(content, input_shape, str(path))
    converted = time.perf_counter()
    items = fidelity.held_out_targets(input_shape, data, level=0, seed=seed)
    measured = fidelity.measure(fixed, items, channels=bayer.channel_permutation(channel_order))
    target = Path(out) / f"{path.stem}_{input_shape[0]}x{input_shape[1]}.tflite"
    side = sidecar.build_sidecar(
        target,
        fixed,
        export_format=FORMAT,
        source={
            "model": None,
            "third_party": str(path),
            "sha256": sidecar.sha256_file(path),
            "level": 0,
            "arch": None,
            "base_filters": None,
        },
        settings={
            "input_shape": f"{input_shape[0]}x{input_shape[1]}",
            "batch_shape": [1, *input_shape, 4],
            "channel_order": ",".join(channel_order),
            "data": data,
            "seed": seed,
            "min_psnr": None,
            "float_fallback": None,
        },
        calibration=None,
        fidelity=measured,
    )
    side["timing"] = timing(started, converted)
    atomic.write_bytes(target, fixed)
    atomic.write_json(sidecar.sidecar_path(target), side)
    return FormatResult(
        FORMAT["name"],
        STATUS_OK,
        target,
        len(fixed),
        None,
        measured["vs_ground_truth"]["delta_psnr"],
        time.perf_counter() - started,
        sidecar=side,
        note=f"PSNR vs GT {measured['vs_ground_truth']['file']['psnr']:.2f} dB",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser("export.third_party", __doc__, script=True)
    add = parser.add_argument
    add("file", type=Path, help="the third-party .tflite file (packed Bayer in, RGB at twice the size out)")
    add("--input-shape", help="packed HxW to fix its input at (default: the file's own)")
    add(
        "--channel-order",
        default="canonical",
        help=f"the file's packed channel order: {' | '.join(bayer.CHANNEL_ORDERS)} | four of "
        f"{','.join(bayer.CHANNELS)} in its order (default canonical)",
    )
    add("--data", default="samples", help="held-out inputs for its accuracy: the test split of this source")
    add("--seed", type=int, default=0, help="seed of the synthetic RAW of photo sources (default 0)")
    add("-o", "--out", default=str(DEFAULT_OUT), help="output folder (default exported/)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        try:
            shape = image_size(args.input_shape) if args.input_shape else None
        except argparse.ArgumentTypeError as error:
            raise ThirdPartyError(f"--input-shape: {error}") from None
        try:
            order = bayer.parse_channel_order(args.channel_order)
        except ValueError as error:
            raise ThirdPartyError(f"--channel-order: {error}") from None
        result = import_file(
            args.file, input_shape=shape, channel_order=order, data=args.data, seed=args.seed, out=args.out
        )
    except (ThirdPartyError, DataSourceError, fidelity.FidelityError, atomic.OutputError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    target, side = result.path, result.sidecar
    measured = side["fidelity"]
    truth, classical = measured["vs_ground_truth"]["file"], measured["vs_ground_truth"]["classical_isp"]
    ssim = "–" if truth["ssim"] is None else f"{truth['ssim']:.4f}"
    print(
        f"{target}: {side['settings']['batch_shape']} -> {side['outputs'][0]['shape']}, "
        f"PSNR vs GT {truth['psnr']:.2f} dB, SSIM {ssim} on {measured['images']} held-out images "
        f"({args.data}; {measured['classical_isp']['label']}: {classical['psnr']:.2f} dB); "
        f"sidecar {sidecar.sidecar_path(target).name}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
