"""Train PyNET level by level, coarsest first, each level warm-started from the one before it (or the mobile
ISP, which has one level).

    python -m pynet_tf.train --preset quick                      # minutes on a CPU, embedded photos
    python -m pynet_tf.train --preset quick --arch mobile --teacher runs/big   # mobile ISP, distilled
    python -m pynet_tf.train --data zrr:/data/zrr --vgg-weights vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5
    python -m pynet_tf.train --data zrr:/data/zrr --levels 2-0 --loss lab_vgg --strategy mirrored
    python -m pynet_tf.train --init runs/official --levels 0 --loss lab_vgg --data zrr:/data/zrr --out runs/tuned

``--init RUN`` fine-tunes: the first level trained starts from RUN's weights of that level (a trained run, or
one ``pynet_tf.import_official`` wrote from the official PyNET's checkpoint), and the network's width and norms
are RUN's unless a flag asks otherwise, which is refused before anything trains.

Running the same command again continues where it stopped (level, step and optimizer state). Ctrl-C saves a
checkpoint and exits. The run folder's layout is described in ``pynet_tf.runs``.
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
import warnings
from pathlib import Path

import tensorflow as tf

from pynet_tf import atomic, health, losses, runs, train_config
from pynet_tf.cli import command_parser
from pynet_tf.data.sources import DataSourceError
from pynet_tf.distribute import StrategyError
from pynet_tf.train_config import ConfigError, add_training_arguments
from pynet_tf.trainer import TrainingDivergedError, TrainingInterrupted
from pynet_tf.training import train
from pynet_tf.vgg import VggWeightsError


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser("pynet_tf.train", __doc__)
    add_training_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = vars(build_parser().parse_args(argv))
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    warnings.filterwarnings("ignore", module="tf_keras")
    try:
        config = train_config.resolve(args.pop("preset"), **args)
        final = train(config)
    except TrainingInterrupted as stop:
        print(stop, file=sys.stderr)
        return stop.exit_code
    except tf.errors.InvalidArgumentError as error:  # raised inside tf.data, where examples are read
        bad_example = re.search(r"BadExampleError: ([^\n]*)", str(error))
        if bad_example is None:
            raise
        print(f"error: {bad_example.group(1)}", file=sys.stderr)
        return 2
    except (
        ConfigError,
        atomic.OutputError,
        losses.LossSpecError,
        DataSourceError,
        StrategyError,
        VggWeightsError,
        runs.RunError,
        TrainingDivergedError,
        health.TrainingCollapsedError,
    ) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1 if isinstance(error, (TrainingDivergedError, health.TrainingCollapsedError)) else 2
    print(f"trained: {final} (final -> {Path(config.out) / 'final'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
