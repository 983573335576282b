"""Training losses as data: a loss is a mapping term -> weight, per PyNET level.

    --loss pynet                      the reference PyNET's per-level weights (PRESETS)
    --loss lab_vgg                    the LAB loss (DeepISP) plus VGG-19, our best on ZRR
    --loss lab_mse                    the LAB loss next to MSE (the quick preset's: learns in minutes)
    --loss "mse=20,vgg=1,ssim=20"     any terms with any weights, the same at every level

Terms (``TERMS``), each a scalar averaged over the batch, 0 for identical images:

    mse       mean squared error in sRGB [0, 1]
    vgg       mean squared difference of VGG-19 activations (relu5_4 by default), as the reference's
              2 * l2_loss / size; needs VGG-19 weights (``pynet_tf.vgg``)
    ssim      1 - SSIM (11 px Gaussian window, sigma 1.5)
    ms_ssim   1 - MS-SSIM
    lab_l1    mean |Lab(I) - Lab(I^)| / 100
    lab       (1 - alpha) * lab_l1 + alpha * (1 - MS-SSIM(L(I) / 100, L(I^) / 100))

Lab is divided by 100 (L to [0, 1], a and b to about [-1, 1]) so that the L1 part and 1 - MS-SSIM share a
scale; in raw Lab units the L1 part would be ~100x larger and alpha would need to be ~0.99 to matter.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import tensorflow as tf

from pynet_tf import metrics
from pynet_tf.color import rgb_to_lab
from pynet_tf.nets.pynet.levels import LEVELS, check_level

LAB_ALPHA = 0.8
"""DeepISP's weight of MS-SSIM on luminance against L1 in Lab (Schwartz, Giryes and Bronstein, "DeepISP:
Towards Learning an End-to-End Image Processing Pipeline", IEEE TIP 2019, section on the loss)."""

LAB_SCALE = 100.0

Weights = Mapping[str, float]


def _per_level(
    coarse: Weights, middle: Weights, fine: Weights, finest: Weights
) -> dict[int, dict[str, float]]:
    """Levels 5 and 4 / 3 and 2 / 1 / 0: the reference PyNET changes its loss at these boundaries."""
    return {
        5: dict(coarse),
        4: dict(coarse),
        3: dict(middle),
        2: dict(middle),
        1: dict(fine),
        0: dict(finest),
    }


PRESETS: dict[str, dict[int, dict[str, float]]] = {
    # The reference PyNET's train_model.py: colour and brightness first, detail (VGG) from level 3, local
    # structure (SSIM) only at full resolution.
    "pynet": _per_level(
        {"mse": 100}, {"mse": 100, "vgg": 1}, {"mse": 50, "vgg": 1}, {"mse": 20, "vgg": 1, "ssim": 20}
    ),
    # The LAB loss in MSE's place. Levels 5 and 4 keep its colour part only: their outputs (H/16, H/8) are
    # too small for a structural term to mean much, as the reference keeps them MSE-only.
    "lab": _per_level({"lab_l1": 100}, {"lab": 100}, {"lab": 50}, {"lab": 20}),
    # ... plus the reference's VGG term where the reference has it: the two presets differ by VGG alone.
    "lab_vgg": _per_level(
        {"lab_l1": 100}, {"lab": 100, "vgg": 1}, {"lab": 50, "vgg": 1}, {"lab": 20, "vgg": 1}
    ),
    # The LAB loss next to MSE rather than in its place, as the reference keeps MSE at every level. Short runs
    # need the anchor: trained for a few hundred steps, a level's new layers fitted to "lab" alone drift to
    # grey (its MS-SSIM weighs luminance 4:1) and to "lab_l1" alone stay flat (docs/design.md, note 6 of
    # 'Why the quick PyNET was a flat grey image').
    "lab_mse": _per_level(
        {"lab_l1": 100}, {"mse": 100, "lab": 20}, {"mse": 100, "lab": 20}, {"mse": 100, "lab": 20}
    ),
}


class LossSpecError(ValueError):
    """A --loss value that names no preset or has a bad term or weight; the message says which."""


@dataclass(frozen=True)
class LossSpec:
    """A resolved --loss: the weights of each term at each level."""

    name: str
    per_level: Mapping[int, Weights]

    def weights(self, level: int) -> dict[str, float]:
        check_level(level)
        return dict(self.per_level[level])

    @property
    def uses_vgg(self) -> bool:
        return any(weights.get("vgg", 0) > 0 for weights in self.per_level.values())


def parse_loss(spec: str) -> LossSpec:
    """A preset name, or ``term=weight,...`` applied at every level."""
    spec = spec.strip()
    if spec in PRESETS:
        return LossSpec(spec, PRESETS[spec])
    if "=" not in spec:
        raise LossSpecError(
            f"--loss {spec!r}: no such preset{_did_you_mean(spec, [*PRESETS, *TERMS])}; "
            f'presets: {", ".join(PRESETS)}, or terms as "mse=20,vgg=1" ({", ".join(TERMS)})'
        )
    weights: dict[str, float] = {}
    for item in spec.split(","):
        term, _, value = item.partition("=")
        term = term.strip()
        if term not in TERMS:
            raise LossSpecError(
                f"--loss {spec!r}: unknown term {term!r}{_did_you_mean(term, TERMS)}; "
                f"terms: {', '.join(TERMS)}"
            )
        if term in weights:
            raise LossSpecError(f"--loss {spec!r}: term {term!r} is given twice")
        try:
            weight = float(value)
        except ValueError:
            raise LossSpecError(
                f"--loss {spec!r}: the weight of {term!r} must be a number, got {value!r}"
            ) from None
        if not (math.isfinite(weight) and weight > 0):
            raise LossSpecError(
                f"--loss {spec!r}: the weight of {term!r} must be positive and finite, got {value!r}"
            )
        weights[term] = weight
    return LossSpec(spec, {level: weights for level in LEVELS})


def _did_you_mean(word: str, choices) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def check_loss_fits(weights: Weights, height: int, width: int, where: str) -> None:
    """Structural terms need outputs at least one SSIM window wide; say so before training starts.

    ``where`` says which output this is, e.g. "level 5 at --patch 128".
    """
    structural = [term for term in weights if term in ("ssim", "ms_ssim", "lab")]
    if structural and min(height, width) < metrics.SSIM_FILTER_SIZE:
        raise LossSpecError(
            f"loss term(s) {', '.join(structural)} need outputs of at least {metrics.SSIM_FILTER_SIZE}x"
            f"{metrics.SSIM_FILTER_SIZE} px; {where} gives {height}x{width}: use a larger --patch, or a "
            "loss without SSIM terms at this level"
        )


class Loss:
    """A weighted sum of terms; called on (target, prediction) batches, returns (total, each term).

    Each term is returned unweighted, so training logs show what each one measures.
    """

    def __init__(
        self,
        weights: Weights,
        *,
        vgg: Callable[[tf.Tensor], tf.Tensor] | None = None,
        lab_alpha: float = LAB_ALPHA,
    ) -> None:
        unknown = set(weights) - set(TERMS)
        if unknown:
            raise LossSpecError(f"unknown loss term(s) {sorted(unknown)}; terms: {', '.join(TERMS)}")
        if weights.get("vgg", 0) > 0 and vgg is None:
            raise LossSpecError("the loss has a vgg term but no VGG-19 feature model was given")
        if not 0.0 <= lab_alpha <= 1.0:
            raise LossSpecError(f"lab alpha must be in [0, 1], got {lab_alpha}")
        self.weights = dict(weights)
        self.vgg = vgg
        self.lab_alpha = lab_alpha

    def __call__(self, target: tf.Tensor, prediction: tf.Tensor) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
        target = tf.cast(target, tf.float32)
        prediction = tf.cast(prediction, tf.float32)
        lab = _LabPair(target, prediction) if {"lab", "lab_l1"} & set(self.weights) else None
        terms = {}
        for term in self.weights:
            if term == "mse":
                terms[term] = tf.reduce_mean(tf.square(prediction - target))
            elif term == "vgg":
                terms[term] = tf.reduce_mean(tf.square(self.vgg(prediction) - self.vgg(target)))
            elif term == "ssim":
                terms[term] = 1.0 - tf.reduce_mean(metrics.ssim(target, prediction))
            elif term == "ms_ssim":
                terms[term] = 1.0 - tf.reduce_mean(metrics.ms_ssim(target, prediction))
            elif term == "lab_l1":
                terms[term] = lab.l1()
            elif term == "lab":
                alpha = self.lab_alpha
                terms[term] = (1.0 - alpha) * lab.l1() + alpha * (1.0 - lab.luminance_ms_ssim())
        total = tf.add_n([weight * terms[term] for term, weight in self.weights.items()])
        return total, terms


TERMS: tuple[str, ...] = ("mse", "vgg", "ssim", "ms_ssim", "lab_l1", "lab")


class _LabPair:
    """Both images in Lab / 100, converted once for the terms that share them."""

    def __init__(self, target: tf.Tensor, prediction: tf.Tensor) -> None:
        self.target = rgb_to_lab(target) / LAB_SCALE
        self.prediction = rgb_to_lab(prediction) / LAB_SCALE

    def l1(self) -> tf.Tensor:
        return tf.reduce_mean(tf.abs(self.prediction - self.target))

    def luminance_ms_ssim(self) -> tf.Tensor:
        return tf.reduce_mean(metrics.ms_ssim(self.target[..., :1], self.prediction[..., :1]))
