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
import json
import logging
import math
import re
import sys
import time
import warnings
from pathlib import Path

import tensorflow as tf
import tf_keras as keras

from pynet_tf import atomic, health, losses, mobile, runs, train_config
from pynet_tf.architectures import ARCHITECTURES, architecture, of_model, size_rules
from pynet_tf.cli import command_parser, settings_summary
from pynet_tf.data.sources import DataSourceError, parse_source
from pynet_tf.distribute import StrategyError, make_strategy
from pynet_tf.model import INITIALIZATIONS
from pynet_tf.runs import RunDir
from pynet_tf.shapes import InputShapeError, nearest_valid_size
from pynet_tf.train_config import ConfigError, TrainConfig
from pynet_tf.trainer import (
    TrainingDivergedError,
    TrainingInterrupted,
    checkpoint_to_resume,
    export_level,
    stop_requests,
    train_level,
)
from pynet_tf.vgg import VggWeightsError, load_vgg_features

log = logging.getLogger("pynet_tf.train")

# Fields that shape the network: a run folder cannot continue under different values.
_MODEL_FIELDS = ("arch", "base_filters", "instance_norm", "instance_norm_level_1", "prune")


def train(config: TrainConfig) -> Path:
    """Run ``config`` to completion (or resume it); returns the folder of the finest level trained."""
    placement = make_strategy(config.strategy)
    keras.utils.set_random_seed(config.seed)
    run = RunDir(config.out)
    _check_resumable(run, config)
    init = None if config.init_from is None else train_config.check_init(config)
    initial = None if init is None else init.provenance(config.levels[0])  # what level.json records as "init"
    source = parse_source(config.data)
    teacher = _teacher(config)
    with placement.strategy.scope():
        vgg = _vgg(config)
    record = {
        "config": config.to_json(),
        "vgg": getattr(vgg, "source", None),
        "teacher": None if teacher is None else str(runs.resolve_model_path(config.teacher)),
        "init": initial,
        "warnings": _warnings(config, vgg),
        "strategy": placement.name,
        "replicas": placement.replicas,
        "tensorflow": tf.__version__,
    }
    print(_summary(config, record))
    for warning in record["warnings"]:
        print(f"warning: {warning}", file=sys.stderr)
    if placement.is_chief:
        atomic.write_json(run.config, record)

    previous: keras.Model | None = None  # the model the next level warm-starts from
    with stop_requests() as stop_requested:
        for level in config.levels:
            if run.completed(level):
                print(f"level {level}: already trained ({run.level_record(level)}), skipping")
                previous = None  # loaded only if a level after it still needs training
                continue
            from_init = init is not None and level == config.levels[0]
            if from_init:  # RUN's weights of this level, unless the level resumes from its own checkpoints
                resumes = checkpoint_to_resume(run, level, placement) is not None
                previous = None if resumes else runs.load_model(RunDir(init.path).level_dir(level))
                previous_psnr = _init_psnr(init, level, config)
            else:
                if previous is None:
                    previous = _completed_model(run, level + 1)
                previous_psnr = _validation_psnr(run, level + 1) if previous is not None else None
                if previous is None and level + 1 in architecture(config.arch).levels:
                    log.warning(
                        "level %d starts from random weights: level %d is not trained in %s",
                        level,
                        level + 1,
                        run.root,
                    )
            started = time.time()
            result = train_level(
                config,
                level,
                placement,
                run,
                source,
                vgg,
                previous,
                stop_requested,
                teacher,
                previous_psnr,
                from_init=from_init,
            )
            if placement.is_chief:
                export_level(
                    result.model,
                    config,
                    level,
                    run,
                    {
                        "level": level,
                        "arch": config.arch,
                        "base_filters": config.base_filters,
                        "instance_norm": config.instance_norm,
                        "instance_norm_level_1": config.instance_norm_level_1,
                        **({"init": initial} if initial is not None else {}),
                        "steps": result.steps,
                        "batch_size": config.schedule[level].batch_size,
                        "patch": config.patch_at(level),
                        "loss": losses.parse_loss(config.loss).weights(level),
                        "validation": result.validation,
                        "problem": result.problem,
                        "seconds": round(time.time() - started, 1),
                        "config": config.to_json(),
                    },
                )
                if result.problem is not None:
                    raise health.TrainingCollapsedError(
                        f"level {level} is not a working ISP ({result.problem}). It is kept in "
                        f"{run.level_dir(level)} for inspection; 'final' still points to the last working level. "
                        f"Lower --lr (now {config.lr:g}) or check --data, then delete {run.level_dir(level)} "
                        "(or use another --out) to train the level again"
                    )
                atomic.point_link(run.final, run.level_dir(level).name)
                print(
                    f"level {level}: done, validation {_scores(result.validation)} -> {run.level_dir(level)}"
                )
            previous = result.model
    return run.level_dir(config.levels[-1])


def _check_resumable(run: RunDir, config: TrainConfig) -> None:
    if not run.config.is_file():
        return
    before = json.loads(run.config.read_text())["config"]
    for name in _MODEL_FIELDS:
        earlier = before.get(
            name, getattr(TrainConfig, name)
        )  # runs from before a field existed: its default
        if earlier != getattr(config, name):
            raise ConfigError(
                f"--out {run.root} holds a run with {name}={earlier}, not {getattr(config, name)}: "
                "use the same value to continue it, or another --out for a new run"
            )


def _teacher(config: TrainConfig) -> keras.Model | None:
    """The ``--teacher`` model, checked to compute every level this run trains (its output size says which)
    and to take ``--patch`` crops (its network's input rule: else the first step fails when traced)."""
    if config.teacher is None:
        return None
    teacher = runs.load_model(config.teacher)
    level = runs.model_level(teacher)
    if any(trained != level for trained in config.levels):
        raise ConfigError(
            f"--teacher {config.teacher} computes level {level}, but this run trains levels "
            f"{list(config.levels)}: distil one level at a time (--levels {level})"
        )
    network = of_model(config.teacher, teacher)
    patch = config.patch_at(level)
    try:
        network.validate_input_shape(patch, patch)
    except InputShapeError:
        step = math.lcm(network.downsampling, architecture(config.arch).downsampling)  # both networks take it
        fit = nearest_valid_size(patch, step)
        raise ConfigError(
            f"--patch {patch} does not fit --teacher {config.teacher}, a {network.name} model (packed "
            f"sizes multiples of {network.downsampling}): use --patch {fit} or a {config.arch} teacher"
        ) from None
    teacher.trainable = False
    return teacher


def _vgg(config: TrainConfig):
    if not losses.parse_loss(config.loss).uses_vgg:
        return None
    return load_vgg_features(config.vgg_layer, config.vgg_weights, allow_random=config.allow_random_vgg)


def _summary(config: TrainConfig, record: dict) -> str:
    """The run's settings for the console (``config.json`` holds them all): the schedule of the levels this
    run trains, as steps x batch @ crop side."""
    schedule = {
        level: f"{config.schedule[level].steps}x{config.schedule[level].batch_size}@{config.patch_at(level)}"
        for level in config.levels
    }
    settings = {key: value for key, value in record["config"].items() if key != "schedule"}
    settings["schedule (steps x batch @ crop)"] = schedule
    extras = {
        key: value for key, value in record.items() if key not in ("config", "warnings") and value is not None
    }
    if "init" in extras:  # the record's init is the run started from; the config's, the kernel initialisation
        extras["started from"] = extras.pop("init")
    return settings_summary("train", settings | extras)


def _warnings(config: TrainConfig, vgg) -> list[str]:
    found = []
    if vgg is not None and getattr(vgg, "source", None) == "random":
        found.append(
            "VGG-19 has RANDOM weights (--allow-random-vgg): the vgg term is meaningless; smoke tests only"
        )
    return found


def _completed_model(run: RunDir, level: int) -> keras.Model | None:
    """The run's trained model of ``level``, if it has one (the coarsest level has none below it)."""
    return runs.load_model(run.level_dir(level)) if run.completed(level) else None


def _validation_psnr(run: RunDir, level: int) -> float | None:
    """The final validation PSNR of a trained level (what the next level's collapse guard compares with)."""
    return runs.level_record(run.level_dir(level)).get("validation", {}).get("psnr")


def _init_psnr(init: train_config.InitRun, level: int, config: TrainConfig) -> float | None:
    """The ``--init`` level's final validation PSNR, what the collapse guard compares with when it was scored
    on the same ``--data``; None otherwise (an imported level, or other data: its PSNR says nothing here)."""
    record = init.records[level]
    same_data = record.get("config", {}).get("data") == config.data
    return (record.get("validation") or {}).get("psnr") if same_data else None


def _scores(scores: dict) -> str:
    return ", ".join(f"{name} {value:.4f}" for name, value in scores.items() if value is not None)


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser("pynet_tf.train", __doc__)
    add_training_arguments(parser)
    return parser


def add_training_arguments(parser: argparse.ArgumentParser, skip: tuple[str, ...] = ()) -> None:
    """The training flags (all but those in ``skip``), shared with ``pynet_tf.study``. Defaults are None: an
    unset flag keeps the preset's value (``train_config.resolve``)."""
    flags: list[tuple[str, dict]] = [
        ("--data", {"default": "samples", "help": "samples (default) | zrr:DIR | pairs:DIR | photos:DIR"}),
        ("--levels", {"type": _levels, "help": "a range such as 5-0 (default) or one level"}),
        (
            "--preset",
            {
                "default": "reference",
                "choices": list(train_config.PRESETS),
                "help": "reference: the paper's schedule; quick: minutes on a CPU; cpu: an hour on a "
                "CPU (default: reference)",
            },
        ),
        (
            "--arch",
            {
                "choices": list(ARCHITECTURES),
                "help": "network: pynet (default) | mobile (pynet_tf/mobile.py)",
            },
        ),
        (
            "--base-filters",
            {
                "type": int,
                "help": "width: PyNET's level 1 (paper: 32); the mobile ISP's full "
                f"resolution (default {mobile.DEFAULT_WIDTH})",
            },
        ),
        (
            "--kernel-init",
            {
                "dest": "init",
                "choices": list(INITIALIZATIONS),
                "help": "PyNET's kernel initialisation: reference (std 0.01, the paper's) or he "
                "(scaled to each layer's fan-in)",
            },
        ),
        (
            "--instance-norm",
            {
                "action": argparse.BooleanOptionalAction,
                "default": None,
                "help": "PyNET's instance norms in levels 2-5 (the paper's; off in the quick preset)",
            },
        ),
        (
            "--instance-norm-level-1",
            {
                "action": argparse.BooleanOptionalAction,
                "default": None,
                "help": "instance norms in level 1's 9x9 blocks too (an option of the "
                "official code; off by default)",
            },
        ),
        (
            "--init",
            {
                "dest": "init_from",
                "metavar": "RUN",
                "help": "fine-tune: the first level trained starts from RUN's weights of that level (a run "
                "of the same network, e.g. one pynet_tf.import_official wrote); width and norms "
                "default to RUN's",
            },
        ),
        (
            "--loss",
            {
                "help": f"a preset ({', '.join(losses.PRESETS)}) or term=weight,... ({', '.join(losses.TERMS)})"
            },
        ),
        (
            "--lab-alpha",
            {"type": float, "help": f"weight of MS-SSIM in the LAB loss (default {losses.LAB_ALPHA})"},
        ),
        (
            "--vgg-weights",
            {"help": "VGG-19 weights: Keras' *_notop.h5 or MatConvNet's imagenet-vgg-verydeep-19.mat"},
        ),
        ("--vgg-layer", {"help": "VGG-19 layer of the content loss (default relu5_4)"}),
        (
            "--allow-random-vgg",
            {"action": "store_true", "default": None, "help": "random VGG weights (smoke tests only)"},
        ),
        (
            "--batch-size",
            {"type": int, "help": "global batch size at every level (default: the preset's per level)"},
        ),
        ("--steps", {"type": int, "help": "steps at every level (default: the preset's per level)"}),
        (
            "--patch",
            {
                "type": int,
                "help": f"packed training crop side at every level (default: the preset's per "
                f"level), {size_rules()} as --arch and --teacher's network are",
            },
        ),
        ("--lr", {"type": float, "help": "Adam learning rate"}),
        (
            "--lr-schedule",
            {
                "choices": train_config.LR_SCHEDULES,
                "help": "constant (reference) or cosine: decayed to 0 over each level's steps",
            },
        ),
        (
            "--new-layers-first",
            {
                "type": float,
                "help": "share of each level's steps in which only its new layers "
                "learn (0: none, the reference's; quick: 0.25)",
            },
        ),
        ("--out", {"help": "run folder (default runs/PRESET); an existing run is continued"}),
        ("--strategy", {"choices": train_config.STRATEGIES, "help": "tf.distribute strategy (default auto)"}),
        ("--mixed-precision", {"action": "store_true", "default": None, "help": "float16 compute (GPUs)"}),
        (
            "--jit",
            {
                "action": argparse.BooleanOptionalAction,
                "default": None,
                "help": "XLA-compile the training step",
            },
        ),
        ("--seed", {"type": int}),
        ("--checkpoint-every", {"type": int, "help": "steps between checkpoints"}),
        ("--validate-every", {"type": int, "help": "steps between validations"}),
        (
            "--teacher",
            {
                "help": "distillation: a trained model (run, level folder, .keras) of the level trained, "
                "whose outputs the loss also fits"
            },
        ),
        ("--teacher-weight", {"type": float, "help": "weight of the teacher term (default 1)"}),
        (
            "--prune",
            {
                "type": float,
                "help": "magnitude pruning (tfmot) to this sparsity per kernel, e.g. 0.5: "
                "ramped over 80%% of each level's steps, stripped before saving",
            },
        ),
    ]
    for flag, options in flags:
        if flag not in skip:
            parser.add_argument(flag, **options)


def _levels(text: str) -> tuple[int, ...]:
    try:
        return train_config.parse_levels(text)
    except ConfigError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def main(argv: list[str] | None = None) -> int:
    args = vars(build_parser().parse_args(argv))
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    warnings.filterwarnings("ignore", module="tf_keras")
    try:
        config = train_config.resolve(args.pop("preset"), **args)
        final = train(config)
    except TrainingInterrupted as stop:
        print(stop, file=sys.stderr)
        return 130
    except tf.errors.InvalidArgumentError as error:  # raised inside tf.data, where examples are read
        bad_example = re.search(r"BadExampleError: ([^\n]*)", str(error))
        if bad_example is None:
            raise
        print(f"error: {bad_example.group(1)}", file=sys.stderr)
        return 2
    except (
        ConfigError,
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
