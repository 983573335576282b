"""Runs trained under one budget (dense, ``--prune``, ``--teacher``), side by side: zeros, size, speed, quality.

    .venv/bin/python -m pynet_tf.train --preset quick --arch mobile --out runs/m_dense
    .venv/bin/python -m pynet_tf.train --preset quick --arch mobile --prune 0.5 --out runs/m_prune50
    .venv/bin/python -m pynet_tf.train --preset quick --arch mobile --teacher runs/quick --out runs/m_distill
    .venv/bin/python benchmarks/training_variants.py --runs runs/m_dense,runs/m_prune50,runs/m_distill

One row per run (the first is the baseline of the Δ column): how it was trained (its level.json: arch, width,
steps, prune, teacher and weight), minutes of training (all levels of a run folder), the fraction of zeros in
its prunable kernels (``pynet_tf.pruning.sparsity_report``), its float32 TFLite file at ``--input-shape``
(size raw and gzip -9: zeros only compress in a dense flatbuffer), XNNPACK latency (``--threads``,
``--rounds`` interleaved rounds of ``--timed-runs``, the median), its final validation PSNR, and PSNR / SSIM
of the file against ground truth on the held-out samples (``export.fidelity``), with ΔPSNR from the first run.

Measured here on 2026-11-25 (2-core AMD EPYC; the runs trained one after another with other jobs on the cores,
so minutes are loaded figures): the quick preset with ``--arch mobile`` (540 steps of 8, 64x64 crops), dense;
pruned to 50% during training (``--prune 0.5``); distilled (``--teacher-weight 0.5``) from the quick PyNET
(runs/quick, ``make demo``'s network) and from a mobile ISP trained 3x as long (``--steps 1620``, teacher3x);
at 128x128::

    .venv/bin/python benchmarks/training_variants.py --runs dense,prune50,distill,teacher3x,distill3x,runs/quick

    run          trained                                        min  zeros    MiB gzipMiB      ms val dB PSNR vs GT   SSIM  ΔPSNR
    dense        mobile w12, 540 steps                          3.7   0.0%  0.531   0.477    7.06  21.76      21.30 0.5902  +0.00
    prune50      mobile w12, 540 steps, prune 50%               5.5  50.0%  0.531   0.289    6.80  21.31      20.38 0.6072  -0.92
    distill      mobile w12, 540 steps, teacher quick x0.5     11.1   0.0%  0.531   0.477    6.51  19.39      19.87 0.6652  -1.43
    teacher3x    mobile w12, 1620 steps                        11.4   0.0%  0.531   0.478    6.50  24.26      22.69 0.7718  +1.39
    distill3x    mobile w12, 540 steps, teacher teacher3x x0.5   3.5   0.0%  0.531   0.478    9.13  22.71      21.66 0.7231  +0.36
    quick        pynet w4, 40 steps                            12.0   0.0%  3.066   2.691   72.87  14.47      14.72 0.4628  -6.58

Measured again on 2026-12-05 on a fresh clone (2-core Intel Xeon with AVX-512 VNNI, nothing else running):
demo_mobile and demo are ``make compare``'s quick runs, the others the commands above with the same
flags (``--teacher runs/demo``; teacher3x ``--steps 1620``)::

    .venv/bin/python benchmarks/training_variants.py --runs runs/demo_mobile,runs/v_prune50,runs/v_distill_pynet,\
        runs/v_teacher3x,runs/v_distill3x,runs/demo

    run          trained                                        min  zeros    MiB gzipMiB      ms val dB PSNR vs GT   SSIM  ΔPSNR
    demo_mobile  mobile w12, 540 steps                          0.8   0.0%  0.531   0.478    4.61  22.44      21.77 0.6295  +0.00
    v_prune50    mobile w12, 540 steps, prune 50%               0.9  50.0%  0.531   0.289    4.61  21.15      20.09 0.6055  -1.67
    v_distill_pynet mobile w12, 540 steps, teacher demo x0.5       1.8   0.0%  0.531   0.478    4.62  23.22      23.30 0.6944  +1.54
    v_teacher3x  mobile w12, 1620 steps                         2.3   0.0%  0.531   0.478    4.63  24.11      22.18 0.7787  +0.41
    v_distill3x  mobile w12, 540 steps, teacher v_teacher3x x0.5   1.1   0.0%  0.531   0.478    4.51  22.78      21.66 0.7240  -0.11
    demo         pynet w4, 40 steps                             1.9   0.0%  3.066   2.690   69.22  15.18      13.46 0.3068  -8.31

What the two say together:
- The PSNR effect of distillation does not keep its sign between the two measurements (from the quick PyNET:
  -1.43 then +1.54 dB held out; from teacher3x: +0.36 then -0.11 dB), so on two held-out images and 540 steps
  it is within what a rerun moves. What both show is SSIM against the ground truth rising with either teacher
  (0.59 -> 0.67 / 0.72, 0.63 -> 0.69 / 0.72) and validation PSNR rising from the 3x teacher (+0.95, +0.34 dB).
- Pruned to 50% while training: -0.45 / -1.29 dB validation, -0.92 / -1.67 dB held out; gzip 0.60-0.61x of dense.

Measured on 2026-12-06 with a working teacher (``make demo DEMO=d5``'s quick PyNET, 22.75 dB
against ground truth at 128x128, a photo), idle 2-core Intel Xeon; student and its dense twin 1200 steps of
the quick mobile preset (``--steps 1200``, ``--teacher runs/d5``, weight 1), with ``make compare``'s runs for
reference (d5_mobile's minutes are its resumed second half only)::

    .venv/bin/python benchmarks/training_variants.py --runs runs/v_dense,runs/v_distill,runs/d5_mobile,runs/d5
    run          trained                                        min  zeros    MiB gzipMiB      ms val dB PSNR vs GT   SSIM  ΔPSNR
    v_dense      mobile w12, 1200 steps                         2.6   0.0%  0.531   0.478    4.75  23.97      23.02 0.7619  +0.00
    v_distill    mobile w12, 1200 steps, teacher d5 x1          4.4   0.0%  0.531   0.477    4.78  23.71      23.21 0.7289  +0.19
    d5_mobile    mobile w12, 4800 steps                         4.0   0.0%  0.531   0.478    4.77  24.89      24.68 0.8409  +1.67
    d5           pynet w4, 1200 steps                           8.8   0.0%  2.938   2.652   79.45  22.95      22.75 0.6893  -0.27

A working PyNET teacher no stronger than the student moves it by noise (+0.19 dB held out, -0.26 dB
validation) and pulls its SSIM towards its own (0.76 -> 0.73), for 1.7x the training time: the quick PyNET
is not a teacher for the quick mobile ISP; the mobile ISP trained 4x longer is (+1.67 dB).

What the first said:
- Pruning while training keeps most of the quality that pruning at export loses: 50% zeros cost 0.45 dB of
  validation PSNR and 0.92 dB on the held-out crops (one-shot pruning of the same network: 18.1 dB from its
  dense self, ``benchmarks/pruning.py``), for a gzipped file 0.61x of dense; XNNPACK runs no faster here.
- Distillation is as good as its teacher. From the quick PyNET (14.7 dB against ground truth, far below the
  student) it pulls the student down (-1.4 dB, +0.08 SSIM); from a stronger teacher it lifts it under the same
  540-step budget: +0.95 dB validation, +0.36 dB held out, SSIM 0.59 -> 0.72, at the teacher's cost only once.
  A PyNET teacher pays once it is trained on a real budget (ZRR, the reference schedule), not the quick one.
"""

from __future__ import annotations

import argparse
import gzip
import sys
from dataclasses import dataclass
from pathlib import Path

import pynet_tf  # noqa: F401  (Keras 2 before TensorFlow loads)
from benchmarks import record
from benchmarks.export_fidelity import time_contents
from export import fidelity
from export.formats import ExportSettings, convert_float32
from pynet_tf import pruning, runs
from pynet_tf.cli import image_size
from pynet_tf.units import MIB


@dataclass
class Variant:
    """One trained run's float32 file and what was measured on it."""

    run: str
    trained: str
    seconds: float | None
    validation_psnr: float | None
    zeros: float
    content: bytes
    psnr_gt: float
    ssim_gt: float
    ms: float = 0.0


def training_summary(record: dict) -> str:
    """How the model was trained, from its level.json: e.g. "mobile w12, 540 steps, prune 50%"."""
    config = record.get("config") or {}
    steps = f"{record.get('steps')} steps" + (f" at level {record['level']}" if record.get("level") else "")
    parts = [f"{record.get('arch', 'pynet')} w{record.get('base_filters')}", steps]
    if config.get("prune"):
        parts.append(f"prune {config['prune']:.0%}")
    if config.get("teacher"):
        parts.append(f"teacher {Path(config['teacher']).name} x{config.get('teacher_weight', 1):g}")
    return ", ".join(parts)


def training_seconds(name: str, record: dict) -> float | None:
    """A run folder's training time over all its levels (PyNET trains six); else the one level's."""
    levels = [runs.level_record(folder) for folder in sorted(Path(name).glob("level_*"))]
    if levels and all(level.get("seconds") is not None for level in levels):
        return sum(level["seconds"] for level in levels)
    return record.get("seconds")


def measure_run(name: str, args: argparse.Namespace) -> Variant:
    model = runs.load_model(name)
    record = runs.level_record(name)
    items = fidelity.held_out(model, args.input_shape, args.data)
    content = convert_float32(model, ExportSettings(input_shape=args.input_shape))
    truth = fidelity.measure(content, items)["vs_ground_truth"]["file"]
    return Variant(
        run=name,
        trained=training_summary(record),
        seconds=training_seconds(name, record),
        validation_psnr=(record.get("validation") or {}).get("psnr"),
        zeros=pruning.sparsity_report(model)["sparsity"],
        content=content,
        psnr_gt=truth["psnr"],
        ssim_gt=truth["ssim"],
    )


def table(variants: list[Variant]) -> str:
    base = variants[0].psnr_gt
    lines = [
        (
            f"{'run':<12} {'trained':<44} {'min':>5} {'zeros':>6} {'MiB':>6} {'gzipMiB':>7} {'ms':>7} "
            f"{'val dB':>6} {'PSNR vs GT':>10} {'SSIM':>6} {'ΔPSNR':>6}"
        )
    ]
    for v in variants:
        minutes = "–" if v.seconds is None else f"{v.seconds / 60:.1f}"
        validation = "–" if v.validation_psnr is None else f"{v.validation_psnr:.2f}"
        lines.append(
            f"{Path(v.run).name:<12} {v.trained:<44} {minutes:>5} {v.zeros:>6.1%} "
            f"{len(v.content) / MIB:>6.3f} {len(gzip.compress(v.content, 9)) / MIB:>7.3f} "
            f"{v.ms:>7.2f} {validation:>6} {v.psnr_gt:>10.2f} "
            f"{v.ssim_gt:>6.4f} {v.psnr_gt - base:>+6.2f}"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", required=True, help="comma-separated runs (the first is the baseline)")
    parser.add_argument("--input-shape", type=image_size, default="128x128", help="packed HxW of the files")
    parser.add_argument("--data", default="samples", help="held-out data (default: the embedded samples)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--timed-runs", type=int, default=10, help="inferences per file per round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    variants = [measure_run(name, args) for name in args.runs.split(",") if name]
    timed = time_contents([v.content for v in variants], args.threads, args.timed_runs, args.rounds)
    for variant, ms in zip(variants, timed):
        variant.ms = ms
    print(table(variants))
    return 0


if __name__ == "__main__":
    sys.exit(record.run(main, "training_variants"))
