"""Alignment numerics against known answers: synthetic pairs (``pynet_tf.alignment.synthetic``) whose
homography and per-cell local shifts were chosen here, photos re-exposed and colour-shifted, RAW made by
``unprocess`` from the unwarped photo."""

import numpy as np
import pytest

from pynet_tf.alignment import register
from pynet_tf.alignment.patches import AlignOptions, align_pair
from pynet_tf.alignment.synthetic import corner_error, make_pair, sample_photo
from pynet_tf.data import isp

# The targets: the global fit within half a pixel at the RAW frame's corners, each kept patch's
# local correction within a quarter pixel.
GLOBAL_TOLERANCE_PX = 0.5
LOCAL_TOLERANCE_PX = 0.25
PATCH = 128
SAMPLES = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry")


@pytest.mark.parametrize("name", SAMPLES)
def test_the_global_fit_finds_a_known_homography_within_half_a_pixel(name):
    pair = make_pair(sample_photo(name), seed=3, scale=1.1, amplitude=0.0, noise=True)
    reference = register.luminance(isp.process_raw(pair.raw).numpy())
    fit = register.fit_global(reference, register.luminance(pair.photo))
    height, width = reference.shape
    assert corner_error(fit.homography, pair.homography, width, height) <= GLOBAL_TOLERANCE_PX
    assert fit.inliers >= register.MIN_INLIERS and fit.reprojection_px < 1.0
    assert fit.photo_scale == pytest.approx(1.1, rel=0.06)  # random_homography's zoom is scale x [0.95, 1.05]


@pytest.mark.parametrize("name", SAMPLES)
def test_each_patch_recovers_its_local_shift_within_a_quarter_pixel(name):
    """Shifts of up to 1.5 px per 128-px cell, which no homography follows: the global fit alone is off by
    more than the tolerance on most patches, every refined patch is within it (flat patches keep the global
    fit, and at most a quarter of the patches are flat or dropped)."""
    pair = make_pair(sample_photo(name), seed=3, scale=1.1, amplitude=1.5, cell=PATCH)
    alignment = align_pair(pair.raw, pair.photo, AlignOptions(patch=PATCH))
    inverse = np.linalg.inv(alignment.fit.homography)
    inside = [patch for patch in alignment.patches if patch.dropped != "outside the photo"]
    shifted = [patch for patch in inside if patch.dropped is None and patch.shift is not None]
    assert len(inside) >= 2 and len(shifted) >= 0.75 * len(inside), [patch.dropped for patch in inside]
    global_only, refined = [], []
    for patch in shifted:
        centre = np.array([[patch.left + (PATCH - 1) / 2, patch.top + (PATCH - 1) / 2]])
        wanted = register.project(inverse, pair.truth(centre))[0] - centre[0]  # in RAW pixels
        global_only.append(np.linalg.norm(wanted))
        refined.append(np.linalg.norm(wanted - np.array(patch.shift)))
    assert max(refined) <= LOCAL_TOLERANCE_PX, refined
    assert np.median(global_only) > 2 * LOCAL_TOLERANCE_PX, global_only


@pytest.mark.parametrize("name", ("astronaut", "immunohistochemistry"))
def test_patches_with_an_object_in_one_view_only_are_dropped(name):
    """A textured square pasted into the photo alone: every patch holding a quarter of a check cell of it
    or more is dropped for low gradient agreement; the patches away from it are kept."""
    pair = make_pair(sample_photo(name), seed=5, scale=1.1, amplitude=0.5, cell=PATCH // 2, paste=True)
    alignment = align_pair(pair.raw, pair.photo, AlignOptions(patch=PATCH, stride=PATCH // 2))
    left, top, right, bottom = pair.pasted
    touching, clear = [], []
    for patch in alignment.patches:
        if patch.dropped == "outside the photo":
            continue
        width = max(0, min(patch.left + PATCH, right) - max(patch.left, left))
        height = max(0, min(patch.top + PATCH, bottom) - max(patch.top, top))
        if width * height >= (64 * 64) // 4:
            touching.append(patch)
        elif width * height == 0:
            clear.append(patch)
    assert touching and all(patch.dropped for patch in touching), [
        (p.left, p.top, p.agreement) for p in touching
    ]
    assert all("gradient agreement" in patch.dropped or "shift" in patch.dropped for patch in touching)
    assert clear and sum(patch.dropped is None for patch in clear) >= 0.9 * len(clear)


def test_a_photo_of_another_scene_is_refused_for_too_few_matches():
    pair = make_pair(sample_photo("astronaut"), seed=1, amplitude=0.0)
    reference = register.luminance(isp.process_raw(pair.raw).numpy())
    with pytest.raises(register.AlignmentError, match="same scene"):
        register.fit_global(reference, register.luminance(sample_photo("coffee")))


def test_a_photo_with_too_few_pixels_for_the_raw_is_refused():
    pair = make_pair(sample_photo("astronaut"), seed=1, scale=0.45, amplitude=0.0)
    reference = register.luminance(isp.process_raw(pair.raw).numpy())
    with pytest.raises(register.AlignmentError, match=r"0\.4\d pixels per RAW pixel .* full-resolution"):
        register.fit_global(reference, register.luminance(pair.photo))


@pytest.mark.parametrize(
    ("homography", "message"),
    [
        (np.diag([-1.0, 1.0, 1.0]) + np.array([[0, 0, 511], [0, 0, 0], [0, 0, 0]]), "mirrors or folds"),
        (np.diag([4.0, 1.0, 1.0]), "stretches the RAW's frame 4.0x"),
        (np.array([[1.0, 0, 0], [0, 1, 0], [-0.004, 0, 1]]), "mirrors or folds"),  # horizon inside the frame
    ],
)
def test_degenerate_homographies_are_refused(homography, message):
    with pytest.raises(register.AlignmentError, match=message):
        register._check_geometry(homography, 512, 512)


def test_gradient_agreement_is_one_for_the_same_view_and_none_for_flat_ones():
    """The score's two ends: identical textured views agree exactly; views flat in every cell (below three
    times their noise) give None, not a low score."""
    rng = np.random.default_rng(0)
    texture = register.luminance(sample_photo("astronaut")[:128, :128])
    assert register.gradient_agreement(texture, texture, 2) == pytest.approx(1.0, abs=1e-6)
    flat = 0.5 + rng.normal(0, 0.01, (128, 128)).astype(np.float32)
    assert register.gradient_agreement(flat, flat.copy(), 2) is None
