"""Accuracy per delegate through the on-device path, end to end against the fake phone, next to the host's.

    .venv/bin/python benchmarks/device_accuracy.py                                   # runs/d5_mobile, 128x128
    .venv/bin/python benchmarks/device_accuracy.py --model runs/cpu --formats float32,int8

Exports a trained model (float32, fp16, int8 by default, each with its sidecar's host fidelity), then runs
``python -m android_bench.run`` against tests/fakes (a fake adb whose "phone" is a temporary folder, and a
fake ``benchmark_model`` that reads the pushed input tensor files and dumps the outputs as the real tool does,
running the file with LiteRT: built-in kernels for cpu, XNNPACK for xnnpack). One line per (file, delegate):
PSNR vs the float model and vs the ground truth, on the host (the sidecar) and "on the device" (the
row's ``device_accuracy``), and the classical ISP's PSNR on the same held-out inputs. No phone is here: the
device figures are the fake's LiteRT kernels, the mechanics (tensor files, dumps, scoring) are the real path's.

Measured (2-core Intel Xeon, 2026-12-06, defaults: the mobile ISP of ``runs/d5_mobile``, width 12, a working
ISP: 24.9 dB on its validation crops, its output looked at beside the target and the classical ISP), PSNR
in dB on the 2 held-out sample images::

    file                          delegate  vs float host  device  vs GT host  device  classical ISP
    ..._128x128_float32.tflite    cpu              145.61  146.68       24.68   24.68          27.10
    ..._128x128_float32.tflite    xnnpack          145.61  145.61       24.68   24.68          27.10
    ..._128x128_fp16.tflite       cpu               82.59   82.59       24.68   24.68          27.10
    ..._128x128_fp16.tflite       xnnpack           82.59   82.59       24.68   24.68          27.10
    ..._128x128_int8.tflite       cpu               43.35   43.36       24.63   24.62          27.10
    ..._128x128_int8.tflite       xnnpack           43.35   43.35       24.63   24.63          27.10

The xnnpack rows reproduce the sidecar to the printed digit (the same kernels on the same bytes); the
built-in kernels (cpu) differ by rounding only for this network (no norms). The classical ISP's 27.10 dB is
its oracle variant (the synthetic RAW's own white balance and colour matrix), which the model cannot see.
A PyNET int8 file is where kernels part: the test suite measures a level-5 PyNET int8 file at 15.76 dB vs
float through XNNPACK and 9.94 dB through the built-in kernels.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import pynet_tf  # noqa: F401  (Keras 2 and the quiet console, before TensorFlow loads)

# isort: split
from android_bench import run
from benchmarks import record
from export.pipeline import export_model
from pynet_tf.cli import image_size

FAKES = Path(__file__).resolve().parents[1] / "tests" / "fakes"


def fake_phone(folder: Path) -> None:
    """Put the fake adb first on PATH, its device in ``folder`` (the fakes are Python scripts)."""
    shims, device = folder / "bin", folder / "device"
    shims.mkdir()
    device.mkdir()
    (shims / "python3").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    (shims / "python3").chmod(0o755)
    os.environ["PATH"] = os.pathsep.join([str(shims), str(FAKES), os.environ.get("PATH", "")])
    os.environ["FAKE_ADB_DEVICE_DIR"] = str(device)


def number(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="runs/d5_mobile", help="a trained run or .keras file")
    parser.add_argument(
        "--input-shape", type=image_size, default=(128, 128), help="packed HxW (default 128x128)"
    )
    parser.add_argument("--formats", default="float32,fp16,int8")
    parser.add_argument("--delegates", default="cpu,xnnpack")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        exported = export_model(
            args.model, args.formats.split(","), out=folder / "exported", input_shape=args.input_shape
        )
        failed = [f"{result.format}: {result.message}" for result in exported if result.status != "ok"]
        if failed:
            print("export failed: " + "; ".join(failed), file=sys.stderr)
            return 1
        fake_phone(folder)
        flags = ["--delegates", args.delegates, "--threads", "1", "--runs", "3"]
        results = folder / "results"
        code = run.main(
            [
                "--models",
                str(folder / "exported"),
                *flags,
                "--benchmark-binary",
                str(FAKES / "benchmark_model"),
                "--out",
                str(results),
            ]
        )
        (path,) = results.glob("*.json")
        rows = json.loads(path.read_text())["rows"]
    print(
        f"\n{args.model} at {args.input_shape[0]}x{args.input_shape[1]} packed, held-out inputs of its sidecars"
    )
    print(
        f"{'file':<44} {'delegate':<8} {'vs float host':>13} {'device':>7} {'vs GT host':>10} {'device':>7} {'classical':>9}"
    )
    for row in rows:
        host, device = row["sidecar"]["fidelity"], row["device_accuracy"] or {}
        truth = host["vs_ground_truth"]
        if device.get("status") != "ok":
            print(
                f"{row['model']['name']:<44} {row['delegate']:<8} device accuracy {device.get('status')}: {device.get('error')}"
            )
            continue
        print(
            f"{row['model']['name']:<44} {row['delegate']:<8} {number((host['vs_float'] or {}).get('psnr')):>13} "
            f"{number(device['psnr_vs_float']):>7} {number(truth['file']['psnr']):>10} {number(device['psnr_vs_gt']):>7} "
            f"{number((truth['classical_isp'] or {}).get('psnr')):>9}"
        )
    return code


if __name__ == "__main__":
    sys.exit(record.run(main, "device_accuracy"))
