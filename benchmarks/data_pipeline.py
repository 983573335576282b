"""Is training ever input-bound? The data pipeline's samples/s next to a PyNET training step's, same batch.

    python benchmarks/data_pipeline.py --data samples --level 3 --patch 64 --batch-size 4 --base-filters 8

Measures both in one run on this machine and prints their ratio (target: the pipeline >= 5x faster). The
training step is a compiled Adam step on the level's model with an MSE loss, the cheapest loss PyNET
trains with, so the ratio printed is a lower bound for the richer losses.
"""

from __future__ import annotations

import argparse
import sys
import time

import pynet_tf  # noqa: F401  (Keras 2 and the quiet console, before TensorFlow loads)

# isort: split
import tensorflow as tf
import tf_keras as keras

from benchmarks import record
from pynet_tf.data.pipeline import PipelineOptions, make_dataset
from pynet_tf.data.sources import parse_source
from pynet_tf.nets.pynet.model import build_pynet


def samples_per_second(iterator, batch_size: int, batches: int, step=None) -> float:
    start = time.perf_counter()
    for _ in range(batches):
        batch = next(iterator)
        if step is not None:
            step(*batch)
    return batches * batch_size / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="samples")
    parser.add_argument("--level", type=int, default=3)
    parser.add_argument("--patch", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--base-filters", type=int, default=8)
    parser.add_argument("--batches", type=int, default=20)
    args = parser.parse_args()

    options = PipelineOptions(level=args.level, patch=args.patch, batch_size=args.batch_size, seed=0)
    dataset = make_dataset(parse_source(args.data), "train", options)
    iterator = iter(dataset)
    next(iterator)  # fill the cache and warm the pipeline up
    pipeline_rate = samples_per_second(iterator, args.batch_size, args.batches * 5)

    model = build_pynet(args.level, base_filters=args.base_filters)
    optimizer = keras.optimizers.Adam(5e-5)

    @tf.function
    def step(packed, target):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(model(packed, training=True) - target))
        optimizer.apply_gradients(
            zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables)
        )
        return loss

    constant = next(iterator)
    step(*constant)  # trace
    train_rate = samples_per_second(iter(lambda: constant, None), args.batch_size, args.batches, step)

    print(f"{'what':<40} {'samples/s':>10}")
    print(f"{'data pipeline (' + args.data + ')':<40} {pipeline_rate:>10.1f}")
    print(f"{f'training step (level {args.level}, width {args.base_filters})':<40} {train_rate:>10.1f}")
    ratio = pipeline_rate / train_rate
    print(f"pipeline / training = {ratio:.1f}x ({'ok' if ratio >= 5 else 'BELOW'} the 5x target)")


if __name__ == "__main__":
    sys.exit(record.run(main, "data_pipeline"))
