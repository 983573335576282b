"""Quantization-aware training (QAT) of PyNET with tensorflow-model-optimization, and its int8 TFLite file.

    tuning = plan_fine_tuning("runs/NAME/final", level=0, steps=200, patch=224)  # the run's loss, distillation
    qat_model, losses = quantize_and_fine_tune(model, tuning)                  # quantize, calibrate, fine-tune
    content = convert_qat(qat_model, (1, 224, 224, 4), io="float32")        # full-integer int8, QAT's ranges

``python export/to_tflite.py --qat`` does all three (``export.formats``). The modules, by job: ``settings``
(defaults, ``QATError``), ``quantize`` (the fake-quant model and our QuantizeConfigs), ``ranges`` (activation
ranges from the float model), ``tuning`` (the fine-tuning's settings and loop), ``convert`` (the int8 file).

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

from export.qat.convert import convert_qat
from export.qat.quantize import QATInstanceNorm, QATScaledTanh, quantize_model, quantize_scope
from export.qat.ranges import calibrate_ranges
from export.qat.settings import DEFAULT_BATCH, DEFAULT_LR, DEFAULT_STEPS, TARGETS, QATError
from export.qat.tuning import FineTuning, fine_tune_steps, plan_fine_tuning, quantize_and_fine_tune

__all__ = [
    "DEFAULT_BATCH",
    "DEFAULT_LR",
    "DEFAULT_STEPS",
    "TARGETS",
    "FineTuning",
    "QATError",
    "QATInstanceNorm",
    "QATScaledTanh",
    "calibrate_ranges",
    "convert_qat",
    "fine_tune_steps",
    "plan_fine_tuning",
    "quantize_and_fine_tune",
    "quantize_model",
    "quantize_scope",
]
