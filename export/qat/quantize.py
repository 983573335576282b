"""The QAT model: fake-quant wherever the int8 converter will quantize (``quantize_model``), with our own
QuantizeConfigs for the layers tfmot does not know (see the package's docstring for what each becomes)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import tensorflow as tf
import tensorflow_model_optimization as tfmot
import tf_keras as keras
from tensorflow_model_optimization.python.core.quantization.keras.graph_transformations import (
    model_transformer,
)

import pynet_tf  # noqa: F401  (selects Keras 2 before TensorFlow and tfmot load)
from export.qat.settings import QATError
from pynet_tf.architectures import ARCHITECTURES
from pynet_tf.layers import ScaledTanh
from pynet_tf.nets.pynet.layers import InstanceNorm

qk = tfmot.quantization.keras
quantizers = qk.quantizers

TANH_RANGE = (-1.0, 127.0 / 128.0)
"""int8 TANH's output in TFLite: scale 1/128, zero-point 0, i.e. [-128, 127] / 128."""


# ----------------------------------------------------------------------------------------------- quantizers


class _NamedMovingAverage(quantizers.MovingAverageQuantizer):
    """tfmot's moving-average activation quantizer with its own variable name.

    tfmot names an activation's range variables ``post_activation_min/max`` whatever the activation, so two
    hooks of one layer would share names; each hook here gets its own.
    """

    def __init__(self, tag: str, **kwargs):
        kwargs = {"num_bits": 8, "per_axis": False, "symmetric": False, "narrow_range": False} | kwargs
        super().__init__(**kwargs)
        self.tag = tag

    def build(self, tensor_shape, name, layer):
        return super().build(tensor_shape, self.tag, layer)

    def get_config(self):
        return {**super().get_config(), "tag": self.tag}


def _activation_quantizer() -> quantizers.Quantizer:
    """Per-tensor asymmetric int8, as the converter quantizes activations."""
    return quantizers.MovingAverageQuantizer(num_bits=8, per_axis=False, symmetric=False, narrow_range=False)


def _fixed(low: float, high: float) -> quantizers.Quantizer:
    return quantizers.FixedQuantizer(num_bits=8, init_min=low, init_max=high, narrow_range=False)


# ----------------------------------------------------------------------------------- layers with fake-quant


@keras.saving.register_keras_serializable(package="pynet_tf_qat")
class QATInstanceNorm(InstanceNorm):
    """``InstanceNorm`` with a hook on each of its ``POINTS``, the tensors between the ops the converter
    emits for it (MEAN, SUB, MUL, MEAN, ADD, RSQRT, MUL, MUL, ADD), each an int8 tensor in the file.

    Unwrapped, every hook is the identity (``linear``) and the layer computes exactly ``InstanceNorm``;
    ``InstanceNormQuantizeConfig`` replaces the hooks with fake-quants.

    In int8, ``variance + eps`` rounds to 0 for a map much flatter than the layer's flattest-to-busiest
    range allows, and RSQRT of 0 saturates at its range's top: the fake-quant of ``inf`` does the same. In
    training the moving ranges would take in that ``inf`` (and its gradient is 0 * inf = NaN), so training
    takes RSQRT of ``max(variance + eps, eps)`` instead, which is the same where ``variance + eps`` did not
    round to 0 and saturates the same way where it did; inference (and so the converted graph) is unchanged.
    """

    HOOKS = InstanceNorm.POINTS

    def __init__(self, epsilon: float = 1e-3, **kwargs):
        super().__init__(epsilon=epsilon, **kwargs)
        for hook in self.HOOKS:
            setattr(self, f"{hook}_hook", keras.activations.linear)

    def call(self, x: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        def point(name: str, tensor: tf.Tensor) -> tf.Tensor:
            tensor = getattr(self, f"{name}_hook")(tensor)
            if training and name == "variance_eps":  # see the class docstring
                tensor = tf.maximum(tensor, self.epsilon)
            return tensor

        return self.normalize(x, point)


@keras.saving.register_keras_serializable(package="pynet_tf_qat")
class QATScaledTanh(ScaledTanh):
    """``ScaledTanh`` as the converter sees it (TANH, MUL, ADD), with hooks after TANH and after the MUL."""

    HOOKS = ("tanh", "scaled")

    def __init__(self, scale: float = 0.58, offset: float = 0.5, **kwargs):
        super().__init__(scale=scale, offset=offset, **kwargs)
        for hook in self.HOOKS:
            setattr(self, f"{hook}_hook", keras.activations.linear)

    def call(self, x: tf.Tensor) -> tf.Tensor:
        return self.scaled_hook(self.tanh_hook(tf.tanh(x)) * self.scale) + self.offset


# ------------------------------------------------------------------------------------------ QuantizeConfigs


class _HookQuantizeConfig(qk.QuantizeConfig):
    """Quantizes a layer's named weights, its hooks (as tfmot quantizes activations) and its output."""

    def weights(self, layer) -> dict[str, quantizers.Quantizer]:
        return {}

    def hooks(self, layer) -> dict[str, quantizers.Quantizer]:
        return {}

    def output(self, layer) -> quantizers.Quantizer | None:
        return None

    def get_weights_and_quantizers(self, layer):
        return [(getattr(layer, name), quantizer) for name, quantizer in self.weights(layer).items()]

    def set_quantize_weights(self, layer, quantize_weights):
        for name, weight in zip(self.weights(layer), quantize_weights, strict=True):
            setattr(layer, name, weight)

    def get_activations_and_quantizers(self, layer):
        return [(getattr(layer, f"{name}_hook"), quantizer) for name, quantizer in self.hooks(layer).items()]

    def set_quantize_activations(self, layer, quantize_activations):
        for name, activation in zip(self.hooks(layer), quantize_activations, strict=True):
            setattr(layer, f"{name}_hook", activation)

    def get_output_quantizers(self, layer):
        output = self.output(layer)
        return [output] if output is not None else []

    def get_config(self):
        return {}


@keras.saving.register_keras_serializable(package="pynet_tf_qat")
class InstanceNormQuantizeConfig(_HookQuantizeConfig):
    """Every op of ``QATInstanceNorm`` gets an int8 output with its range from data; scale and shift are
    per-tensor asymmetric int8 constants over their own min/max (with 0), as post-training conversion
    quantizes them too (the same scale and zero-point in both files, checked)."""

    def weights(self, layer):
        constant = quantizers.LastValueQuantizer(8, per_axis=False, symmetric=False, narrow_range=False)
        return {"scale": constant, "shift": constant}

    def hooks(self, layer):
        return {hook: _NamedMovingAverage(hook) for hook in QATInstanceNorm.HOOKS}

    def output(self, layer):
        return _activation_quantizer()


@keras.saving.register_keras_serializable(package="pynet_tf_qat")
class ScaledTanhQuantizeConfig(_HookQuantizeConfig):
    """TANH's output range is TFLite's fixed one; the MUL's and the ADD's (the model's output) come from data.

    The ranges the function can reach (``[-s, s]``, ``offset ± s``) would need no data, but a trained model's
    outputs span less of them: with those fixed ranges the fitted model of tests/test_qat.py converted to a
    file 51.7 dB from the float model, with ranges from data 52.8 dB (PTQ: 53.1 dB).
    """

    def hooks(self, layer):
        return {"tanh": _fixed(*TANH_RANGE), "scaled": _NamedMovingAverage("scaled")}

    def output(self, layer):
        return _activation_quantizer()


@keras.saving.register_keras_serializable(package="pynet_tf_qat")
class PassThroughQuantizeConfig(_HookQuantizeConfig):
    """For layers that add no op to the converted graph (the input checks) or whose int8 op keeps its input's
    scale and zero-point (DEPTH_TO_SPACE moves values, REDUCE_MIN picks one): nothing to fake-quantize."""


@keras.saving.register_keras_serializable(package="pynet_tf_qat")
class OutputQuantizeConfig(_HookQuantizeConfig):
    """For weightless layers whose int8 op requantizes to its own output range (MUL of two tensors)."""

    def output(self, layer):
        return _activation_quantizer()


KINDS = {
    "instance_norm": (QATInstanceNorm, InstanceNormQuantizeConfig),
    "scaled_tanh": (QATScaledTanh, ScaledTanhQuantizeConfig),
    "pass_through": (None, PassThroughQuantizeConfig),
    "output": (None, OutputQuantizeConfig),
    "as_conv2d": (None, None),
}
"""``Architecture.quantize_as``'s kinds -> (the QAT variant of the layer, None: its own class; its
QuantizeConfig, None for ``as_conv2d``: tfmot's registry's config of the stock Conv2D the layer's forward graph
and weights are, gradients aside, as ``SameConv2D``'s)."""
_CUSTOM = {layer: kind for arch in ARCHITECTURES.values() for layer, kind in arch.quantize_as.items()}
"""Every network's own layers, by class, and how QAT treats each (``Architecture.quantize_as``)."""
_QAT_VARIANTS = {layer: KINDS[kind][0] for layer, kind in _CUSTOM.items() if KINDS[kind][0] is not None}


def quantize_scope():
    """tfmot's ``quantize_scope`` with our layers and configs, for loading or cloning a QAT model."""
    classes = [*_CUSTOM, *_QAT_VARIANTS.values(), _NamedMovingAverage]
    classes += [config for _, config in KINDS.values() if config is not None]
    objects = {cls.__name__: cls for cls in classes}
    return qk.quantize_scope(objects)


def quantize_model(model: keras.Model) -> keras.Model:
    """The model with fake-quant wherever the int8 converter will quantize, and the float weights.

    Activation ranges start where tfmot starts them ([-6, 6]); ``calibrate_ranges`` (or
    ``quantize_and_fine_tune``, which calls it) sets them from data before the model means anything.
    """
    registry = qk.default_8bit.Default8BitQuantizeRegistry()

    def annotate(layer: keras.layers.Layer) -> keras.layers.Layer:
        if isinstance(layer, keras.layers.InputLayer):
            return layer.__class__.from_config(layer.get_config())
        kind = _CUSTOM.get(type(layer))
        if kind == "as_conv2d":
            stock = keras.layers.Conv2D.from_config(layer.get_config())
            config = registry.get_quantize_config(stock)
            return qk.quantize_annotate_layer(layer.__class__.from_config(layer.get_config()), config)
        if kind is not None:
            variant, config_class = KINDS[kind]
            layer_class = variant or type(layer)
            return qk.quantize_annotate_layer(layer_class.from_config(layer.get_config()), config_class())
        if not registry.supports(layer):
            raise QATError(
                f"layer {layer.name!r} ({type(layer).__name__}) has no int8 QuantizeConfig: tfmot's default "
                "8-bit registry does not support it and its network's quantize_as (pynet_tf/architectures.py) "
                "names no kind for it; add one"
            )
        return qk.quantize_annotate_layer(layer.__class__.from_config(layer.get_config()))

    annotated = keras.models.clone_model(model, clone_function=annotate)
    for layer in annotated.layers:
        inner = getattr(layer, "layer", layer)
        if inner.weights:
            inner.set_weights(model.get_layer(inner.name).get_weights())
    with quantize_scope(), _inputs_kept_in_order():
        qat_model = qk.quantize_apply(annotated)
    _check_wiring(model, qat_model)
    return qat_model


@contextmanager
def _inputs_kept_in_order() -> Iterator[None]:
    """tfmot 0.8.1's layout transforms, matching a Concatenate, take its inputs in the order its model config
    lists those layers, not the order the Concatenate takes them (tensorflow/model-optimization#1179, open),
    and rewire it so. Once the transform of an inner Concatenate has moved that one to the config's end,
    PyNET's ``l2_dec6_join`` = concat(l2_dec6_cat, l3_up_b_act) came out the other way round, and the quick
    run's level-0 QAT model 15.7 dB from the float model. This puts the issue's fix (keep the order asked
    for) in place for the duration of ``quantize_apply``; ``_check_wiring`` checks the result either way.
    """
    original = model_transformer.ModelTransformer._get_layers

    def in_the_given_order(self, layer_names):
        by_name = {layer["config"]["name"]: layer for layer in self._config["layers"]}
        return [by_name[name] for name in layer_names if name in by_name]

    model_transformer.ModelTransformer._get_layers = in_the_given_order
    try:
        yield
    finally:
        model_transformer.ModelTransformer._get_layers = original


def _check_wiring(model: keras.Model, qat_model: keras.Model) -> None:
    """``QATError`` unless every layer of the QAT model takes the inputs of its float layer, in order."""

    def inputs(config: dict, prefix: str = "") -> dict[str, list[str]]:
        wiring = {
            layer["name"]: [node[0] for nodes in layer["inbound_nodes"] for node in nodes]
            for layer in config["layers"]
        }
        passing = {
            name: sources[0] for name, sources in wiring.items() if name.startswith("quantize_layer")
        }  # tfmot's input quantizer, inserted after the input

        def source(name: str) -> str:
            name = passing.get(name, name)
            return name.removeprefix(prefix)

        return {
            source(name): [source(s) for s in sources]
            for name, sources in wiring.items()
            if name not in passing
        }

    want, got = inputs(model.get_config()), inputs(qat_model.get_config(), "quant_")
    wrong = [name for name, sources in want.items() if got.get(name) != sources]
    if wrong:
        raise QATError(
            f"the QAT model is wired differently from the float model at {', '.join(wrong)} "
            "(tfmot's layout transforms); this tfmot version needs another fix in export/qat/quantize.py"
        )
