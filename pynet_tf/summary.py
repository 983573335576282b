"""PyNET's pyramid at a glance: per level, the RGB output size and the trainable parameters.

    python -m pynet_tf.summary --base-filters 32 --input 224x224

Builds the six-output model once and measures each level's sub-network in it, so the figures are those of
the models that training and export will build (level L's model is exactly that sub-network).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass

import numpy as np
import tf_keras as keras

from pynet_tf.cli import image_size
from pynet_tf.nets.pynet.levels import LEVELS, output_size, validate_input_shape
from pynet_tf.nets.pynet.model import build_pynet
from pynet_tf.shapes import InputShapeError


@dataclass(frozen=True)
class LevelRow:
    level: int
    output_hw: tuple[int, int]
    params: int


def trainable_params(model: keras.Model) -> int:
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


def pyramid_rows(base_filters: int, height: int, width: int) -> tuple[list[LevelRow], int]:
    """One row per level (coarsest first) and the parameter count of the whole six-output model."""
    full = build_pynet(0, base_filters=base_filters, input_shape=(height, width, 4), all_outputs=True)
    rows = []
    for level in LEVELS:
        level_model = keras.Model(full.input, full.get_layer(f"level_{level}").output)
        rows.append(LevelRow(level, output_size(level, height, width), trainable_params(level_model)))
    return rows, trainable_params(full)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pynet_tf.summary", description=__doc__.splitlines()[0])
    parser.add_argument("--base-filters", type=int, default=32, help="width of level 1 (paper: 32)")
    parser.add_argument("--input", type=image_size, default=(224, 224), help="packed Bayer size HxW")
    args = parser.parse_args(argv)
    if args.base_filters < 1:
        parser.error(f"--base-filters must be a positive integer, got {args.base_filters}")
    try:
        validate_input_shape(*args.input)
    except InputShapeError as error:
        parser.error(f"--input: {error}")

    height, width = args.input
    rows, total = pyramid_rows(args.base_filters, height, width)
    print(f"PyNET, base_filters={args.base_filters}, packed input {height}x{width}x4")
    print(f"{'level':>5}  {'RGB output':>11}  {'parameters':>12}")
    for row in rows:
        print(f"{row.level:>5}  {row.output_hw[0]:>5}x{row.output_hw[1]:<5}  {row.params:>12,}")
    print(f"all six outputs: {total:,} trainable parameters")
    return 0


if __name__ == "__main__":
    sys.exit(main())
