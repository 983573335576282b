"""Loss terms against independent computations, their gradients where images are degenerate, and --loss parsing."""

import numpy as np
import pytest
import skimage.color
import tensorflow as tf

from pynet_tf import losses, metrics
from pynet_tf.nets.pynet.levels import LEVELS

SIDE = 48  # room for 3 MS-SSIM scales: small enough to be fast, large enough to exercise the multi-scale path
# ScaledTanh lets predictions reach [-0.08, 1.08]: every term must stay differentiable a little outside [0, 1].
OUTPUT_RANGE = (-0.08, 1.08)
# scikit-image's sRGB -> XYZ matrix differs from ours by up to 0.006 ΔE (tests/test_color.py); in Lab / 100
# that is 6e-5 per pixel at most, and float32 adds ~1e-6.
LAB_L1_TOLERANCE = 1e-4
# float32 sums over a 2x48x48x3 batch against float64 numpy: relative error a few 1e-7.
FLOAT32_RTOL = 1e-5
# 1 - (M)S-SSIM of values near 1: float32 resolves 1.2e-7 there, and the two computations sum in other orders.
ONE_MINUS_ATOL = 1e-6


def images(seed: int, batch: int = 2, side: int = SIDE) -> np.ndarray:
    return np.random.default_rng(seed).random((batch, side, side, 3)).astype(np.float32)


def correlated_pair(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A smooth target and a noisy prediction of it: every MS-SSIM scale term is well above its 1e-6 floor."""
    target = tf.image.resize(images(seed, side=12), (SIDE, SIDE), method="bicubic").numpy().clip(0, 1)
    noise = 0.05 * np.random.default_rng(seed + 1).standard_normal(target.shape)
    return target, (target + noise).clip(0, 1).astype(np.float32)


def feature_stub(x: tf.Tensor) -> tf.Tensor:
    """Stands in for VGG where only the loss arithmetic is under test (tests/test_vgg.py checks VGG itself)."""
    return tf.nn.avg_pool2d(tf.concat([x, x * x], axis=-1), 2, 2, "VALID")


def single_term(term: str, **kwargs) -> losses.Loss:
    return losses.Loss({term: 1.0}, vgg=feature_stub if term == "vgg" else None, **kwargs)


@pytest.mark.parametrize("term", losses.TERMS)
def test_each_term_is_zero_on_identical_images_and_positive_otherwise(term):
    target, prediction = correlated_pair()
    loss = single_term(term)
    same, _ = loss(target, target)
    different, _ = loss(target, prediction)
    assert abs(float(same)) < 1e-6  # 1 - SSIM of identical images is 0 up to float32 rounding of 1
    assert float(different) > 1e-4  # noise of std 0.05: MSE ~2.5e-3, 2x2-pooled stub features ~7e-4


@pytest.mark.parametrize("term", losses.TERMS)
@pytest.mark.parametrize(
    "case",
    ["constant", "black", "white", "below_0_and_above_1", "unrelated"],
)
def test_gradients_are_finite_on_degenerate_and_unrelated_images(term, case):
    """Constant and saturated images have zero variance (SSIM's 0/0 without its constants), Lab has a cube root
    and a knee, MS-SSIM fractional powers of 0: none may produce a NaN or an infinity in the gradient."""
    target = images(1)
    prediction = {
        "constant": np.full_like(target, 0.5),
        "black": np.zeros_like(target),
        "white": np.ones_like(target),
        "below_0_and_above_1": np.where(images(2) > 0.5, OUTPUT_RANGE[1], OUTPUT_RANGE[0]).astype(np.float32),
        "unrelated": images(3),
    }[case]
    prediction = tf.Variable(prediction)
    with tf.GradientTape() as tape:
        total, _ = single_term(term)(target, prediction)
    gradient = tape.gradient(total, prediction).numpy()
    assert np.isfinite(float(total))
    assert np.isfinite(gradient).all()


def test_mse_and_lab_l1_match_numpy_and_scikit_image():
    target, prediction = correlated_pair()
    _, terms = losses.Loss({"mse": 1.0, "lab_l1": 1.0})(target, prediction)
    np.testing.assert_allclose(
        terms["mse"], np.mean((prediction.astype(np.float64) - target) ** 2), rtol=FLOAT32_RTOL
    )
    lab_l1 = (
        np.mean(np.abs(skimage.color.rgb2lab(prediction) - skimage.color.rgb2lab(target))) / losses.LAB_SCALE
    )
    np.testing.assert_allclose(terms["lab_l1"], lab_l1, atol=LAB_L1_TOLERANCE)


def test_ssim_terms_are_one_minus_the_metrics():
    target, prediction = correlated_pair()
    _, terms = losses.Loss({"ssim": 1.0, "ms_ssim": 1.0})(target, prediction)
    np.testing.assert_allclose(
        terms["ssim"], 1 - np.mean(metrics.ssim(target, prediction)), atol=ONE_MINUS_ATOL
    )
    reference = tf.image.ssim_multiscale(
        target,
        prediction,
        1.0,
        power_factors=metrics.ms_ssim_power_factors(metrics.ms_ssim_scales(SIDE, SIDE)),
    )
    np.testing.assert_allclose(terms["ms_ssim"], 1 - np.mean(reference), atol=ONE_MINUS_ATOL)


def test_vgg_term_is_the_references_normalised_l2_loss():
    """The reference PyNET: 2 * tf.nn.l2_loss(features difference) / number of feature values."""
    target, prediction = correlated_pair()
    _, terms = single_term("vgg")(target, prediction)
    difference = feature_stub(prediction) - feature_stub(target)
    reference = 2 * tf.nn.l2_loss(difference) / tf.cast(tf.size(difference), tf.float32)
    np.testing.assert_allclose(terms["vgg"], reference, rtol=FLOAT32_RTOL)


def test_lab_alpha_blends_its_colour_and_structure_parts():
    """α = 0 is the Lab L1 alone; α = 1 is 1 - MS-SSIM of the lightness channels (checked through scikit-image's
    Lab and tf.image's MS-SSIM); between, the linear blend."""
    target, prediction = correlated_pair()

    def lab(alpha: float) -> float:
        return float(single_term("lab", lab_alpha=alpha)(target, prediction)[1]["lab"])

    _, terms = losses.Loss({"lab_l1": 1.0})(target, prediction)
    np.testing.assert_allclose(lab(0.0), terms["lab_l1"], rtol=1e-6)

    def lightness(rgb: np.ndarray) -> np.ndarray:
        return (skimage.color.rgb2lab(rgb)[..., :1] / losses.LAB_SCALE).astype(np.float32)

    scales = metrics.ms_ssim_scales(SIDE, SIDE)
    reference = tf.image.ssim_multiscale(
        lightness(target), lightness(prediction), 1.0, power_factors=metrics.ms_ssim_power_factors(scales)
    )
    # Lightness from scikit-image differs from ours by <= 2e-4 (of 100); MS-SSIM moves by less than that.
    np.testing.assert_allclose(lab(1.0), 1 - np.mean(reference), atol=1e-5)

    alpha = losses.LAB_ALPHA
    np.testing.assert_allclose(lab(alpha), (1 - alpha) * lab(0.0) + alpha * lab(1.0), rtol=1e-5)


def test_total_is_the_weighted_sum_and_terms_are_reported_unweighted():
    target, prediction = correlated_pair()
    weights = {"mse": 20.0, "vgg": 1.0, "ssim": 20.0}
    total, terms = losses.Loss(weights, vgg=feature_stub)(target, prediction)
    assert set(terms) == set(weights)
    np.testing.assert_allclose(total, sum(weights[t] * float(terms[t]) for t in weights), rtol=1e-6)
    _, alone = single_term("ssim")(target, prediction)
    np.testing.assert_allclose(terms["ssim"], alone["ssim"], rtol=1e-6)


def test_pynet_preset_is_the_reference_schedule():
    """train_model.py of the reference PyNET: MSE first, VGG from level 3, SSIM at full resolution only."""
    spec = losses.parse_loss("pynet")
    assert {level: spec.weights(level) for level in LEVELS} == {
        5: {"mse": 100},
        4: {"mse": 100},
        3: {"mse": 100, "vgg": 1},
        2: {"mse": 100, "vgg": 1},
        1: {"mse": 50, "vgg": 1},
        0: {"mse": 20, "vgg": 1, "ssim": 20},
    }
    assert spec.uses_vgg


def test_lab_vgg_differs_from_lab_by_the_vgg_term_alone():
    lab, lab_vgg = losses.parse_loss("lab"), losses.parse_loss("lab_vgg")
    assert not lab.uses_vgg and lab_vgg.uses_vgg
    for level in LEVELS:
        with_vgg = lab_vgg.weights(level)
        assert {term: w for term, w in with_vgg.items() if term != "vgg"} == lab.weights(level)
        assert with_vgg.get("vgg") == (1 if level <= 3 else None)


def test_lab_mse_adds_mse_wherever_the_lab_loss_judges_structure():
    lab, lab_mse = losses.parse_loss("lab"), losses.parse_loss("lab_mse")
    assert not lab_mse.uses_vgg
    for level in LEVELS:
        weights = lab_mse.weights(level)
        if "lab" in lab.weights(level):
            assert weights == {"mse": 100, "lab": 20}
        else:  # the coarse levels: the Lab colour term alone, as in "lab"
            assert weights == lab.weights(level) == {"lab_l1": 100}


def test_term_list_applies_at_every_level():
    spec = losses.parse_loss(" mse=20, vgg=1 ,ssim=20 ")
    assert all(spec.weights(level) == {"mse": 20.0, "vgg": 1.0, "ssim": 20.0} for level in LEVELS)
    with pytest.raises(ValueError, match="0..5"):
        spec.weights(6)


@pytest.mark.parametrize(
    "spec, message",
    [
        ("lab-vgg", "no such preset.*did you mean 'lab_vgg'"),
        ("mse=1,vgq=2", "unknown term 'vgq'.*did you mean 'vgg'"),
        ("mse=one", "weight of 'mse' must be a number, got 'one'"),
        ("mse=0", "must be positive"),
        ("mse=nan", "must be positive and finite"),
        ("mse=1,mse=2", "given twice"),
    ],
)
def test_bad_loss_specs_name_the_problem(spec, message):
    with pytest.raises(losses.LossSpecError, match=message):
        losses.parse_loss(spec)


def test_a_vgg_term_without_features_and_a_bad_alpha_are_refused():
    with pytest.raises(losses.LossSpecError, match="no VGG-19 feature model"):
        losses.Loss({"vgg": 1.0})
    with pytest.raises(losses.LossSpecError, match=r"alpha must be in \[0, 1\]"):
        losses.Loss({"lab": 1.0}, lab_alpha=1.5)


def test_structural_terms_need_outputs_one_window_wide():
    losses.check_loss_fits({"mse": 1, "ssim": 1}, 11, 64, "level 3")
    losses.check_loss_fits({"mse": 1}, 4, 4, "level 5")
    with pytest.raises(losses.LossSpecError, match=r"ssim.*level 5 at --patch 64 gives 4x4.*larger --patch"):
        losses.check_loss_fits({"mse": 1, "ssim": 1}, 4, 4, "level 5 at --patch 64")
