"""Magnitude pruning with tensorflow-model-optimization, for a written-out training loop (not ``Model.fit``).

tfmot's ``prune_low_magnitude`` wraps a layer in ``PruneLowMagnitude``: a mask and a threshold per pruned
weight and a ``pruning_step`` counter. Every call of the wrapped model in training mode counts that step up
by one and, on the schedule's steps, sets the mask to zero the smallest-magnitude weights; every call
multiplies the weights by their mask. ``strip`` removes the wrappers before export: a plain model with the
same layer classes and zeros in its kernels (the TFLite file then compresses better; its size, speed and
fidelity are measured in ``benchmarks/pruning.py``).

In a custom loop (tfmot's comprehensive pruning guide, "custom training loop": ``UpdatePruningStep`` driven
by hand, ``on_train_begin`` once, ``on_train_batch_begin`` every batch, ``on_epoch_end`` at the end)::

    pruned = prunable(model, sparsity=0.5, begin_step=0, end_step=1000, frequency=100)
    pruning_step = PruningStep(pruned)
    for step in range(start, steps):        # step = optimizer.iterations before this update
        pruning_step(step)                  # before the training-mode forward pass
        train_step(next(batches))           # pruned(raw, training=True), gradients, apply
    pruning_step.end()                      # re-zero what the last update moved; also before saving
    plain = strip(pruned)                   # -> .keras, TFLite

In tfmot 0.8.1 ``UpdatePruningStep.on_train_batch_begin`` does nothing (the wrapper counts its own calls), so
a loop that follows the guide leaves the schedule to the number of training-mode calls. ``PruningStep(step)``
sets every wrapper's counter to the loop's step instead, so the schedule follows the optimizer: the forward
pass of update number ``step + 1`` sees ``step + 1``, as under ``Model.fit``, and a model also called in
training mode elsewhere (a second forward pass in a step) cannot run ahead over the steps. A resumed run
restores the counters, masks and thresholds with the model's variables (``tf.train.Checkpoint``).

Which layers: those tfmot's registry prunes with a non-empty weight list (Conv2D, Conv2DTranspose, Dense,
...: their kernels, never biases), plus ``SameConv2D`` (``pynet_tf.layers``), which the registry, matching
exact classes, does not know: its forward op and weights are Conv2D's, so its ``kernel`` is declared through
tfmot's ``get_prunable_weights`` protocol on the cloned instance (what the registry itself does for Conv2D).
Norms, the output activation, shape checks, pooling, concatenations, depthwise convolutions (the registry
prunes none of their weights) and ``pynet_tf.nets.mobile``'s own layers are cloned unwrapped.
"""

from __future__ import annotations

import numpy as np
import tensorflow_model_optimization as tfmot
import tf_keras as keras
from tensorflow_model_optimization.python.core.sparsity.keras.prune_registry import PruneRegistry
from tensorflow_model_optimization.python.core.sparsity.keras.pruning_wrapper import (
    PruneLowMagnitude,
    collect_prunable_layers,
)

import pynet_tf  # noqa: F401  (selects Keras 2 before TensorFlow and tfmot load)
from pynet_tf.layers import SameConv2D

DEFAULT_FREQUENCY = 100
"""Steps between mask updates: tfmot's default; ``end_step - begin_step`` must be a multiple of it."""
SUBCLASS_WEIGHTS: dict[type, tuple[str, ...]] = {SameConv2D: ("kernel",)}
"""Our subclasses of registry layers (the registry matches exact classes) and the weights tfmot prunes in
their base class (Conv2D: ``kernel``)."""


def prunable_weight_names(layer: keras.layers.Layer) -> tuple[str, ...]:
    """The weights of ``layer`` that pruning zeroes (empty: the layer is left alone)."""
    if type(layer) in SUBCLASS_WEIGHTS:
        return SUBCLASS_WEIGHTS[type(layer)]
    # tfmot 0.8.1's table of built-in classes -> weight names, read as it is: its public make_prunable
    # modifies the layer it is given (RNN cells aside, which PyNET has none of)
    return tuple(PruneRegistry._LAYERS_WEIGHTS_MAP.get(type(layer), ()))


def schedule(
    *, sparsity: float, begin_step: int, end_step: int, frequency: int
) -> tfmot.sparsity.keras.PruningSchedule:
    """Sparsity from 0 at ``begin_step`` to ``sparsity`` at ``end_step`` (cubic ``PolynomialDecay``, tfmot's
    gradual pruning), or all at once at ``begin_step == end_step`` (``ConstantSparsity`` for one step).

    Steps count optimizer updates: step ``n``'s masks are set in the forward pass of update ``n`` (the first
    is 1). ``end_step - begin_step`` must be a multiple of ``frequency``: masks change only on
    ``begin_step + k * frequency``, so otherwise the last change falls short of ``sparsity``.
    """
    if not 0.0 < sparsity < 1.0:
        raise ValueError(f"sparsity must be in (0, 1) (the fraction of each kernel zeroed), got {sparsity!r}")
    if frequency < 1:
        raise ValueError(f"frequency must be at least 1 step, got {frequency!r}")
    if begin_step < 0 or end_step < begin_step:
        raise ValueError(f"need 0 <= begin_step <= end_step, got begin_step={begin_step} end_step={end_step}")
    if (end_step - begin_step) % frequency:
        fix = begin_step + frequency * max(1, round((end_step - begin_step) / frequency))
        raise ValueError(
            f"end_step - begin_step ({end_step} - {begin_step}) must be a multiple of frequency "
            f"({frequency}): masks change every {frequency} steps from begin_step, so the target would never "
            f"be reached; use end_step={fix}"
        )
    if begin_step == end_step:
        if begin_step < 1:
            raise ValueError(
                "one-shot pruning (begin_step == end_step) needs begin_step >= 1: the first "
                "training step is step 1"
            )
        return tfmot.sparsity.keras.ConstantSparsity(sparsity, begin_step, end_step, frequency=frequency)
    return tfmot.sparsity.keras.PolynomialDecay(0.0, sparsity, begin_step, end_step, frequency=frequency)


def prunable(
    model: keras.Model, *, sparsity: float, begin_step: int, end_step: int, frequency: int = DEFAULT_FREQUENCY
) -> keras.Model:
    """A copy of ``model`` whose prunable layers (``prunable_weight_names``) are wrapped for magnitude pruning
    on ``schedule``'s steps; every weight is copied, and the masks start full, so until the first mask update
    its outputs are the model's. ``model`` itself is left untouched."""
    pruning = schedule(sparsity=sparsity, begin_step=begin_step, end_step=end_step, frequency=frequency)
    pairs: list[tuple[keras.layers.Layer, keras.layers.Layer]] = []

    def clone(layer: keras.layers.Layer) -> keras.layers.Layer:
        fresh = layer.__class__.from_config(layer.get_config())
        pairs.append((layer, fresh))
        names = prunable_weight_names(fresh)
        if not names:
            return fresh
        # tfmot's protocol for layers outside its registry: the wrapper asks the layer what to prune
        fresh.get_prunable_weights = lambda: [getattr(fresh, name) for name in names]
        return tfmot.sparsity.keras.prune_low_magnitude(fresh, pruning_schedule=pruning)

    pruned = keras.models.clone_model(model, clone_function=clone)
    for source, fresh in pairs:
        fresh.set_weights(source.get_weights())
    if not collect_prunable_layers(pruned):
        raise ValueError(f"model {model.name!r} has no layer that can be pruned (no convolution or dense)")
    return pruned


class PruningStep:
    """tfmot's ``UpdatePruningStep`` callback for a written-out loop: call it with the step before each
    training step, and ``end()`` after the last one (see the module's docstring)."""

    def __init__(self, model: keras.Model) -> None:
        self.layers: list[PruneLowMagnitude] = collect_prunable_layers(model)
        if not self.layers:
            raise ValueError(f"model {model.name!r} has no pruning wrappers: wrap it with prunable() first")

    def __call__(self, step: int) -> None:
        """Before the training step that makes ``step + 1`` optimizer updates (``step`` = the optimizer's
        ``iterations`` now): the wrappers count it to ``step + 1`` in its forward pass and update their masks
        if the schedule says so (``UpdatePruningStep.on_train_begin``/``on_train_batch_begin``)."""
        keras.backend.batch_set_value([(layer.pruning_step, step) for layer in self.layers])

    def end(self) -> None:
        """Multiply the weights by their masks: the last optimizer update moved pruned weights off zero, and
        only the next forward pass would zero them (``UpdatePruningStep.on_epoch_end``)."""
        for layer in self.layers:
            for weight, mask, _ in layer.pruning_vars:
                weight.assign(weight * mask)


def strip(model: keras.Model) -> keras.Model:
    """The plain model inside a pruned one (tfmot's ``strip_pruning``): the original layer classes, each
    pruned weight multiplied by its mask (``PruningStep.end``, applied to ``model`` itself first). Its own
    copy of every layer and weight: ``strip_pruning`` alone returns the wrapped layers, which training the
    pruned model on would go on changing."""
    PruningStep(model).end()
    stripped = tfmot.sparsity.keras.strip_pruning(model)
    plain = keras.models.clone_model(stripped)
    plain.set_weights(stripped.get_weights())
    return plain


def _pruned_weights(model: keras.Model) -> dict[str, np.ndarray]:
    """{"layer/weight": the values pruning governs}: a wrapper's weights times their masks, or a plain
    layer's prunable weights as they are."""
    values = {}
    for layer in model.layers:
        if isinstance(layer, PruneLowMagnitude):
            names = prunable_weight_names(layer.layer)
            for name, (weight, mask, _) in zip(names, layer.pruning_vars):
                values[f"{layer.layer.name}/{name}"] = weight.numpy() * mask.numpy()
        else:
            for name in prunable_weight_names(layer):
                values[f"{layer.name}/{name}"] = getattr(layer, name).numpy()
    return values


def sparsity_report(model: keras.Model) -> dict:
    """The fraction of zeros in each prunable weight and over all of them, for a pruned model (weights as
    ``strip`` will leave them) or a plain one:
    ``{"weights": {"layer/kernel": {"size", "zeros", "sparsity"}}, "size", "zeros", "sparsity"}``."""
    weights = {}
    for name, value in _pruned_weights(model).items():
        zeros = int(np.count_nonzero(value == 0))
        weights[name] = {"size": int(value.size), "zeros": zeros, "sparsity": zeros / value.size}
    size = sum(entry["size"] for entry in weights.values())
    zeros = sum(entry["zeros"] for entry in weights.values())
    return {"weights": weights, "size": size, "zeros": zeros, "sparsity": zeros / size if size else 0.0}
