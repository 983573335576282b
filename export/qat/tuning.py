"""The fine-tuning: its settings checked from the exporter's flags (``plan_fine_tuning`` -> ``FineTuning``),
then quantize, calibrate and train (``quantize_and_fine_tune``, whose loop is ``fine_tune_steps``)."""

from __future__ import annotations

import difflib
import itertools
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import tensorflow as tf
import tf_keras as keras
from tqdm import tqdm

import pynet_tf  # noqa: F401  (selects Keras 2 before TensorFlow and tfmot load)
from export.fidelity import model_level
from export.qat.quantize import quantize_model
from export.qat.ranges import calibrate_ranges
from export.qat.settings import DEFAULT_BATCH, DEFAULT_LR, DEFAULT_STEPS, TARGETS, QATError
from pynet_tf.data.pipeline import PipelineOptions, make_dataset
from pynet_tf.data.sources import parse_source
from pynet_tf.losses import Loss, LossSpecError, check_loss_fits, parse_loss
from pynet_tf.nets.pynet.levels import output_size, validate_input_shape
from pynet_tf.runs import level_record
from pynet_tf.shapes import InputShapeError, ShapeCheck
from pynet_tf.vgg import DEFAULT_LAYER, VggFeatures, VggWeightsError, load_vgg_features

# ------------------------------------------------------------------------------------------------ training


@dataclass(frozen=True)
class FineTuning:
    """What ``quantize_and_fine_tune`` does. ``loss``: the level's training loss, term weights (``{"lab": 20}``).

    ``distill``: the targets are the float model's outputs, not the data's (the int8 file is judged against the
    float model, and on runs/quick level 5, 100 steps towards the ground truth left the file 31.1 dB from the
    float model, 100 distillation steps 49.4). ``patch``: the packed crop side; an instance norm's statistics
    are over the whole map, so the crops should be as large as the exported input.
    """

    loss: Mapping[str, float]
    steps: int = DEFAULT_STEPS
    distill: bool = True
    lr: float = DEFAULT_LR
    batch_size: int = DEFAULT_BATCH
    patch: int = 64
    data: str = "samples"
    seed: int = 0
    lab_alpha: float | None = None
    vgg: VggFeatures | None = None
    calibration_batches: int = 4

    def objective(self) -> Loss:
        return Loss(
            self.loss, vgg=self.vgg, **({} if self.lab_alpha is None else {"lab_alpha": self.lab_alpha})
        )

    def calibration_record(self) -> dict:
        """The sidecar's ``calibration`` of a QAT file: where its ranges started (``calibrate_ranges``)."""
        return {
            "built": f"QAT: float min/max over {self.calibration_batches} training batches, then "
            f"fine-tuned {self.steps} steps",
            "num": self.calibration_batches * self.batch_size,
            "shape": [self.patch, self.patch, 4],
            "data": self.data,
            "seed": self.seed,
        }

    def record(self) -> dict:
        """The sidecar's account of the fine-tuning (the VGG model as the weights it was loaded from)."""
        fields = {name: getattr(self, name) for name in self.__dataclass_fields__ if name != "vgg"}
        return {
            **fields,
            "loss": dict(self.loss),
            "targets": TARGETS[not self.distill],
            "vgg": None if self.vgg is None else self.vgg.source,
        }


def plan_fine_tuning(
    model_path: str | Path,
    level: int,
    *,
    steps: int = DEFAULT_STEPS,
    targets: str = TARGETS[0],
    lr: float = DEFAULT_LR,
    batch: int = DEFAULT_BATCH,
    patch: int,
    loss: str | None = None,
    vgg_weights: str | None = None,
    data: str = "samples",
    seed: int = 0,
    shape_rule: ShapeCheck = validate_input_shape,
) -> FineTuning:
    """``FineTuning`` from the exporter's ``--qat-*`` flags, checked before anything runs (``QATError``);
    ``patch`` by ``shape_rule``, the model's network's input rule (PyNET's by default).

    The loss is the one the model at ``model_path`` was trained with (its ``level.json``), or ``loss`` (a
    ``--loss`` spec) for a bare ``.keras`` file or a different choice; a ``vgg`` term loads VGG-19 from
    ``vgg_weights`` or the run's own ``--vgg-weights``.
    """
    if steps < 0:
        raise QATError(f"--qat-steps must be >= 0, got {steps}")
    if not lr > 0:
        raise QATError(f"--qat-lr must be > 0, got {lr}")
    if batch < 1:
        raise QATError(f"--qat-batch must be >= 1, got {batch}")
    try:
        shape_rule(patch, patch)
    except InputShapeError as error:
        raise QATError(f"--qat-patch {patch}: {error}") from None
    if targets not in TARGETS:
        close = difflib.get_close_matches(targets, TARGETS, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise QATError(f"--qat-targets {targets!r}: {hint}choose {' or '.join(TARGETS)}")
    record = level_record(model_path)
    config = record.get("config", {})
    if loss is None:
        if "loss" not in record:
            raise QATError(
                f"{model_path}: no level.json beside the model says its training loss; pass one "
                "with --qat-loss (e.g. lab)"
            )
        weights, alpha = dict(record["loss"]), config.get("lab_alpha")
    else:
        try:
            weights, alpha = parse_loss(loss).weights(level), None
        except LossSpecError as error:
            raise QATError(f"--qat-loss: {error}") from None
    try:
        check_loss_fits(weights, *output_size(level, patch, patch), f"level {level} at --qat-patch {patch}")
    except LossSpecError as error:
        raise QATError(str(error)) from None
    vgg = None
    if weights.get("vgg", 0) > 0:
        try:
            vgg = load_vgg_features(
                config.get("vgg_layer", DEFAULT_LAYER),
                vgg_weights or config.get("vgg_weights"),
                allow_random=bool(config.get("allow_random_vgg")) and vgg_weights is None,
            )
        except (VggWeightsError, ValueError) as error:
            raise QATError(
                f"the training loss has a vgg term: {error} (--vgg-weights PATH, or --qat-loss without vgg)"
            ) from None
    return FineTuning(
        weights,
        steps=steps,
        distill=targets == TARGETS[0],
        lr=lr,
        batch_size=batch,
        patch=patch,
        data=data,
        seed=seed,
        lab_alpha=alpha,
        vgg=vgg,
    )


def quantize_and_fine_tune(
    model: keras.Model, tuning: FineTuning, *, progress: bool = True
) -> tuple[keras.Model, list[float]]:
    """The QAT model of the float ``model`` and its step losses: ranges calibrated, then ``tuning.steps``
    fine-tuning steps.

    ``quantize_model``, then ``calibrate_ranges`` on the first ``calibration_batches`` batches of the training
    split of ``tuning.data``, then ``train`` on the batches that follow. Crops are seeded by ``tuning.seed``
    and nothing else draws random numbers: the same call gives the same model.
    """
    options = PipelineOptions(
        level=model_level(model), patch=tuning.patch, batch_size=tuning.batch_size, seed=tuning.seed
    )
    batches = iter(make_dataset(parse_source(tuning.data), "train", options))
    qat_model = quantize_model(model)
    try:
        calibration = [next(batches)[0] for _ in range(tuning.calibration_batches)]
    except (
        StopIteration,
        tf.errors.OpError,
    ) as error:  # the pipeline's BadExampleError arrives as an OpError
        reason = str(error).rsplit("BadExampleError: ", 1)[-1].strip() or "no usable training example"
        raise QATError(
            f"--qat-patch {tuning.patch}: no training crops from {tuning.data!r}: {reason} (here: "
            "a smaller --qat-patch)"
        ) from None
    calibrate_ranges(qat_model, model, calibration)
    losses = fine_tune_steps(
        qat_model,
        model,
        itertools.islice(batches, tuning.steps),
        objective=tuning.objective(),
        lr=tuning.lr,
        distill=tuning.distill,
        progress=progress,
        total=tuning.steps,
    )
    return qat_model, losses


def fine_tune_steps(
    qat_model: keras.Model,
    float_model: keras.Model,
    batches: Iterable[tuple[tf.Tensor, tf.Tensor]],
    *,
    objective: Loss,
    lr: float = DEFAULT_LR,
    distill: bool = False,
    progress: bool = True,
    total: int | None = None,
) -> list[float]:
    """One Adam step of ``objective`` through the fake-quants per (raw, target) batch; the step losses.

    With ``distill`` the target is ``float_model``'s output on the batch instead of the batch's own target,
    which pulls the int8 model towards the float one. Measured on runs/quick level 5 (lab_l1 loss, lr 1e-5,
    batches of 4 at 64x64): ground-truth targets moved it 0.43 dB nearer the ground truth in 100 steps and
    to 31.1 dB from the float model; distillation kept it at 49.4 dB from the float model, where the
    calibrated model without any step was 50.8 dB. ``total``: the number of batches, for the progress bar.
    """
    optimizer = keras.optimizers.Adam(lr)
    variables = qat_model.trainable_variables

    @tf.function(autograph=False)  # traced in about 2/3 of autograph's time; nothing here needs autograph
    def step(raw: tf.Tensor, target: tf.Tensor) -> tf.Tensor:
        if distill:
            target = float_model(raw, training=False)
        with tf.GradientTape() as tape:
            loss, _ = objective(target, qat_model(raw, training=True))
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    losses: list[float] = []
    with tqdm(
        total=total, desc="QAT", unit="step", disable=not progress, dynamic_ncols=True, mininterval=1.0
    ) as bar:
        for raw, target in batches:
            losses.append(float(step(raw, target)))
            if not math.isfinite(losses[-1]):
                raise QATError(
                    f"QAT step {len(losses)}: the loss is not finite ({losses[-1]}); lower --qat-lr"
                )
            bar.update(1)
            bar.set_postfix_str(f"loss={losses[-1]:.4g}", refresh=False)
    return losses
