"""Training step time and achieved GFLOP/s at several PyNET widths, next to this machine's fp32 peak.

    .venv/bin/python benchmarks/train_step.py                      # widths 8, 16, 32; XLA on and off
    .venv/bin/python benchmarks/train_step.py --widths 8 --jit on

Times ``pynet_tf.trainer``'s own compiled step (the one ``python -m pynet_tf.train`` runs) for level 0 on a
224x224 packed patch, batch 1, with the reference ``pynet`` loss (MSE + VGG-19 content + SSIM; the VGG
weights are random here, which changes no timing), with PyNET's ``SameConv2D`` gradients (``fast``, what
training uses) and TF's own (``stock``) side by side. Achieved GFLOP/s counts a step as three PyNET forward
passes plus three VGG-19 passes at the output size (target and prediction forward, the prediction's input
gradient; the frozen VGG gets no kernel gradient): at 448x448 VGG-19 up to relu5_4 costs more than PyNET at
width 16 (``pynet_tf.flops``). The peak is printed two ways, both measured in this run: the cores' nominal
rate (cores x clock x 32 fp32 FLOP per cycle for AVX2 with two FMA units) and a large float32 matmul.
For scale: the official PyNET graph took ~64 s per full-width level-0 Adam step here.

Measured here on 2026-11-25 with ``--widths 32 --jit both --gradients both``, while other jobs loaded the two
cores (load average 3-6: the matmul reached 57 GFLOP/s against 89 on an idle machine, so every time is
inflated, the stock rows most, being longest):

    width  XLA  gradients  step GFLOP  first call s  step s  GFLOP/s  % nominal
       32  off      stock      2484.8         194.5  206.16     12.1         8%
       32  off       fast      2484.8         158.3   32.50     76.5        49%
       32   on      stock      2484.8         269.3  118.16     21.0        13%
       32   on       fast      2484.8         180.5   62.91     39.5        25%

A second run, ``--widths 32 --jit off --gradients both``, with one other job on the cores (matmul 38 GFLOP/s):
stock 96.79 s, fast 29.08 s per step (85.5 GFLOP/s counted; first calls 145 s and 96 s).

On an idle machine earlier the same day the stock gradients took 52.2 s without XLA and 42.2 s with it. TF's
``Conv2DBackpropFilter`` was the bulk of a stock step (189 of 345 op-seconds in a traced graph-mode step, then
``Conv2DBackpropInput`` with 106); computed as forward convolutions they take about as long as the forward
pass. With them XLA no longer pays, so both presets train without it.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import time
from pathlib import Path

import pynet_tf  # noqa: F401  (Keras 2 and the quiet console, before TensorFlow loads)

# isort: split
import numpy as np
import tensorflow as tf
import tf_keras as keras

from benchmarks import record
from pynet_tf import trainer
from pynet_tf.distribute import make_strategy
from pynet_tf.flops import TRAIN_STEP_FORWARDS, forward_flops
from pynet_tf.layers import SameConv2D
from pynet_tf.losses import Loss, parse_loss
from pynet_tf.nets.pynet.model import build_pynet
from pynet_tf.vgg import load_vgg_features

FLOP_PER_CYCLE_AVX2_FMA = 32  # 2 FMA units x 8 float32 lanes x (multiply + add)


def nominal_peak_gflops() -> tuple[float, int, float]:
    cores = os.cpu_count() or 1
    mhz = []
    for path in ("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq",):
        if os.path.exists(path):
            mhz.append(int(Path(path).read_text()) / 1000)
    if not mhz:
        mhz = [
            float(line.split(":")[1])
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("cpu MHz")
        ]
    clock = max(mhz) / 1000
    return cores * clock * FLOP_PER_CYCLE_AVX2_FMA, cores, clock


def matmul_gflops(size: int = 4096, repeats: int = 5) -> float:
    a = tf.random.uniform((size, size))
    b = tf.random.uniform((size, size))
    tf.linalg.matmul(a, b).numpy()
    start = time.perf_counter()
    for _ in range(repeats):
        tf.linalg.matmul(a, b).numpy()
    return 2 * size**3 * repeats / (time.perf_counter() - start) / 1e9


VGG_PASSES_PER_STEP = 3
"""Target and prediction forward, and the prediction's input gradient (the frozen VGG gets no kernel gradient)."""


def use_stock_gradients(model: keras.Model) -> None:
    """Make ``model``'s ``SameConv2D`` layers run Keras' own Conv2D op, so TF differentiates it as usual."""
    for layer in model.layers:
        if isinstance(layer, SameConv2D):
            layer.convolution_op = functools.partial(keras.layers.Conv2D.convolution_op, layer)


def time_step(
    width: int, side: int, jit: bool, steps: int, loss_name: str, gradients: str
) -> tuple[float, float, float, float]:
    """(first call seconds, mean step seconds, PyNET forward GFLOP, step GFLOP)."""
    keras.utils.set_random_seed(0)
    strategy = make_strategy("default").strategy
    model = build_pynet(0, base_filters=width)
    if gradients == "stock":
        use_stock_gradients(model)
    weights = parse_loss(loss_name).weights(0)
    vgg = load_vgg_features(allow_random=True) if "vgg" in weights else None
    optimizer = keras.optimizers.Adam(5e-5)
    step = trainer._make_step(model, optimizer, Loss(weights, vgg=vgg), strategy, jit=jit, mixed=False)
    rng = np.random.default_rng(0)
    batch = (rng.random((1, side, side, 4), np.float32), rng.random((1, 2 * side, 2 * side, 3), np.float32))
    data = iter(strategy.experimental_distribute_dataset(tf.data.Dataset.from_tensors(batch).repeat()))
    start = time.perf_counter()
    float(step(next(data))[0])
    first = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(steps):
        float(step(next(data))[0])
    mean = (time.perf_counter() - start) / steps
    pynet = forward_flops(model, (side, side))
    perceptual = forward_flops(vgg.model, (2 * side, 2 * side)) if vgg is not None else 0
    return first, mean, pynet / 1e9, (TRAIN_STEP_FORWARDS * pynet + VGG_PASSES_PER_STEP * perceptual) / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widths", default="8,16,32", help="base widths to time (paper: 32)")
    parser.add_argument("--side", type=int, default=224, help="packed patch side")
    parser.add_argument("--jit", choices=["on", "off", "both"], default="both")
    parser.add_argument("--steps", type=int, default=2, help="timed steps after the first call")
    parser.add_argument(
        "--loss", default="pynet", help="loss preset or terms (pynet: MSE + VGG + SSIM at level 0)"
    )
    parser.add_argument(
        "--gradients",
        choices=["fast", "stock", "both"],
        default="both",
        help="SameConv2D's gradients (what training uses), TF's own, or both side by side",
    )
    args = parser.parse_args()

    peak, cores, clock = nominal_peak_gflops()
    print(
        f"fp32 peak: nominal {peak:.0f} GFLOP/s ({cores} cores x {clock:.2f} GHz x {FLOP_PER_CYCLE_AVX2_FMA}), "
        f"measured 4096^2 matmul {matmul_gflops():.0f} GFLOP/s"
    )
    print(f"level 0, {args.side}x{args.side} packed, batch 1, loss {args.loss}, Adam")
    print(
        f"{'width':>5} {'XLA':>4} {'gradients':>9} {'fwd GFLOP':>10} {'step GFLOP':>10} {'first call s':>13} "
        f"{'step s':>8} {'GFLOP/s':>8} {'% nominal':>9}"
    )
    jits = {"on": [True], "off": [False], "both": [False, True]}[args.jit]
    kinds = ["stock", "fast"] if args.gradients == "both" else [args.gradients]
    for width in (int(w) for w in args.widths.split(",")):
        for jit in jits:
            for kind in kinds:
                first, mean, forward, step = time_step(width, args.side, jit, args.steps, args.loss, kind)
                achieved = step / mean
                print(
                    f"{width:>5} {'on' if jit else 'off':>4} {kind:>9} {forward:>10.1f} {step:>10.1f} "
                    f"{first:>13.1f} {mean:>8.2f} {achieved:>8.1f} {100 * achieved / peak:>8.0f}%",
                    flush=True,
                )


if __name__ == "__main__":
    sys.exit(record.run(main, "train_step"))
