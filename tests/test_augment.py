"""Bayer-preserving rotations/flips against NumPy, and per-level targets against PIL's bicubic resize."""

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from pynet_tf.data.augment import bayer_dihedral, target_for_level
from pynet_tf.nets.pynet.levels import LEVELS, output_size

H = W = 6  # packed output size; inputs carry one extra quad


def _pair(rng):
    """A packed image whose planes live in disjoint value ranges (R < Gr < Gb < B), and a target that is the
    mosaic itself in its three channels, so alignment between the two is checkable pixel by pixel."""
    packed = (rng.uniform(size=(H + 1, W + 1, 4)) + np.arange(4)) / 4
    mosaic = tf.nn.depth_to_space(packed[None], 2)[0].numpy()
    return packed.astype(np.float32), np.repeat(mosaic, 3, axis=-1).astype(np.float32)


@pytest.mark.parametrize("flip", [False, True])
@pytest.mark.parametrize("rotations", [0, 1, 2, 3])
def test_dihedral_matches_numpy_and_keeps_rggb(rotations, flip):
    packed, target = _pair(np.random.default_rng(rotations + 4 * flip))
    out_packed, out_target = (t.numpy() for t in bayer_dihedral(packed, target, rotations, flip))
    assert out_packed.shape == (H, W, 4) and out_target.shape == (2 * H, 2 * W, 3)

    # independent reference: transform the mosaic with NumPy, then crop where red (plane 0) lands
    mosaic = target[..., 0]
    moved = np.rot90(np.fliplr(mosaic) if flip else mosaic, rotations)
    ids = np.tile([[0, 1], [2, 3]], (H + 1, W + 1))  # which CFA position each mosaic pixel is
    plane = np.rot90(np.fliplr(ids) if flip else ids, rotations)
    top, left = np.argwhere(plane[:2, :2] == 0)[0]
    expected = moved[top : top + 2 * H, left : left + 2 * W]
    np.testing.assert_array_equal(out_target[..., 0], expected)  # exact: pure data movement
    np.testing.assert_array_equal(tf.nn.depth_to_space(out_packed[None], 2)[0, ..., 0].numpy(), expected)
    # red and blue planes stay red and blue; the greens stay green
    assert out_packed[..., 0].max() < 0.25 and out_packed[..., 3].min() >= 0.75
    assert 0.25 <= out_packed[..., 1:3].min() and out_packed[..., 1:3].max() < 0.75


def test_identity_is_a_plain_crop():
    packed, target = _pair(np.random.default_rng(9))
    out_packed, out_target = bayer_dihedral(packed, target, 0, False)
    np.testing.assert_array_equal(out_packed.numpy(), packed[:H, :W])
    np.testing.assert_array_equal(out_target.numpy(), target[: 2 * H, : 2 * W])


def test_works_inside_tf_data_graph():
    packed, target = _pair(np.random.default_rng(2))
    dataset = tf.data.Dataset.from_tensors((packed, target)).map(
        lambda p, t: bayer_dihedral(p, t, tf.constant(3), tf.constant(True))
    )
    got_packed, got_target = next(iter(dataset))
    eager_packed, eager_target = bayer_dihedral(packed, target, 3, True)
    np.testing.assert_array_equal(got_packed.numpy(), eager_packed.numpy())
    np.testing.assert_array_equal(got_target.numpy(), eager_target.numpy())


@pytest.mark.parametrize("level", LEVELS)
def test_target_sizes_follow_the_model(level):
    target = tf.zeros((2 * 32, 2 * 48, 3))
    assert tuple(target_for_level(target, level).shape[:2]) == output_size(level, 32, 48)


def test_level_targets_match_pil_bicubic():
    """The reference resized DSLR targets with PIL's bicubic filter; tf's antialiased bicubic is the same
    filter (Keys, a = -0.5, support scaled by the factor): measured 1.8e-7 apart, float32 rounding."""
    rng = np.random.default_rng(0)
    smooth = tf.image.resize(rng.uniform(size=(1, 16, 16, 3)), (128, 128), method="bilinear")[0].numpy()
    for level in (1, 3):
        ours = target_for_level(tf.constant(smooth, tf.float32), level).numpy()
        size = ours.shape[1], ours.shape[0]
        pil = np.stack(
            [
                np.asarray(
                    Image.fromarray(smooth[..., c].astype(np.float32), "F").resize(size, Image.BICUBIC)
                )
                for c in range(3)
            ],
            axis=-1,
        )
        np.testing.assert_allclose(ours, np.clip(pil, 0, 1), atol=1e-6, rtol=0)
