"""Tiled inference (pynet_tf/tiling.py): exact where the model is local, weights that sum to 1, any size."""

import itertools
from fractions import Fraction

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from pynet_tf.tiling import (
    axis_plan,
    axis_starts,
    axis_weights,
    check_tiling,
    measure_scale,
    plan_tiles,
    run_tiled,
)

# Blending multiplies each tile by weights in [0, 1] that sum to 1 in float32: a few ulps of the output.
BLEND_ATOL = 1e-6


class DepthToSpace(keras.layers.Layer):
    def call(self, x):
        return tf.nn.depth_to_space(x, 2)


def pointwise_model() -> keras.Model:
    """A 1x1 conv to 12 maps, then depth_to_space: packed (h, w, 4) -> (2h, 2w, 3), no spatial context."""
    inputs = keras.Input((None, None, 4))
    x = keras.layers.Conv2D(12, 1, kernel_initializer="glorot_uniform", bias_initializer="random_normal")(
        inputs
    )
    return keras.Model(inputs, DepthToSpace()(x))


def local_model(convs: int = 3) -> keras.Model:
    """``convs`` 3x3 convs (receptive-field radius ``convs`` packed pixels), then depth_to_space to 2x."""
    inputs = keras.Input((None, None, 4))
    x = inputs
    for _ in range(convs - 1):
        x = keras.layers.Conv2D(8, 3, padding="same", activation="tanh", kernel_initializer="glorot_uniform")(
            x
        )
    x = keras.layers.Conv2D(12, 3, padding="same", kernel_initializer="glorot_uniform")(x)
    return keras.Model(inputs, DepthToSpace()(x))


def _whole(model, packed):
    return run_tiled(model, packed, tile=None)


def _image(height, width, seed=0):
    return np.random.default_rng(seed).random((height, width, 4), dtype=np.float32)


def test_one_tile_is_the_whole_image_bit_for_bit():
    model = local_model()
    packed = _image(40, 56)
    whole = model(np.pad(packed, ((0, 8), (0, 8), (0, 0)), mode="reflect")[None])[0].numpy()[:80, :112]
    np.testing.assert_array_equal(run_tiled(model, packed, tile=64, overlap=16), whole)
    np.testing.assert_array_equal(_whole(model, packed), whole)


def test_pointwise_model_is_exact_for_any_tiling():
    model = pointwise_model()
    packed = _image(100, 150)
    whole = _whole(model, packed)
    for tile, overlap in [(32, 0), (32, 8), (48, 16), (64, 32)]:
        tiled = run_tiled(model, packed, tile=tile, overlap=overlap)
        np.testing.assert_allclose(
            tiled, whole, atol=BLEND_ATOL, rtol=0, err_msg=f"tile {tile}, overlap {overlap}"
        )


@pytest.mark.parametrize("size", [(64, 64), (70, 131), (33, 200), (17, 17), (5, 9)])
def test_local_model_is_exact_when_the_guard_covers_its_receptive_field(size):
    model = local_model(convs=3)  # radius 3 packed pixels
    packed = _image(*size, seed=sum(size))
    whole = _whole(model, packed)
    assert whole.shape == (2 * size[0], 2 * size[1], 3)
    for tile, overlap, guard in [(32, 12, 3), (32, 16, 4), (48, 24, 6)]:
        tiled = run_tiled(model, packed, tile=tile, overlap=overlap, guard=guard)
        np.testing.assert_allclose(tiled, whole, atol=BLEND_ATOL, rtol=0, err_msg=f"{tile}/{overlap}/{guard}")


def test_a_guard_smaller_than_the_receptive_field_is_not_exact():
    """The property above is not vacuous: tile edges do differ from the whole image."""
    model = local_model(convs=3)
    packed = _image(64, 96)
    tiled = run_tiled(model, packed, tile=32, overlap=8, guard=0)
    assert np.abs(tiled - _whole(model, packed)).max() > 1e-3


def test_odd_sizes_are_padded_and_cropped_back():
    model = pointwise_model()
    for height, width in [(1, 1), (3, 5), (15, 17), (31, 47)]:
        packed = _image(height, width)
        out = run_tiled(model, packed, tile=16, overlap=0)
        assert out.shape == (2 * height, 2 * width, 3)
        # pointwise: each output quad is the model of its own packed pixel, padding or not
        reference = model(packed[None])[0].numpy()
        np.testing.assert_allclose(out, reference, atol=BLEND_ATOL, rtol=0)


@pytest.mark.parametrize("factor", [1, 2, 4])
def test_downscaling_models_keep_their_ratio(factor):
    """A model that shrinks (like PyNET level L > 0) is tiled with the ratio it has."""
    inputs = keras.Input((None, None, 4))
    out = keras.layers.AveragePooling2D(factor)(inputs) if factor > 1 else inputs
    model = keras.Model(inputs, out)
    packed = _image(96, 160)
    assert measure_scale(lambda x: model(x).numpy())[0] == Fraction(1, factor)
    tiled = run_tiled(model, packed, tile=48, overlap=16)
    assert tiled.shape == (96 // factor, 160 // factor, 4)
    np.testing.assert_allclose(tiled, _whole(model, packed), atol=BLEND_ATOL, rtol=0)


def test_scale_can_be_passed_and_a_wrong_one_is_refused():
    model = pointwise_model()
    packed = _image(32, 32)
    assert run_tiled(model, packed, tile=16, overlap=0, scale=2).shape == (64, 64, 3)
    with pytest.raises(ValueError, match="into 32x32, not 16x16"):
        run_tiled(model, packed, tile=16, overlap=0, scale=1)


@pytest.mark.parametrize(
    "length,tile,overlap",
    [
        (512, 128, 32),
        (1504, 512, 64),
        (2000, 512, 48),
        (160, 64, 0),
        (48, 64, 16),
        (64, 64, 16),
        (80, 64, 16),
        (4000, 1024, 128),
    ],
)
def test_grid_covers_the_axis_with_at_least_the_overlap(length, tile, overlap):
    size, starts = axis_plan(length, tile, overlap)
    assert size <= tile and size % 16 == 0
    assert starts[0] == 0 and starts[-1] + size == length
    assert all(start % 16 == 0 for start in starts)
    assert all(a + size - b >= overlap for a, b in itertools.pairwise(starts))
    assert list(starts) == sorted(set(starts))
    # no fewer tiles would do with tiles of the full size
    if len(starts) > 1:
        assert (len(starts) - 1) * tile - (len(starts) - 2) * overlap < length


@pytest.mark.parametrize("scale", [Fraction(2), Fraction(1), Fraction(1, 4)])
@pytest.mark.parametrize(
    "length,tile,overlap,guard",
    [(512, 128, 32, 8), (1504, 512, 64, 16), (336, 96, 48, 0), (160, 64, 0, 0), (2000, 512, 64, 31)],
)
def test_blending_weights_sum_to_one(length, tile, overlap, guard, scale):
    size, starts = axis_plan(length, tile, overlap)
    weights = axis_weights(starts, size, length, overlap, guard, scale)
    total = np.zeros(int(length * scale))
    for start, weight in zip(starts, weights):
        assert weight.shape == (int(size * scale),)
        assert np.all(weight >= 0) and np.all(weight <= 1)
        total[int(start * scale) : int(start * scale) + len(weight)] += weight
    np.testing.assert_allclose(total, 1.0, atol=1e-12)
    # and in 2-D, as run_tiled applies them: the separable products sum to 1 too
    grid = plan_tiles(length, length // 2 + 16, tile, overlap)
    wy = axis_weights(grid.starts_y, grid.tile[0], grid.padded[0], overlap, guard, Fraction(1))
    wx = axis_weights(grid.starts_x, grid.tile[1], grid.padded[1], overlap, guard, Fraction(1))
    plane = np.zeros(grid.padded)
    for y0, x0, y1, x1 in grid.boxes():
        plane[y0:y1, x0:x1] += np.outer(wy[grid.starts_y.index(y0)], wx[grid.starts_x.index(x0)])
    np.testing.assert_allclose(plane, 1.0, atol=1e-12)


def test_guard_band_has_zero_weight_and_the_fade_is_smooth():
    starts = axis_starts(256, 128, 64)
    assert starts == (0, 64, 128) and axis_plan(256, 128, 64)[0] == 128
    weights = axis_weights(starts, 128, 256, 64, 16, Fraction(1))
    middle = weights[1]
    assert np.all(middle[:16] == 0) and np.all(middle[-16:] == 0)
    assert np.all(np.diff(middle[:64]) >= 0)  # fades in monotonically
    assert np.abs(np.diff(middle)).max() < 0.1  # no jumps: a 32-pixel raised cosine


def test_bad_settings_are_refused_by_name():
    for tile, overlap, guard, match in [
        (100, 16, None, "multiple of 16"),
        (0, 0, None, "multiple of 16"),
        (32, 24, None, "overlap must be"),
        (64, -1, None, "overlap must be"),
        (64, 16, 8, "guard must be"),
    ]:
        with pytest.raises(ValueError, match=match):
            check_tiling(tile, overlap, guard)
    with pytest.raises(ValueError, match="one image"):
        run_tiled(pointwise_model(), np.zeros((1, 16, 16, 4), np.float32))


def test_progress_bar_counts_tiles(capsys):
    model = pointwise_model()
    assert len(plan_tiles(64, 64, 32, 16)) == 9
    run_tiled(model, _image(64, 64), tile=32, overlap=16, progress="tiles")
    assert "tiles" in capsys.readouterr().err
