"""Training one PyNET level: a compiled step under a distribution strategy, checkpoints, validation, logs.

The loop is written out (not ``Model.fit``) because a level must resume at the exact step and optimizer
state after a crash, stop cleanly on Ctrl-C or SIGTERM (a cluster's preemption) with a checkpoint, refuse to
go on after a NaN loss with the last good checkpoint untouched, and log each loss term separately.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import shutil
import signal
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf
import tf_keras as keras
from tqdm import tqdm

from pynet_tf import atomic, health, metrics, pruning
from pynet_tf.architectures import architecture
from pynet_tf.data.pipeline import PipelineOptions, make_dataset
from pynet_tf.data.sources import Source
from pynet_tf.distribute import Placement
from pynet_tf.losses import Loss, parse_loss
from pynet_tf.nets.pynet.levels import output_size
from pynet_tf.nets.pynet.model import shared_layers, transfer_weights
from pynet_tf.runs import RunDir
from pynet_tf.train_config import ConfigError, TrainConfig

log = logging.getLogger(__name__)

LOG_EVERY = 10
"""Steps between the train-loss lines of metrics.jsonl and TensorBoard (means over those steps)."""


class TrainingDivergedError(RuntimeError):
    """The loss became NaN or infinite; nothing after the last good checkpoint was saved."""


class TrainingInterrupted(Exception):
    """Ctrl-C or SIGTERM: the level's state was checkpointed; the same command resumes it."""

    def __init__(self, message: str, signum: int = signal.SIGINT) -> None:
        super().__init__(message)
        self.exit_code = 128 + signum
        """The shell's code for the signal: 130 for Ctrl-C, 143 for SIGTERM."""


@dataclass
class LevelResult:
    model: keras.Model
    validation: dict[str, float | None]
    steps: int
    problem: str | None = None
    """``health.problem`` of the final validation: why the level is not a working ISP, or None."""


class MetricsLog:
    """metrics.jsonl (appended, one flushed line per event) plus TensorBoard scalars; chief only."""

    def __init__(self, run: RunDir, level: int, enabled: bool) -> None:
        self.enabled = enabled
        if enabled:
            run.root.mkdir(parents=True, exist_ok=True)
            self.file = run.metrics_log.open("a", encoding="utf-8")
            self.writer = tf.summary.create_file_writer(str(run.tensorboard(level)))
        self.level = level

    def write(self, kind: str, step: int, values: dict[str, float | None]) -> None:
        if not self.enabled:
            return
        self._append(kind, step, values)
        with self.writer.as_default(step=step):
            for name, value in values.items():
                if value is not None:
                    tf.summary.scalar(f"{kind}/{name}", value)

    def note(self, kind: str, step: int, text: str) -> None:
        """A line of text in metrics.jsonl (TensorBoard gets only the numbers)."""
        if self.enabled:
            self._append(kind, step, {"text": text})

    def _append(self, kind: str, step: int, values: dict) -> None:
        record = {"time": round(time.time(), 3), "level": self.level, "step": step, "kind": kind, **values}
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()

    def close(self) -> None:
        if self.enabled:
            self.file.close()
            self.writer.close()


@contextmanager
def stop_requests() -> Iterator[Callable[[], bool]]:
    """While inside, the first Ctrl-C / SIGTERM only asks the loop to stop after the current step; a second
    Ctrl-C interrupts at once. Yields a function that returns the signal that asked for a stop, 0 if none."""
    asked: list[int] = []

    def handler(signum, frame):
        if asked and signum == signal.SIGINT:
            raise KeyboardInterrupt
        asked.append(signum)
        print(f"\n{signal.Signals(signum).name}: saving a checkpoint after this step (Ctrl-C again to abort)")

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield lambda: asked[0] if asked else 0
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def train_level(
    config: TrainConfig,
    level: int,
    placement: Placement,
    run: RunDir,
    source: Source,
    vgg: Callable[[tf.Tensor], tf.Tensor] | None,
    warm_start: keras.Model | None,
    stop_requested: Callable[[], int],
    teacher: keras.Model | None = None,
    warm_start_psnr: float | None = None,
    from_init: bool = False,
) -> LevelResult:
    """Train ``level`` to its scheduled steps, resuming from its checkpoints if there are any; with a
    ``teacher`` (a trained model of the same level), the loss also fits its outputs (``config.teacher_weight``).

    ``warm_start`` is the coarser level this one grows from (its layers held for ``config.new_layers_first``
    of the steps), or with ``from_init`` this level's own trained weights (``--init RUN``): every layer is
    copied, checked to be, and none is held, as nothing is new.

    Every validation is checked by ``health.problem`` against ``warm_start_psnr`` (the final validation PSNR
    of the level it grew from): a flat or collapsed output is logged once and noted in metrics.jsonl; the
    final validation's verdict is the result's ``problem``."""
    schedule = config.schedule[level]
    strategy = placement.strategy
    resuming = checkpoint_to_resume(run, level, placement)
    with _precision(config.mixed_precision), strategy.scope():
        model = build_network(config, level)
        if warm_start is not None and not resuming:  # by layer name: before pruning wraps (and renames) them
            log.info("level %d: %s", level, _transfer(warm_start, model, config if from_init else None))
        held = set() if from_init else _grown_from(warm_start, model)
        if config.prune is not None:
            model = pruning.prunable(model, sparsity=config.prune, **prune_schedule(schedule.steps))
        # a hold needs layers to learn meanwhile: with none new, its steps would never count (nothing applied)
        new = any(v.ref() not in held for v in model.trainable_variables)
        hold_until = int(config.new_layers_first * schedule.steps) if held and new else 0
        frozen = [v for v in model.trainable_variables if v.ref() in held] if hold_until else []
        optimizer = _adam(config, schedule.steps)
        optimizer.build(
            [v for v in model.trainable_variables if v.ref() not in held]
            if frozen
            else model.trainable_variables
        )
        # The grown-from layers get an Adam of their own that starts counting when they are released: with one
        # Adam, their moments would start from zero at step hold_until while its bias correction assumes
        # hold_until steps of history, so their first hundreds of updates would be up to 6.5x the rate (a
        # width-8 level 4 collapsed to 5.5 dB at the release; docs/design.md, note 9 of 'Why the quick PyNET
        # was a flat grey image').
        released = _adam(config, schedule.steps, offset=hold_until) if frozen else None
        if released is not None:
            released.build(frozen)
    checkpoint = tf.train.Checkpoint(
        model=model, optimizer=optimizer, **({"released": released} if released else {})
    )
    manager = tf.train.CheckpointManager(
        checkpoint,
        str(_checkpoint_dir(run, level, placement)),
        max_to_keep=2,
        step_counter=optimizer.iterations,
    )
    if manager.latest_checkpoint:
        checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
        log.info(
            "level %d: resumed from %s at step %d",
            level,
            manager.latest_checkpoint,
            int(optimizer.iterations.numpy()),
        )
    start = int(optimizer.iterations.numpy())
    pruning_step = pruning.PruningStep(model) if config.prune is not None else None

    loss = Loss(parse_loss(config.loss).weights(level), vgg=vgg, lab_alpha=config.lab_alpha)
    if hold_until > start:
        log.info(
            "level %d: only the layers new at this level learn for its first %d steps", level, hold_until
        )
    make_step = functools.partial(
        _make_step,
        model,
        optimizer,
        loss,
        strategy,
        config.jit,
        config.mixed_precision,
        teacher=teacher,
        teacher_weight=config.teacher_weight,
    )
    holding = make_step(frozen=frozen) if hold_until > start else None
    training = make_step(frozen=frozen, released=released)
    batches = iter(
        strategy.experimental_distribute_dataset(_train_data(config, level, source, placement, start))
    )
    validation = _Validation(config, level, source, model)
    metrics_log = MetricsLog(run, level, placement.is_chief)
    scores: dict[str, float | None] = {}
    problem: str | None = None  # health.problem of the latest validation
    sums: dict[str, float] = {}
    progress = tqdm(
        total=schedule.steps,
        initial=start,
        desc=f"level {level}",
        unit="step",
        disable=not placement.is_chief,
        dynamic_ncols=True,
        mininterval=1.0,
    )
    try:
        step = start
        while step < schedule.steps:
            if pruning_step is not None:
                pruning_step(step)
            total, terms = (holding if step < hold_until else training)(next(batches))
            values = {"loss": float(total), **{name: float(value) for name, value in terms.items()}}
            if not all(math.isfinite(value) for value in values.values()):
                raise TrainingDivergedError(
                    f"level {level}, step {step + 1}: the loss is not finite ({_format(values)}); nothing was "
                    f"saved after {manager.latest_checkpoint or 'the start of the level'}. Lower --lr, or "
                    "check the data (--data) for broken images, then run the same command to resume"
                )
            step = int(optimizer.iterations.numpy())
            for name, value in values.items():
                sums[name] = sums.get(name, 0.0) + value
            sums["_count"] = sums.get("_count", 0.0) + 1
            if step % LOG_EVERY == 0 or step == schedule.steps:
                count = sums.pop("_count")
                metrics_log.write("train", step, {name: value / count for name, value in sums.items()})
                sums = {}
            if step % config.validate_every == 0 or step == schedule.steps:
                scores = validation.score()
                metrics_log.write("validation", step, scores)
                problem = _check_health(level, step, scores, warm_start_psnr, problem, metrics_log)
            if step % config.checkpoint_every == 0 or step == schedule.steps:
                manager.save(checkpoint_number=step)
            progress.update(step - progress.n)
            progress.set_postfix_str(
                _format(values | {f"val_{k}": v for k, v in scores.items()}), refresh=False
            )
            signum = stop_requested()
            if signum and step < schedule.steps:
                manager.save(checkpoint_number=step)
                raise TrainingInterrupted(
                    f"stopped at level {level}, step {step}/{schedule.steps}; checkpoint saved in "
                    f"{run.checkpoints(level)}. Run the same command to continue.",
                    signum if signum in (signal.SIGINT, signal.SIGTERM) else signal.SIGINT,
                )
    finally:
        progress.close()
        metrics_log.close()
        _remove_scratch(run, level, placement)
    if not scores:  # resumed at the last step: score the restored model
        scores = validation.score()
        problem = _check_health(level, schedule.steps, scores, warm_start_psnr, problem, metrics_log=None)
    if pruning_step is not None:
        model = pruning.strip(model)
        log.info(
            "level %d: pruned, %.1f%% of the prunable weights are zero",
            level,
            100 * pruning.sparsity_report(model)["sparsity"],
        )
    return LevelResult(model, scores, schedule.steps, problem)


def checkpoint_to_resume(run: RunDir, level: int, placement: Placement) -> str | None:
    """The latest checkpoint of ``level`` this process resumes from, or None: the level starts afresh."""
    return tf.train.latest_checkpoint(str(_checkpoint_dir(run, level, placement)))


def _transfer(warm_start: keras.Model, model: keras.Model, init: TrainConfig | None):
    """``transfer_weights``; for ``--init`` (``init``: the config) every layer of ``model``, and no other, must
    be there at its shape: a ``ConfigError`` naming ``--init`` otherwise, before any step."""
    try:
        report = transfer_weights(warm_start, model)
    except ValueError as error:
        if init is None:
            raise
        raise ConfigError(f"--init {init.init_from}: {error}") from None
    if init is not None and (report.new or report.dropped):
        raise ConfigError(
            f"--init {init.init_from}: its level has other layers than this run's network (missing: "
            f"{', '.join(report.new) or 'none'}; extra: {', '.join(report.dropped) or 'none'}): --init a run of "
            "the same network (--arch, --base-filters, --instance-norm, --instance-norm-level-1)"
        )
    return report


def _grown_from(warm_start: keras.Model | None, model: keras.Model) -> set:
    """References to ``model``'s variables in the layers a warm start from ``warm_start`` copies, taken before
    pruning wraps the layers (their variables stay)."""
    if warm_start is None:
        return set()
    return {
        v.ref()
        for name in shared_layers(warm_start, model)
        for v in model.get_layer(name).trainable_variables
    }


def _check_health(
    level: int,
    step: int,
    scores: dict[str, float | None],
    warm_start_psnr: float | None,
    before: str | None,
    metrics_log: MetricsLog | None,
) -> str | None:
    """``health.problem`` of ``scores``; one that differs from the previous validation's (``before``) is logged
    in one line (and noted in ``metrics_log``, kind ``health``), as is a recovery from one."""
    found = health.problem(scores, warm_start_psnr)
    if found != before:
        text = f"level {level}, step {step}: " + (f"NOT A WORKING ISP, {found}" if found else "recovered")
        (log.warning if found else log.info)(text)
        if metrics_log is not None:
            metrics_log.note("health", step, found or "recovered")
    return found


def build_network(config: TrainConfig, level: int) -> keras.Model:
    """The run's network at ``level``, as the config describes it (architecture, width, init, norms)."""
    return architecture(config.arch).build(
        level,
        config.base_filters,
        init=config.init,
        instance_norm=config.instance_norm,
        instance_norm_level_1=config.instance_norm_level_1,
    )


def learning_rate(
    config: TrainConfig, steps: int, offset: int = 0
) -> float | keras.optimizers.schedules.LearningRateSchedule:
    """``--lr`` held (``constant``) or decayed to 0 over the level's ``steps`` (``cosine``); a level's optimizer
    counts its own steps, so each level starts again at ``--lr``. An optimizer that starts ``offset`` steps
    into the level follows the level's schedule from there."""
    if config.lr_schedule == "cosine":
        cosine = keras.optimizers.schedules.CosineDecay(config.lr, decay_steps=steps)
        return _Shifted(cosine, offset) if offset else cosine
    return config.lr


class _Shifted(keras.optimizers.schedules.LearningRateSchedule):
    """``schedule`` read ``offset`` steps on: the rate of an optimizer whose step 0 is the level's ``offset``."""

    def __init__(self, schedule: keras.optimizers.schedules.LearningRateSchedule, offset: int) -> None:
        self.schedule, self.offset = schedule, offset

    def __call__(self, step):
        return self.schedule(step + self.offset)

    def get_config(self) -> dict:
        return {"schedule": keras.optimizers.schedules.serialize(self.schedule), "offset": self.offset}


def _adam(config: TrainConfig, steps: int, offset: int = 0) -> keras.optimizers.Optimizer:
    """The level's Adam (loss-scaled under ``--mixed-precision``, which also skips non-finite steps)."""
    optimizer = keras.optimizers.Adam(learning_rate(config, steps, offset))
    if config.mixed_precision:
        optimizer = keras.mixed_precision.LossScaleOptimizer(optimizer)
    return optimizer


PRUNE_UPDATES = 10
"""Mask updates of ``--prune``'s schedule: from 0 at the level's start to the target sparsity at 80% of its
steps (tfmot's gradual pruning), leaving the last fifth to recover at the final sparsity."""


def prune_schedule(steps: int) -> dict[str, int]:
    """``pruning.prunable``'s step arguments for a level of ``steps`` steps."""
    ramp = max(1, int(0.8 * steps))
    frequency = max(1, ramp // PRUNE_UPDATES)
    return {
        "begin_step": 0,
        "end_step": frequency * min(PRUNE_UPDATES, ramp // frequency),
        "frequency": frequency,
    }


@contextmanager
def _precision(mixed: bool) -> Iterator[None]:
    """mixed_float16 while the model is built (float32 weights, float16 compute); then the default policy
    again (None: floatx's), not a fixed float32 one that would override floatx for the rest of the process."""
    if not mixed:
        yield
        return
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(None)


def _make_step(
    model: keras.Model,
    optimizer: keras.optimizers.Optimizer,
    loss: Loss,
    strategy: tf.distribute.Strategy,
    jit: bool,
    mixed: bool,
    teacher: keras.Model | None = None,
    teacher_weight: float = 1.0,
    frozen: list[tf.Variable] | None = None,
    released: keras.optimizers.Optimizer | None = None,
) -> Callable:
    """One optimizer step over a distributed batch -> (mean loss, mean terms) across replicas.

    The forward and backward pass is compiled with XLA under ``jit``; the update stays outside it, where the
    strategy sums the gradients of its replicas. With a ``teacher``, the objective adds ``teacher_weight``
    times the same loss between the teacher's output and the model's (term ``teacher``). ``optimizer``
    updates every trainable variable but those in ``frozen``, which stay exactly as they are, or, given
    ``released``, are updated by that optimizer.
    """
    skipped = {v.ref() for v in frozen or ()}
    own = [v for v in model.trainable_variables if v.ref() not in skipped]
    others = list(frozen or ()) if released is not None else []
    variables = own + others
    replicas = strategy.num_replicas_in_sync

    def gradients(raw: tf.Tensor, target: tf.Tensor):
        with tf.GradientTape() as tape:
            prediction = model(raw, training=True)
            total, terms = loss(target, prediction)
            if teacher is not None:
                taught, _ = loss(tf.stop_gradient(teacher(raw, training=False)), prediction)
                total, terms = total + teacher_weight * taught, {**terms, "teacher": taught}
            # the mean over the global batch: every replica's share, summed by the update
            objective = total / replicas
            if mixed:
                objective = optimizer.get_scaled_loss(objective)
        grads = tape.gradient(objective, variables)
        if mixed:
            grads = optimizer.get_unscaled_gradients(grads)
        return grads, total, terms

    if jit:
        gradients = tf.function(gradients, jit_compile=True)

    def replica_step(raw: tf.Tensor, target: tf.Tensor):
        grads, total, terms = gradients(raw, target)
        optimizer.apply_gradients(zip(grads[: len(own)], own))
        if others:
            released.apply_gradients(zip(grads[len(own) :], others))
        return total, terms

    @tf.function
    def step(batch):
        total, terms = strategy.run(replica_step, args=batch)

        def mean(value):
            return strategy.reduce(tf.distribute.ReduceOp.MEAN, value, axis=None)

        return mean(total), {name: mean(value) for name, value in terms.items()}

    return step


def _train_data(
    config: TrainConfig, level: int, source: Source, placement: Placement, start: int
) -> tf.data.Dataset:
    """The level's training stream. Its random crops follow (seed, level, worker, first step): a resumed level
    draws a fresh but reproducible stream, and workers of a cluster draw different crops."""
    seed = config.seed * 1_000_003 + level * 10_007 + placement.worker_index * 101 + start
    crops = PipelineOptions(
        level=level, patch=config.patch_at(level), batch_size=config.schedule[level].batch_size, seed=seed
    )
    dataset = make_dataset(source, "train", crops)
    options = tf.data.Options()
    # Each worker reads its own seeded stream rather than a shard of one: the sources are in-memory lists,
    # not files to split.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    return dataset.with_options(options)


class _Validation:
    """PSNR, SSIM and MS-SSIM on the same crops of the test split every time (those that fit the output).

    ``validation_batches`` batches of seeded crops drawn across the test images (each image cropped at
    several places, each crop unprocessed with its own camera): one centred crop per image, two crops for
    the embedded samples, made a level's score a coin toss.
    """

    def __init__(self, config: TrainConfig, level: int, source: Source, model: keras.Model) -> None:
        patch = config.patch_at(level)
        options = PipelineOptions(
            level=level,
            patch=patch,
            batch_size=config.schedule[level].batch_size,
            seed=config.seed,
            augment=False,
            training=True,
            skip_bad=True,
        )
        # test images smaller than the patch are left out (with a logged warning) rather than stopping training
        self.batches = list(make_dataset(source, "test", options).take(config.validation_batches))
        if not self.batches:
            raise ConfigError(
                f"no test image of --data {config.data} is large enough for --patch {patch} "
                f"({patch} packed pixels, {2 * patch} photo pixels): use a smaller --patch"
            )
        self.side = min(output_size(level, patch, patch))
        self.predict = tf.function(lambda raw: model(raw, training=False))  # traced once per level

    def score(self) -> dict[str, float | None]:
        predictions = [tf.cast(self.predict(raw), tf.float32) for raw, _ in self.batches]
        targets = [target for _, target in self.batches]
        prediction, target = tf.concat(predictions, 0), tf.concat(targets, 0)
        clipped = tf.clip_by_value(prediction, 0.0, 1.0)  # scored as it would be saved
        fits = self.side >= metrics.SSIM_FILTER_SIZE
        return {
            "psnr": float(np.mean(metrics.psnr(clipped, target))),
            "ssim": float(np.mean(metrics.ssim(clipped, target))) if fits else None,
            "ms_ssim": float(np.mean(metrics.ms_ssim(clipped, target))) if fits else None,
            "contrast": health.contrast(clipped, target),
            "saturated": health.saturation(prediction),
        }


def _checkpoint_dir(run: RunDir, level: int, placement: Placement) -> Path:
    """The chief checkpoints into the run; other workers take part in the save into a scratch folder."""
    if placement.is_chief:
        return run.checkpoints(level)
    return (
        Path(tempfile.gettempdir())
        / f"pynet_tf_worker{placement.worker_index}"
        / run.root.name
        / f"level_{level}"
    )


def _remove_scratch(run: RunDir, level: int, placement: Placement) -> None:
    if not placement.is_chief:
        shutil.rmtree(_checkpoint_dir(run, level, placement), ignore_errors=True)


def _format(values: dict[str, float | None]) -> str:
    return ", ".join(f"{name}={value:.4g}" for name, value in values.items() if value is not None)


def export_level(model: keras.Model, config: TrainConfig, level: int, run: RunDir, record: dict) -> None:
    """Write the trained level: ``model.keras``, ``saved_model/`` (raw -> rgb), then ``level.json`` last.

    A float32 copy is saved whatever the training precision, so exports and evaluation never see float16.
    """
    plain = build_network(config, level)
    plain.set_weights(model.get_weights())
    save_level(plain, level, run, record)


def save_level(model: keras.Model, level: int, run: RunDir, record: dict) -> None:
    """Write a float32 ``model`` as ``run``'s ``level``: ``model.keras``, ``saved_model/``, then ``level.json``
    (last: a level with its record is complete). Trained and imported levels (``import_official``) alike."""
    atomic.write_with(run.model_file(level), lambda path: model.save(path))

    spec = tf.TensorSpec((None, None, None, 4), tf.float32, name="raw")
    module = tf.Module()
    module.model = model
    module.serve = tf.function(lambda raw: {"rgb": model(raw, training=False)}, input_signature=[spec])
    atomic.write_with(
        run.saved_model(level),
        lambda path: tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve}),
        directory=True,
    )
    atomic.write_json(run.level_record(level), record)
