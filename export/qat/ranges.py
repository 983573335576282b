"""Activation ranges of a QAT model set from the float model's tensors before fine-tuning
(``calibrate_ranges``): tfmot starts them at [-6, 6] and forgets that start only after ~1000 steps."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import tensorflow as tf
import tf_keras as keras

import pynet_tf  # noqa: F401  (selects Keras 2 before TensorFlow and tfmot load)
from export.qat.quantize import _QAT_VARIANTS, qk, quantizers
from export.qat.settings import QATError

# -------------------------------------------------------------------------------------------------- ranges


@dataclass
class _Range:
    """One moving-average activation range of a QAT model: the float tensor it quantizes, its variables."""

    layer: str
    """The wrapped layer's name (the float model's layer of that name)."""
    tensor: str
    """``output`` (the layer's output), or the hook (of ``QATInstanceNorm``, ``QATScaledTanh``) it follows."""
    min_var: tf.Variable
    max_var: tf.Variable


def _activation_ranges(qat_model: keras.Model) -> list[_Range]:
    """Every moving-average activation range of a ``quantize_apply``'d model, with the tensor it quantizes.

    tfmot 0.8.1 keeps them in its wrappers' attributes (``_quantize_activations``, ``_output_quantizers``) and
    has no public listing. A linear activation's range (Conv2D, Conv2DTranspose) quantizes the layer's output,
    as does an output quantizer; a hook's names its tensor (``_NamedMovingAverage.tag``). Weight ranges
    (``LastValueQuantizer``), the input's (``AllValuesQuantizer``) and fixed ranges are not listed: training
    passes set the first two, the last have no variables.
    """
    found = []
    for wrapper in qat_model.layers:
        if not isinstance(wrapper, qk.QuantizeWrapper):
            continue
        candidates = [
            (activation.quantizer, getattr(activation, "_post_activation_vars", None))
            for activation in wrapper._quantize_activations
        ]
        activations = wrapper._quantize_activations
        if any(hasattr(activation, "_pre_activation_vars") for activation in activations):
            raise QATError(
                f"layer {wrapper.layer.name!r}: activations quantized before they apply are not handled"
            )
        if wrapper._output_quantizers:
            candidates.append((wrapper._output_quantizers[0], wrapper._output_quantizer_vars))
        for quantizer, variables in candidates:
            if isinstance(quantizer, quantizers.MovingAverageQuantizer) and variables:
                tensor = getattr(quantizer, "tag", "output")
                found.append(_Range(wrapper.layer.name, tensor, variables["min_var"], variables["max_var"]))
    return found


def _float_ranges(model: keras.Model, inputs: Iterable[tf.Tensor]) -> dict[str, tuple[float, float]]:
    """``"layer/tensor"`` -> (min, max) over ``inputs`` of the float model's layer outputs (``tensor``
    ``output``) and of the inner tensors of its norms and output activations (``tensor`` the hook's name).

    The inner tensors come from a copy of each such layer as its QAT variant, whose hooks record what passes
    through them, run on the layer's input. Reduced inside one traced function, so memory stays that of a
    forward pass whatever the model's size.
    """
    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    hooked = [layer for layer in layers if type(layer) in _QAT_VARIANTS]
    probe = keras.Model(model.inputs, [layer.output for layer in layers] + [layer.input for layer in hooked])
    recorders = [_recorder(layer) for layer in hooked]

    @tf.function(autograph=False)
    def extremes(batch: tf.Tensor) -> dict[str, tuple[tf.Tensor, tf.Tensor]]:
        values = probe(batch, training=False)
        tensors = {f"{layer.name}/output": value for layer, value in zip(layers, values)}
        for layer, (recorder, seen), value in zip(hooked, recorders, values[len(layers) :]):
            recorder(value)
            tensors |= {f"{layer.name}/{hook}": tensor for hook, tensor in seen.items()}
        return {key: (tf.reduce_min(tensor), tf.reduce_max(tensor)) for key, tensor in tensors.items()}

    ranges: dict[str, tuple[float, float]] = {}
    for batch in inputs:
        for key, (low, high) in extremes(batch).items():
            old_low, old_high = ranges.get(key, (np.inf, -np.inf))
            ranges[key] = (min(old_low, float(low)), max(old_high, float(high)))
    return ranges


def _recorder(layer: keras.layers.Layer) -> tuple[keras.layers.Layer, dict[str, tf.Tensor]]:
    """A float copy of ``layer`` as its QAT variant, its hooks keeping their last tensor in the dict."""
    recorder = _QAT_VARIANTS[type(layer)].from_config(layer.get_config())
    recorder.build(layer.input_shape)
    recorder.set_weights(layer.get_weights())
    seen: dict[str, tf.Tensor] = {}
    for hook in recorder.HOOKS:
        setattr(recorder, f"{hook}_hook", lambda tensor, hook=hook: seen.__setitem__(hook, tensor) or tensor)
    return recorder, seen


def calibrate_ranges(qat_model: keras.Model, float_model: keras.Model, inputs: Iterable[tf.Tensor]) -> int:
    """Set ``qat_model``'s activation ranges to the min/max (with 0) of the float model's tensors on
    ``inputs``.

    That is what TFLite's calibrator does for post-training int8, so before any QAT step the fake-quant model
    is what PTQ would make of the same crops; training then moves the ranges as tfmot does. Ranges come from the float model, not
    from training-mode passes of the QAT model: those would quantize with the [-6, 6] ranges tfmot starts
    from, where an instance norm's ``variance + eps`` (~1e-3) rounds to 0 and its ``rsqrt`` to infinity.
    Training-mode passes (one per input) set the weights' ranges and the input's. Returns the number of
    activation ranges set.
    """
    inputs = [tf.convert_to_tensor(batch, tf.float32) for batch in inputs]
    if not inputs:
        raise QATError("calibrating the QAT ranges needs at least one input batch")
    ranges = _activation_ranges(qat_model)
    stats = _float_ranges(float_model, inputs)
    for batch in inputs:
        qat_model(batch, training=True)
    for entry in ranges:
        low, high = stats[f"{entry.layer}/{entry.tensor}"]
        entry.min_var.assign(min(low, 0.0))
        entry.max_var.assign(max(high, 0.0))
    return len(ranges)
