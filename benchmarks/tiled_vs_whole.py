"""How close is tiled PyNET output to whole-image output? PSNR of tiled vs whole, on real content.

    python benchmarks/tiled_vs_whole.py --guards 0,8,24       # ~15 minutes on 2 CPU cores
    python benchmarks/tiled_vs_whole.py --fit-steps 0 --tiles 64,128 --overlaps 0,32

PyNET normalises features per tile (instance norm in levels 2-5), so tiles see different statistics than
the whole image; its receptive field also spans more than any overlap. This measures the effect on real
content: the KDC camera RAW (256 x 384 packed) and three embedded photos unprocessed into RAW (Brooks et
al., seeded, no noise; the largest, retina, is 705 x 705 packed), through a PyNET level 0 of
``--base-filters`` (4) with weights that make the output depend on the content (the reference init, std
0.01, gives a nearly constant image whatever the tiling):

  fitted      the reference init, then ``--fit-steps`` Adam steps (lr 1e-3, MSE) on 64 x 64 packed crops of
              the embedded training photos (the project's tf.data pipeline, level 0): a smooth, ISP-like map,
              the representative case
  random      He-style random conv weights (std 1.4 / sqrt(fan-in)), biases and instance-norm shifts
              N(0, 0.02), instance-norm scales 1 + N(0, 0.2): a stress case. A deep random network at this
              gain is chaotic (small input changes grow layer by layer), so it is far more sensitive to its
              context than a trained ISP; smaller gains give a nearly constant image instead
  random-no-norm  the same weights in a PyNET built without instance norm: tiling's cost from the receptive
              field and tile-edge padding alone, without the statistics mismatch

For every tile size / overlap it prints the PSNR (dB, peak 1, outputs clipped to [0, 1]) of the tiled
output against the whole-image output, and the largest absolute difference; ``inf`` is bit-identical.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pynet_tf  # noqa: F401  (Keras 2 and the quiet console, before TensorFlow loads)

# isort: split
import numpy as np
import tensorflow as tf
import tf_keras as keras

from benchmarks import record
from pynet_tf.data.rawio import read_raw
from pynet_tf.data.unprocess import unprocess
from pynet_tf.nets.pynet.model import build_pynet, transfer_weights
from pynet_tf.tiling import as_model_function, default_guard, plan_tiles, run_tiled

KDC = Path(__file__).resolve().parents[2] / "shared" / "data" / "third_party" / "RAW_KODAK_DC50.KDC"
PHOTOS = ("motorcycle_left", "hubble_deep_field", "retina")


def images() -> dict[str, np.ndarray]:
    """Packed RAW (h, w, 4) of real content: the KDC file and unprocessed embedded photos."""
    import skimage.data

    from pynet_tf.data.photoio import read_photo

    found = {"kdc": read_raw(KDC).packed()}
    folder = Path(skimage.data.__file__).parent
    for name in PHOTOS:
        photo = read_photo(next(p for p in folder.iterdir() if p.stem == name))
        photo = photo[: photo.shape[0] // 2 * 2, : photo.shape[1] // 2 * 2]
        packed, _, _ = unprocess(photo, seed=tf.constant([7, 0]), noise=False)
        found[name.split("_")[0]] = packed.numpy()
    return found


def perturb(model: keras.Model, seed: int = 0) -> keras.Model:
    rng = np.random.default_rng(seed)
    weights = []
    for weight in model.weights:
        value = weight.numpy()
        if value.ndim == 4:  # conv kernels, (k, k, in, out); transposed convs (k, k, out, in): close enough
            value = rng.normal(0, 1.4 / np.sqrt(np.prod(value.shape[:-1])), value.shape)
        elif "scale" in weight.name:
            value = 1 + rng.normal(0, 0.2, value.shape)
        else:  # biases, instance-norm shifts (larger ones drown the content: a near-constant image)
            value = rng.normal(0, 0.02, value.shape)
        weights.append(value.astype(np.float32))
    model.set_weights(weights)
    return model


def fit(model: keras.Model, steps: int, seed: int = 0) -> tuple[keras.Model, float]:
    from pynet_tf.data.pipeline import PipelineOptions, make_dataset
    from pynet_tf.data.sources import parse_source

    options = PipelineOptions(level=0, patch=64, batch_size=4, seed=seed)
    batches = iter(make_dataset(parse_source("samples"), "train", options))
    optimizer = keras.optimizers.Adam(1e-3)

    @tf.function
    def step(packed, target):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(model(packed, training=True) - target))
        optimizer.apply_gradients(
            zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables)
        )
        return loss

    loss = float("nan")
    for _ in range(steps):
        loss = float(step(*next(batches)))
    return model, loss


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((np.clip(a, 0, 1).astype(np.float64) - np.clip(b, 0, 1)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(1 / mse)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-filters", type=int, default=4)
    parser.add_argument("--fit-steps", type=int, default=300, help="0: skip the fitted model")
    parser.add_argument("--tiles", default="64,128,192,384", help="tile sizes, packed pixels")
    parser.add_argument("--overlaps", default="0,16,32,64", help="overlaps, packed pixels")
    parser.add_argument(
        "--guards", default="", help="also try these guards at the largest overlap (default: o/4)"
    )
    args = parser.parse_args()
    keras.utils.set_random_seed(0)
    tiles = [int(t) for t in args.tiles.split(",")]
    overlaps = [int(o) for o in args.overlaps.split(",")]
    guards = [int(g) for g in args.guards.split(",")] if args.guards else []

    started = time.perf_counter()
    perturbed = perturb(build_pynet(0, base_filters=args.base_filters))
    no_norm = build_pynet(0, base_filters=args.base_filters, instance_norm=False)
    transfer_weights(perturbed, no_norm)
    models = {}
    if args.fit_steps:
        fitted, loss = fit(build_pynet(0, base_filters=args.base_filters), args.fit_steps)
        models["fitted"] = fitted
        print(
            f"fitted: {args.fit_steps} Adam steps, final training MSE {loss:.4f} ({time.perf_counter() - started:.0f} s)"
        )
    models |= {"random": perturbed, "random-no-norm": no_norm}
    data = images()
    print(f"images (packed): {', '.join(f'{k} {v.shape[0]}x{v.shape[1]}' for k, v in data.items())}")
    print(
        f"PyNET level 0, base_filters {args.base_filters}; PSNR of tiled vs whole-image output (dB), max |diff|"
    )

    for model_name, model in models.items():
        function = as_model_function(model)
        print(f"\n{model_name}")
        header = f"{'tile':>5} {'overlap':>7} {'guard':>5}"
        for name, packed in data.items():
            header += f" | {name[:16]:>16} tiles"
        print(header)
        wholes = {name: run_tiled(function, packed, tile=None, scale=2) for name, packed in data.items()}
        contrast = ", ".join(
            f"{name} {np.clip(w, 0, 1).std(axis=(0, 1)).mean():.3f}" for name, w in wholes.items()
        )
        print(f"  (whole-image output, spatial std per channel: {contrast})")
        settings = [(t, o, default_guard(o)) for t in tiles for o in overlaps if t - o >= 16]
        settings += [(tiles[-1], max(overlaps), g) for g in guards if g != default_guard(max(overlaps))]
        for tile, overlap, guard in settings:
            row = f"{tile:>5} {overlap:>7} {guard:>5}"
            for name, packed in data.items():
                tiled = run_tiled(function, packed, tile=tile, overlap=overlap, guard=guard, scale=2)
                count = len(plan_tiles(packed.shape[0], packed.shape[1], tile, overlap))
                difference = np.abs(np.clip(tiled, 0, 1) - np.clip(wholes[name], 0, 1)).max()
                row += f" | {psnr(tiled, wholes[name]):6.1f} dB {difference:.3f} {count:>5}"
            print(row, flush=True)
    print(f"\n{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    sys.exit(record.run(main, "tiled_vs_whole"))
