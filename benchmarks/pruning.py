"""Magnitude pruning's effect on trained models' TFLite files, side by side in one run: size, speed, fidelity.

    .venv/bin/python benchmarks/pruning.py --model runs/demo1 --input-shape 128x128
    .venv/bin/python benchmarks/pruning.py --model runs/demo1,runs/mobile --sparsities 0.5,0.8

For each ``--model`` (a run folder or .keras: PyNET or the mobile ISP) and each sparsity, ``pynet_tf.pruning``
prunes a copy one-shot: every prunable kernel's smallest-magnitude weights zeroed at once (``begin_step ==
end_step``, one training-mode forward pass, no weight update), stripped, converted to float32 TFLite at
``--input-shape`` (``export.formats.convert_float32``) and once more with the converter's
``tf.lite.Optimize.EXPERIMENTAL_SPARSITY`` (sparse kernels stored in a compressed format where it can).
Reported per file: the kernels' zeros, size raw and gzip -9 (a zero costs a flatbuffer as much as any
float: it only compresses), latency through LiteRT with XNNPACK (``export_fidelity.time_files``,
``--threads``; interleaved rounds so that load on this shared machine falls on every file alike, the median
of all runs), PSNR against the dense Keras model and ΔPSNR against ground truth on the held-out samples
(``export.fidelity``).

Then the training path: tfmot's cubic ramp from 0 to the sparsity over ``--finetune-steps`` Adam steps
(``--lr``) of a written-out loop (``PruningStep`` before each step, ``end()`` after), distilled towards the
dense model's output (MSE) on crops of the training split; one line each, PSNR against the dense model of
the stripped Keras model (its file has the one-shot file's size and speed: as many zeros in the same dense
kernels).

Measured here on 2026-11-25 (2-core AMD EPYC, AVX2, other jobs on the cores; 13.5 min, most of it tracing
the pruned PyNET level-0 training step twice): runs/demo1 is ``make demo``'s PyNET (quick preset, base width
4, level 0); mobile_quick is ``python -m pynet_tf.train --preset quick --arch mobile`` (width 12, 21.8 dB
validation PSNR), both at 128x128 packed::

    .venv/bin/python benchmarks/pruning.py --model runs/demo1,/tmp/pruning_runs/mobile_quick

    model          variant               zeros     MiB gzip MiB      ms PSNR vs dense ΔPSNR vs GT
    demo1          dense                  0.0%   3.066    2.691  143.32        143.77       +0.00
    demo1          one-shot              50.0%   3.066    1.627  151.54         12.41       +0.95
    demo1          one-shot sparse-enc   50.0%   2.114    1.555  179.80         12.41       +0.95
    demo1          one-shot              80.0%   3.066    0.839  153.14         11.66       +0.54
    demo1          one-shot sparse-enc   80.0%   1.050    0.711  148.07         11.66       +0.54
    mobile_quick   dense                  0.0%   0.531    0.477   13.50        145.00       +0.00
    mobile_quick   one-shot              50.0%   0.531    0.289   13.72         18.13       -3.77
    mobile_quick   one-shot sparse-enc   50.0%   0.361    0.275   13.32         18.13       -3.77
    mobile_quick   one-shot              80.0%   0.531    0.149   13.61         14.20       -6.45
    mobile_quick   one-shot sparse-enc   80.0%   0.171    0.126   13.66         14.20       -6.45
    demo1: 50.0% zeros after 20 fine-tuning steps: 13.10 dB vs dense (one-shot Keras model: 12.41)
    demo1: 80.0% zeros after 20 fine-tuning steps: 11.71 dB vs dense (one-shot Keras model: 11.66)
    mobile_quick: 50.0% zeros after 20 fine-tuning steps: 22.03 dB vs dense (one-shot Keras model: 18.13)
    mobile_quick: 80.0% zeros after 20 fine-tuning steps: 14.24 dB vs dense (one-shot Keras model: 14.20)

The same day, ``--sparsities 0.1,0.25 --finetune-steps 0 --rounds 1``: one-shot PSNR vs dense 36.46 / 19.98
dB (demo1) and 43.39 / 32.52 dB (mobile_quick) at 10% / 25%; gzip 2.524 / 2.206 and 0.448 / 0.392 MiB; the
sparse encoding left both files as they were (3.066 / 0.531 MiB); latency within noise of dense.

What it says:
- Size: zeros do not shrink a float32 flatbuffer; they compress (gzip: 0.60x of dense at 50%, 0.31x at 80%
  for PyNET, 0.61x / 0.31x for the mobile net), and the converter's sparse encoding stores them compactly
  from 50% on (raw 0.69x / 0.34x of dense for PyNET, 0.68x / 0.32x mobile; at 25% it left them dense).
- Speed: none measured. XNNPACK runs the convolutions as dense kernels whatever the zeros: its sparse
  inference (an NCHW rewrite for 1x1-convolution graphs) is off on x86 with AVX (XNNPACK commit cfbed0a,
  its sparse microkernels target SSE only). PyNET's rows differ by this shared machine's noise (143-180 ms,
  no trend with sparsity), the mobile rows by under 2%. An ARM phone is for android_bench to measure.
- Fidelity: one-shot magnitude pruning wrecks both small quick-preset networks well before 50% (PyNET at
  width 4 is 36 dB from itself at 10%, 20 dB at 25%); 20 distillation steps win back 0.7 dB (PyNET 50%) to
  3.9 dB (mobile 50%), and nothing at 80% (0.05 dB). These nets have few weights per output and are far
  from converged: pruning them is a training schedule (``prunable``'s ramp over a real fine-tuning run), not
  an export step, and its fidelity is to be measured on such a run. (The PyNET rows' positive ΔPSNR vs
  ground truth is that model's weakness, 14 dB from ground truth: a changed output is as likely nearer as
  farther.)
"""

from __future__ import annotations

import argparse
import gzip
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pynet_tf  # noqa: F401  (Keras 2 and the quiet console, before TensorFlow loads)

# isort: split
import numpy as np
import tensorflow as tf
import tf_keras as keras

from benchmarks import record
from benchmarks.export_fidelity import time_contents
from export import fidelity
from export.formats import ExportSettings, convert_float32
from export.tflite import converter_for
from pynet_tf import metrics, pruning, runs
from pynet_tf.cli import image_size
from pynet_tf.data.pipeline import PipelineOptions, make_dataset
from pynet_tf.data.sources import parse_source
from pynet_tf.units import MIB


@dataclass
class Row:
    """One TFLite file and what was measured on it."""

    model: str
    variant: str
    zeros: float
    """The fraction of the prunable kernels' weights that are zero."""
    content: bytes
    psnr: float = 0.0
    delta_gt: float = 0.0
    ms: float = 0.0


def one_shot(dense: keras.Model, sparsity: float, raw: tf.Tensor) -> keras.Model:
    """``dense`` with each prunable kernel's smallest weights zeroed, nothing else changed."""
    pruned = pruning.prunable(dense, sparsity=sparsity, begin_step=1, end_step=1, frequency=1)
    pruning.PruningStep(pruned)(0)
    pruned(raw, training=True)  # the wrappers' step 1: the masks are set (nothing is trained)
    return pruning.strip(pruned)


def fine_tuned(dense: keras.Model, sparsity: float, batches: Iterator, steps: int, lr: float) -> keras.Model:
    """``dense`` pruned gradually to ``sparsity`` over ``steps`` Adam steps towards its own outputs."""
    pruned = pruning.prunable(dense, sparsity=sparsity, begin_step=0, end_step=steps, frequency=1)
    optimizer = keras.optimizers.Adam(lr)
    variables = pruned.trainable_variables

    @tf.function
    def train(raw: tf.Tensor) -> tf.Tensor:
        target = dense(raw, training=False)
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(pruned(raw, training=True) - target))
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    step = pruning.PruningStep(pruned)
    for index in range(steps):
        step(index)
        loss = train(next(batches))
    step.end()
    print(f"  fine-tuned to {sparsity:.0%} in {steps} steps: last distillation MSE {float(loss):.3g}")
    return pruning.strip(pruned)


def sparse_format(model: keras.Model, settings: ExportSettings) -> bytes:
    """float32 TFLite with the converter's sparse-weight encoding (``EXPERIMENTAL_SPARSITY``)."""
    converter = converter_for(model, settings.batch_shape)
    converter.optimizations = [tf.lite.Optimize.EXPERIMENTAL_SPARSITY]
    return converter.convert()


def keras_psnr(model: keras.Model, items: list[fidelity.HeldOut]) -> float:
    """Mean PSNR of the Keras ``model`` against the dense model on the held-out crops, as
    ``export.fidelity.measure`` scores a file (outputs clipped to [0, 1], the valid area)."""
    values = []
    for item in items:
        output = np.clip(model(item.packed[None], training=False)[0].numpy(), 0.0, 1.0)
        output = output[: item.reference.shape[0], : item.reference.shape[1]]
        values.append(float(metrics.psnr(tf.constant(output), tf.constant(item.reference))))
    return float(np.mean(values))


def rows_for(name: str, args: argparse.Namespace) -> tuple[list[Row], list[str]]:
    """One model's files (dense; per sparsity one-shot, as plain float32 and sparse-encoded), fidelity
    measured, timing left for the interleaved rounds; and a line per fine-tuned model (its file would be
    the one-shot file's size and speed: the same number of zeros in the same dense kernels)."""
    dense = runs.load_model(name)
    items = fidelity.held_out(dense, args.input_shape, args.data)
    settings = ExportSettings(input_shape=args.input_shape)
    options = PipelineOptions(level=fidelity.model_level(dense), patch=args.patch, batch_size=args.batch_size)
    batches = iter(make_dataset(parse_source(args.data), "train", options).map(lambda raw, target: raw))

    def row(variant: str, zeros: float, content: bytes) -> Row:
        measured = fidelity.measure(content, items)
        return Row(
            name,
            variant,
            zeros,
            content,
            measured["vs_float"]["psnr"],
            measured["vs_ground_truth"]["delta_psnr"],
        )

    rows = [row("dense", pruning.sparsity_report(dense)["sparsity"], convert_float32(dense, settings))]
    tuned = []
    for sparsity in args.sparsities:
        pruned = one_shot(dense, sparsity, tf.constant(items[0].packed[None]))
        zeros = pruning.sparsity_report(pruned)["sparsity"]
        rows.append(row("one-shot", zeros, convert_float32(pruned, settings)))
        rows.append(row("one-shot sparse-enc", zeros, sparse_format(pruned, settings)))
        if args.finetune_steps:
            model = fine_tuned(dense, sparsity, batches, args.finetune_steps, args.lr)
            tuned.append(
                f"{Path(name).name}: {pruning.sparsity_report(model)['sparsity']:.1%} zeros after "
                f"{args.finetune_steps} fine-tuning steps: {keras_psnr(model, items):.2f} dB vs dense "
                f"(one-shot Keras model: {keras_psnr(pruned, items):.2f})"
            )
    return rows, tuned


def table(rows: list[Row]) -> str:
    lines = [
        (
            f"{'model':<14} {'variant':<20} {'zeros':>6} {'MiB':>7} {'gzip MiB':>8} {'ms':>7} "
            f"{'PSNR vs dense':>13} {'ΔPSNR vs GT':>11}"
        )
    ]
    for row in rows:
        psnr = "inf" if row.psnr == float("inf") else f"{row.psnr:.2f}"
        lines.append(
            f"{Path(row.model).name:<14} {row.variant:<20} {row.zeros:>6.1%} "
            f"{len(row.content) / MIB:>7.3f} {len(gzip.compress(row.content, 9)) / MIB:>8.3f} "
            f"{row.ms:>7.2f} {psnr:>13} {row.delta_gt:>+11.2f}"
        )
    return "\n".join(lines)


def sparsities(text: str) -> list[float]:
    """argparse type for ``--sparsities``: fractions in (0, 1)."""
    try:
        values = [float(value) for value in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected fractions such as 0.5,0.8, got {text!r}") from None
    if not all(0.0 < value < 1.0 for value in values):
        raise argparse.ArgumentTypeError(f"each sparsity must be in (0, 1), got {text!r}")
    return values


def step_count(text: str) -> int:
    """argparse type for ``--finetune-steps``: a count, 0 or more."""
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected a number of steps (0 or more), got {text!r}")
    return int(text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="runs/demo1", help="comma-separated runs or .keras files")
    parser.add_argument("--input-shape", type=image_size, default="128x128", help="packed HxW of the files")
    parser.add_argument("--sparsities", type=sparsities, default="0.5,0.8", help="fractions of each kernel")
    parser.add_argument("--finetune-steps", type=step_count, default=20, help="0: one-shot pruning only")
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--patch", type=int, default=64, help="fine-tuning crops, packed pixels (default 64)")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--data", default="samples")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=10, help="timed inferences per file per round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    names = args.model.split(",")
    for name in names:
        try:
            runs.resolve_model_path(name)
        except runs.RunError as error:
            print(f"benchmarks/pruning.py: --model: {error}", file=sys.stderr)
            return 2
    rows, tuned = [], []
    for name in names:
        print(f"{name}: pruning, converting, measuring fidelity", flush=True)
        model_rows, model_tuned = rows_for(name, args)
        rows, tuned = rows + model_rows, tuned + model_tuned
    timed = time_contents([row.content for row in rows], args.threads, args.runs, args.rounds)
    for row, ms in zip(rows, timed):
        row.ms = ms
    height, width = args.input_shape
    print(
        f"\nfloat32 TFLite at {height}x{width} packed, XNNPACK {args.threads} threads, median of "
        f"{args.rounds} x {args.runs} runs; PSNR on {args.data}'s held-out crops"
    )
    print(table(rows))
    print("\n".join(tuned))
    return 0


if __name__ == "__main__":
    sys.exit(record.run(main, "pruning"))
