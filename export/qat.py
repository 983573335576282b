"""Quantization-aware training (QAT) of PyNET with tensorflow-model-optimization, and its int8 TFLite file.

    tuning = fine_tuning("runs/NAME/final", level=0, steps=200, patch=224)  # the run's loss, distillation
    qat_model, losses = finetune(model, tuning)                             # quantize, calibrate, fine-tune
    content = convert_qat(qat_model, (1, 224, 224, 4), io="float32")        # full-integer int8, QAT's ranges

``python export/to_tflite.py --qat`` does all three (``export.formats``).

tfmot 0.8.1 supports Keras 2 only. ``import pynet_tf`` sets ``TF_USE_LEGACY_KERAS=1``, so ``tf.keras`` is
tf_keras, and tfmot's ``compat.keras`` takes ``tf.keras`` unless that is Keras 3: our layers and its
wrappers are one Keras.

What each layer becomes (tfmot's default 8-bit scheme where it has one; the rest here):

- Conv2D (per-channel int8 kernel), Conv2DTranspose, LeakyReLU, Add, Concatenate and MaxPool2D (no-op:
  int8 max-pool keeps its input's scale): tfmot's ``Default8BitQuantizeRegistry``. A Concatenate's inputs
  share its range (tfmot's ConcatTransform takes their own fake-quants away); where such an input also
  feeds another layer (PyNET's encoder outputs feed a MaxPool and, later, a Concatenate), the int8 file
  quantizes that path with the concat's range and the fake-quant model does not quantize it at all: on a
  one-norm model with such a tensor the file and the fake-quant model were 5 LSB apart at most (0.57 on
  average) against 3 (0.28) without it.
  ``SameConv2D`` (Conv2D with other gradients) gets the registry's Conv2D config.
- ``InstanceNorm`` becomes ``QATInstanceNorm``, the same computation written as the ops the converter emits
  for it (MEAN, SUB, MUL, MEAN, ADD, RSQRT, MUL, MUL, ADD) with a hook after each that
  ``InstanceNormQuantizeConfig`` turns into a fake-quant of that op's int8 output; ``scale`` and ``shift``
  are per-tensor int8 constants, as the converter makes MUL's and ADD's constant operands.
- ``ScaledTanh`` becomes ``QATScaledTanh`` (TANH, MUL, ADD): TANH's output range is TFLite's fixed one
  (scale 1/128, zero-point 0), the MUL's and ADD's come from data.
- ``InputShapeCheck`` adds no op: passed through unquantized.
- Any other layer is an error naming it, never silently left in float.

Ranges. tfmot starts every activation range at [-6, 6] and moves it by an exponential moving average with
decay 0.999, about 1000 steps to forget the start: far longer than a fine-tuning of a few hundred steps, and
[-6, 6] rounds an instance norm's ``variance + eps`` (~1e-3) to 0. ``calibrate_ranges`` sets every range to
the min/max of its tensor in the float model over a few batches first, as TFLite's calibrator does for
post-training int8, and training moves them from there.
"""

from __future__ import annotations

import difflib
import itertools
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf
import tensorflow_model_optimization as tfmot
import tf_keras as keras
from tensorflow_model_optimization.python.core.quantization.keras.graph_transformations import (
    model_transformer,
)
from tqdm import tqdm

import pynet_tf  # noqa: F401  (selects Keras 2 before TensorFlow and tfmot load)
from export.fidelity import model_level
from export.sidecar import describe
from export.tflite import IO_TYPES, convert, converter_for
from pynet_tf.data.pipeline import PipelineOptions, make_dataset
from pynet_tf.data.sources import parse_source
from pynet_tf.layers import InputShapeCheck, InstanceNorm, SameConv2D, ScaledTanh
from pynet_tf.losses import Loss, LossSpecError, check_loss_fits, parse_loss
from pynet_tf.mobile import DepthToSpace, GlobalMinPooling, MobileInputCheck
from pynet_tf.runs import level_record
from pynet_tf.shapes import InputShapeError, ShapeCheck, output_size, validate_input_shape
from pynet_tf.vgg import DEFAULT_LAYER, VggFeatures, VggWeightsError, load_vgg_features

qk = tfmot.quantization.keras
quantizers = qk.quantizers

DEFAULT_STEPS = 200
DEFAULT_LR = 1e-5
DEFAULT_BATCH = 4
TARGETS = ("distill", "ground-truth")
"""``--qat-targets``: fit the float model's outputs (default) or the data's ground truth."""
TANH_RANGE = (-1.0, 127.0 / 128.0)
"""int8 TANH's output in TFLite: scale 1/128, zero-point 0, i.e. [-128, 127] / 128."""


class QATError(ValueError):
    """A model or setting QAT cannot handle; the message names the layer or setting and the fix."""


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


_CUSTOM = {
    InstanceNorm: (QATInstanceNorm, InstanceNormQuantizeConfig),
    ScaledTanh: (QATScaledTanh, ScaledTanhQuantizeConfig),
    InputShapeCheck: (InputShapeCheck, PassThroughQuantizeConfig),
    MobileInputCheck: (MobileInputCheck, PassThroughQuantizeConfig),
    DepthToSpace: (DepthToSpace, PassThroughQuantizeConfig),
    GlobalMinPooling: (GlobalMinPooling, PassThroughQuantizeConfig),
    keras.layers.Multiply: (keras.layers.Multiply, OutputQuantizeConfig),
}
_QAT_VARIANTS = {base: variant for base, (variant, _) in _CUSTOM.items() if variant is not base}
_FORWARD_AS = {SameConv2D: keras.layers.Conv2D}
"""Our layers whose forward graph and weights are a stock Keras layer's (``SameConv2D`` differs in its
gradients only): they get the registry's config for that layer and keep their own class, gradients and all."""


def quantize_scope():
    """tfmot's ``quantize_scope`` with our layers and configs, for loading or cloning a QAT model."""
    objects = {
        cls.__name__: cls
        for cls in (
            QATInstanceNorm,
            QATScaledTanh,
            InputShapeCheck,
            InstanceNorm,
            ScaledTanh,
            SameConv2D,
            MobileInputCheck,
            DepthToSpace,
            GlobalMinPooling,
            _NamedMovingAverage,
            InstanceNormQuantizeConfig,
            ScaledTanhQuantizeConfig,
            PassThroughQuantizeConfig,
            OutputQuantizeConfig,
        )
    }
    return qk.quantize_scope(objects)


def quantize_model(model: keras.Model) -> keras.Model:
    """The model with fake-quant wherever the int8 converter will quantize, and the float weights.

    Activation ranges start where tfmot starts them ([-6, 6]); ``calibrate_ranges`` (or ``finetune``, which
    calls it) sets them from data before the model means anything.
    """
    registry = qk.default_8bit.Default8BitQuantizeRegistry()

    def annotate(layer: keras.layers.Layer) -> keras.layers.Layer:
        if isinstance(layer, keras.layers.InputLayer):
            return layer.__class__.from_config(layer.get_config())
        for base, (qat_class, config_class) in _CUSTOM.items():
            if type(layer) is base:
                return qk.quantize_annotate_layer(qat_class.from_config(layer.get_config()), config_class())
        if type(layer) in _FORWARD_AS:
            stock = _FORWARD_AS[type(layer)].from_config(layer.get_config())
            config = registry.get_quantize_config(stock)
            return qk.quantize_annotate_layer(layer.__class__.from_config(layer.get_config()), config)
        if not registry.supports(layer):
            raise QATError(
                f"layer {layer.name!r} ({type(layer).__name__}) has no int8 QuantizeConfig: tfmot's default "
                "8-bit registry does not support it and export/qat.py gives it none; add a QuantizeConfig"
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
            "(tfmot's layout transforms); this tfmot version needs another fix in export/qat.py"
        )


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


# ------------------------------------------------------------------------------------------------ training


@dataclass(frozen=True)
class FineTuning:
    """What ``finetune`` does. ``loss``: the level's training loss, term weights (``{"lab": 20}``).

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


def fine_tuning(
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


def finetune(
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
    losses = train(
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


def train(
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


# ---------------------------------------------------------------------------------------------- conversion


def convert_qat(qat_model: keras.Model, batch_shape: Sequence[int | None], io: str = "float32") -> bytes:
    """Full-integer int8 TFLite from a QAT model, every range from its fake-quants; ``QATError`` if any op
    is left in float (other than QUANTIZE / DEQUANTIZE at float32 io).

    No representative dataset: a graph with FakeQuant ops converts as quantization-aware trained, taking each
    activation's range from its fake-quant and each weight's from its values, and every int8 tensor of the
    graph, the instance norms' inner ones included, has a fake-quant here (``QATInstanceNorm``): there is
    nothing left to calibrate. ``supported_ops`` stays the default: TF 2.21 checks, before it looks at a
    concrete function's graph, that an INT8-only op set comes with a representative dataset, and with one it
    would also run post-training calibration over the QAT model. The op check below stands in for INT8-only.
    """
    if io not in IO_TYPES:
        raise QATError(f"--io must be one of {', '.join(IO_TYPES)}, got {io!r}")
    converter = converter_for(qat_model, batch_shape)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.inference_input_type = IO_TYPES[io]
    converter.inference_output_type = IO_TYPES[io]
    content = convert(converter)
    info = describe(content, quantized=True)
    raw, rgb = info["inputs"][0]["name"], info["outputs"][0]["name"]
    io_ops = {("QUANTIZE", (raw,), ()), ("DEQUANTIZE", (), (rgb,))}
    left = [
        op["op"]
        for op in info["unquantized_ops"]
        if (op["op"], tuple(op["float_inputs"]), tuple(op["float_outputs"])) not in io_ops
    ]
    if left:
        raise QATError(f"the int8 QAT conversion left ops in float: {', '.join(sorted(set(left)))}")
    return content
