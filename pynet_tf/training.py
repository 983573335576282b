"""Training a run: the levels in order, coarsest first, each warm-started from the one before it (or the
mobile ISP's one level), resumable, with the run folder written as it goes (``train``). ``pynet_tf.trainer``
trains one level; ``python -m pynet_tf.train`` is the command line.

``TrainConfig.init`` fine-tunes: the first level trained starts from that run's weights of that level (a
trained run, or one ``pynet_tf.import_official`` wrote from the official PyNET's checkpoint), and the
network's width and norms are that run's unless the config asks otherwise, which is refused before anything
trains. Training the same config again continues where it stopped (level, step and optimizer state).
"""

from __future__ import annotations

import json
import logging
import math
import sys
import time
from pathlib import Path

import tensorflow as tf
import tf_keras as keras

from pynet_tf import atomic, health, losses, runs, train_config
from pynet_tf.architectures import architecture, of_model
from pynet_tf.cli import settings_summary
from pynet_tf.data.sources import parse_source
from pynet_tf.distribute import Placement, make_strategy
from pynet_tf.runs import RunDir
from pynet_tf.shapes import InputShapeError, nearest_valid_size
from pynet_tf.train_config import ConfigError, TrainConfig
from pynet_tf.trainer import (
    checkpoint_to_resume,
    export_level,
    stop_requests,
    train_level,
)
from pynet_tf.vgg import load_vgg_features

log = logging.getLogger("pynet_tf.train")

# Fields that shape the network: a run folder cannot continue under different values.
_MODEL_FIELDS = ("arch", "base_filters", "instance_norm", "instance_norm_level_1", "prune")


def train(config: TrainConfig) -> Path:
    """Run ``config`` to completion (or resume it); returns the folder of the finest level trained."""
    atomic.check_output(config.out)
    placement = make_strategy(config.strategy)
    keras.utils.set_random_seed(config.seed)
    run = RunDir(config.out)
    _check_resumable(run, config, placement)
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
            resumes = checkpoint_to_resume(run, level, placement) is not None
            if not resumes and placement.is_chief:
                atomic.write_json(run.started(level), config.level_settings(level))
            if from_init:  # RUN's weights of this level, unless the level resumes from its own checkpoints
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


def _check_resumable(run: RunDir, config: TrainConfig, placement: Placement) -> None:
    """``ConfigError`` unless ``config`` may continue the run in ``--out``: the same network as its levels, and
    every level stopped part-way resumed under the settings it started with (else its record would claim
    steps it did not take, with a loss or batch it did not use)."""
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
    for level in config.levels:
        checkpoint = checkpoint_to_resume(run, level, placement)
        if checkpoint is None or run.completed(level):
            continue
        started = _started_settings(run, level, before)
        now = json.loads(json.dumps(config.level_settings(level)))
        changed = [
            f"{name} {started[name]!r} (now {now[name]!r})" for name in now if started.get(name) != now[name]
        ]
        if changed:
            step = checkpoint.rsplit("-", 1)[-1]
            raise ConfigError(
                f"--out {run.root}: level {level} stopped at step {step}; it started with {', '.join(changed)}; "
                f"give the same flags to resume it, or delete {run.level_dir(level)} (or use another --out) "
                "to train the level afresh"
            )


def _started_settings(run: RunDir, level: int, before: dict) -> dict:
    """The settings level ``level`` started with: its ``started.json``, or for runs from before it was
    written, those of the invocation recorded in ``config.json``."""
    if run.started(level).is_file():
        return json.loads(run.started(level).read_text())
    return TrainConfig.from_json(before).level_settings(level)


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
