"""Run an image-to-image model over a packed image of any size in overlapping tiles, with bounded memory.

    out = run_tiled(model, packed, tile=512, overlap=64)       # packed (H, W, 4) -> e.g. RGB (2H, 2W, 3)

The image is reflect-padded at the bottom and right to a multiple of ``multiple`` (16: PyNET's four
poolings) and cut into tiles of at most ``tile`` x ``tile`` (as few as give neighbours at least ``overlap``
packed pixels in common, each as small as that count allows, spread evenly), with sizes and starts on
multiples of ``multiple`` so that every tile sees the pooling grid the whole image would. Each tile goes
through the model alone (batch 1) and is added into one preallocated float32 output with a separable
weight, so the peak memory is one tile's activations plus the output image, whatever the image size.

The weights, per axis and per tile (in input pixels, evaluated at each output pixel's centre):

    weight
      1 |            ________________________
        |          /                          \\
        |         /                            \\
      0 |________/                              \\________
        tile    guard   ramp                ramp   guard   tile
        start  (zero)  (raised cosine)                      end

An interior tile edge (one with a neighbour beyond it; an edge on the image border keeps weight 1) gets
``guard`` pixels of weight 0, where the tile's output is the least like the whole image's (zero padding
inside the model, missing context), then a raised-cosine ramp over ``overlap - 2 * guard`` pixels. The
weights are divided by their sum over tiles (per axis: the tile grid is a product, so this is exact and
needs no full-size weight image), so they sum to 1 everywhere: blending never changes brightness.

Exactness: a model whose output at a pixel depends only on inputs within ``r`` pixels of it (no
normalisation over the image, receptive-field radius ``r``) gives exactly the whole-image output when
``r <= guard`` (float rounding of the blend aside, ~1e-7); with ``tile`` at least the padded image there is
one tile and the result is the whole-image output bit for bit. PyNET is neither: its receptive field spans
hundreds of pixels and instance norm makes every tile see its own statistics; see ``pynet_tf.processing`` for
how far tiled output is from whole-image output and what the project does about it.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

DEFAULT_MULTIPLE = 16
"""Tile sizes and starts are multiples of this (``pynet_tf.nets.pynet.levels.DOWNSAMPLING``: four 2x2 poolings)."""

Model = Callable[[np.ndarray], np.ndarray]
"""Anything that maps a float32 batch (1, h, w, c) to (1, h * scale, w * scale, c_out)."""


@dataclass(frozen=True)
class TileGrid:
    """Where the tiles lie on the padded image, per axis (the grid is a product: every (y, x) pair is a tile)."""

    size: tuple[int, int]
    """The image's (height, width), before padding."""
    padded: tuple[int, int]
    """The padded (height, width): multiples of ``multiple``."""
    tile: tuple[int, int]
    """Each tile's (height, width): at most ``tile``, a multiple of ``multiple`` (see ``axis_plan``)."""
    starts_y: tuple[int, ...]
    starts_x: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.starts_y) * len(self.starts_x)

    def boxes(self):
        """(y0, x0, y1, x1) of every tile in the padded image, row by row."""
        for y0 in self.starts_y:
            for x0 in self.starts_x:
                yield y0, x0, y0 + self.tile[0], x0 + self.tile[1]


def round_up(size: int, multiple: int) -> int:
    return -(-size // multiple) * multiple


def axis_plan(
    length: int, tile: int, overlap: int, multiple: int = DEFAULT_MULTIPLE
) -> tuple[int, tuple[int, ...]]:
    """(tile size, tile starts) along one axis of ``length`` (a multiple of ``multiple``).

    As few tiles as give every pair of neighbours at least ``overlap`` pixels in common, each as small as
    that count allows (a multiple of ``multiple``, at most ``tile``: less overlap is wasted than with tiles
    of ``tile`` pulled back from the far edge), spread evenly with starts on multiples of ``multiple``, the
    first at 0 and the last ending at ``length``.
    """
    if length <= tile:
        return length, (0,)
    if tile - overlap < multiple:
        raise ValueError(
            f"overlap {overlap} leaves tiles of {tile} no room to advance by {multiple} pixels; "
            f"use an overlap of at most {tile - multiple}"
        )
    count = max(2, math.ceil((length - overlap) / (tile - overlap)))
    while True:
        size = min(tile, round_up(math.ceil((length + (count - 1) * overlap) / count), multiple))
        span = (length - size) / multiple  # the last start, in units of `multiple`
        starts = sorted({round(i * span / (count - 1)) * multiple for i in range(count)})
        if all(a + size - b >= overlap for a, b in itertools.pairwise(starts)):
            return size, tuple(starts)
        count += 1


def axis_starts(length: int, tile: int, overlap: int, multiple: int = DEFAULT_MULTIPLE) -> tuple[int, ...]:
    """The tile starts of ``axis_plan``."""
    return axis_plan(length, tile, overlap, multiple)[1]


def plan_tiles(
    height: int, width: int, tile: int, overlap: int, multiple: int = DEFAULT_MULTIPLE
) -> TileGrid:
    """The grid ``run_tiled`` uses for an image of ``height`` x ``width`` packed pixels."""
    check_tiling(tile, overlap, multiple=multiple)
    if height < 1 or width < 1:
        raise ValueError(f"cannot tile an empty image ({height}x{width})")
    padded = (round_up(height, multiple), round_up(width, multiple))
    size_y, starts_y = axis_plan(padded[0], tile, overlap, multiple)
    size_x, starts_x = axis_plan(padded[1], tile, overlap, multiple)
    return TileGrid(
        size=(height, width), padded=padded, tile=(size_y, size_x), starts_y=starts_y, starts_x=starts_x
    )


def check_tiling(tile: int, overlap: int, guard: int | None = None, multiple: int = DEFAULT_MULTIPLE) -> None:
    """Raise ``ValueError`` naming the value and the rule unless these tiling settings can work."""
    if not isinstance(tile, int) or tile < multiple or tile % multiple:
        raise ValueError(f"tile must be a positive multiple of {multiple} packed pixels, got {tile!r}")
    if not isinstance(overlap, int) or overlap < 0 or tile - overlap < multiple:
        raise ValueError(
            f"overlap must be between 0 and tile - {multiple} = {tile - multiple} packed pixels, got {overlap!r}"
        )
    if guard is not None and (guard < 0 or (overlap and 2 * guard >= overlap)):
        raise ValueError(
            f"guard must be at least 0 and less than half the overlap ({overlap}), got {guard!r}"
        )


def default_guard(overlap: int) -> int:
    """A quarter of the overlap on each side is discarded; the middle half is the cross-fade."""
    return overlap // 4


def _ramp(t: np.ndarray) -> np.ndarray:
    """Raised cosine from 0 (t <= 0) to 1 (t >= 1): smooth at both ends."""
    return 0.5 - 0.5 * np.cos(np.pi * np.clip(t, 0.0, 1.0))


def axis_weights(
    starts: tuple[int, ...], tile: int, length: int, overlap: int, guard: int, scale: Fraction
) -> list[np.ndarray]:
    """Each tile's blending weights along one axis, at its output pixels, normalised to sum to 1 over tiles.

    ``length`` is the padded input length; the result for tile ``i`` has ``tile * scale`` entries, for the
    output pixels ``starts[i] * scale`` onwards.
    """
    out_tile = int(tile * scale)
    out_length = int(length * scale)
    ramp = overlap - 2 * guard
    raw = []
    for index, start in enumerate(starts):
        centres = start + (np.arange(out_tile, dtype=np.float64) + 0.5) / float(scale)  # in input pixels
        weight = np.ones(out_tile)
        if index > 0:  # a neighbour before this tile: fade in after the guard
            weight *= _step_or_ramp(centres - start - guard, ramp)
        if index < len(starts) - 1:  # and after it: fade out before the guard
            weight *= _step_or_ramp(start + tile - guard - centres, ramp)
        raw.append(weight)
    total = np.zeros(out_length)
    for start, weight in zip(starts, raw):
        total[int(start * scale) : int(start * scale) + out_tile] += weight
    if not np.all(total > 0):  # cannot happen for grids from axis_starts; a guard against misuse
        raise ValueError(
            f"tiles {starts} of {tile} with overlap {overlap}, guard {guard} leave pixels uncovered"
        )
    return [
        weight / total[int(start * scale) : int(start * scale) + out_tile]
        for start, weight in zip(starts, raw)
    ]


def _step_or_ramp(distance: np.ndarray, ramp: int) -> np.ndarray:
    """0 before ``distance`` 0, 1 after ``ramp``, a raised cosine between (a step when ``ramp`` is 0)."""
    if ramp <= 0:
        return (distance > 0).astype(np.float64)
    return _ramp(distance / ramp)


def measure_scale(model: Model, channels: int = 4, multiple: int = DEFAULT_MULTIPLE) -> tuple[Fraction, int]:
    """(output size / input size, output channels) of ``model``, from one call on a ``multiple``-sized input."""
    probe = np.zeros((1, multiple, multiple, channels), np.float32)
    out = np.asarray(model(probe))
    if out.ndim != 4 or out.shape[0] != 1:
        raise ValueError(f"expected an image-to-image model (1, h, w, c) -> (1, h', w', c'), got {out.shape}")
    if out.shape[1] != out.shape[2]:
        raise ValueError(f"the model scales height and width differently ({probe.shape} -> {out.shape})")
    return Fraction(out.shape[1], multiple), out.shape[3]


def as_model_function(model) -> Model:
    """A Keras model as a numpy-in, numpy-out function, traced once for any height and width; other
    callables are returned as they are."""
    import tensorflow as tf
    import tf_keras as keras

    if not isinstance(model, keras.Model):
        return model
    channels = model.input_shape[-1]
    spec = tf.TensorSpec([1, None, None, channels], tf.float32)

    # One graph for every tile size (graph mode also frees each activation as soon as it is used: about a
    # fifth less peak memory than calling the model eagerly, measured on PyNET level 0).
    @tf.function(input_signature=[spec], autograph=False)
    def infer(batch):
        return model(batch, training=False)

    def call(batch: np.ndarray) -> np.ndarray:
        return infer(tf.convert_to_tensor(batch, tf.float32)).numpy()

    return call


def run_tiled(
    model,
    packed: np.ndarray,
    *,
    tile: int | None = 512,
    overlap: int = 64,
    guard: int | None = None,
    scale: Fraction | float | None = None,
    multiple: int = DEFAULT_MULTIPLE,
    progress: bool | str = False,
) -> np.ndarray:
    """``model`` over ``packed`` (H, W, C) in tiles; returns its float32 output for the whole image.

    ``model`` is a Keras model or a function (1, h, w, C) -> (1, h * scale, w * scale, C_out). ``tile`` and
    ``overlap`` are in input pixels (``tile=None``: the whole image in one call). ``guard`` (default
    ``overlap // 4``) is the width of the zero-weight band at each interior tile edge; ``scale`` (output
    size / input size: 2 for PyNET level 0, 1/2^(L-1) for level L) is measured with one small call when not
    given. ``progress``: show a tqdm bar over the tiles (a string is its label). The output is
    ``ceil(H * scale)`` x ``ceil(W * scale)``: the padding's output is cropped away.
    """
    packed = np.asarray(packed, np.float32)
    if packed.ndim != 3:
        raise ValueError(f"expected one image (H, W, C), got an array of shape {packed.shape}")
    height, width, channels = packed.shape
    function = as_model_function(model)
    if tile is None:
        tile, overlap = round_up(max(height, width), multiple), 0
    guard = default_guard(overlap) if guard is None else guard
    check_tiling(tile, overlap, guard, multiple)
    grid = plan_tiles(height, width, tile, overlap, multiple)

    if scale is None:
        scale, _ = measure_scale(function, channels, multiple)
    scale = Fraction(scale).limit_denominator(1 << 16)
    if (multiple * scale).denominator != 1:
        raise ValueError(f"scale {scale} does not map {multiple}-pixel steps to whole output pixels")

    weights_y = axis_weights(grid.starts_y, grid.tile[0], grid.padded[0], overlap, guard, scale)
    weights_x = axis_weights(grid.starts_x, grid.tile[1], grid.padded[1], overlap, guard, scale)
    pad = ((0, grid.padded[0] - height), (0, grid.padded[1] - width), (0, 0))
    source = np.pad(packed, pad, mode="reflect") if any(p[1] for p in pad) else packed
    out_h, out_w = math.ceil(height * scale), math.ceil(width * scale)
    output: np.ndarray | None = None

    from tqdm import tqdm

    label = progress if isinstance(progress, str) else None
    with tqdm(total=len(grid), desc=label, unit="tile", disable=not progress, leave=False) as bar:
        for y0, x0, y1, x1 in grid.boxes():
            result = np.asarray(function(source[np.newaxis, y0:y1, x0:x1]))[0]
            expected = (int(grid.tile[0] * scale), int(grid.tile[1] * scale))
            if result.shape[:2] != expected:
                raise ValueError(
                    f"the model turned a {y1 - y0}x{x1 - x0} tile into {result.shape[0]}x{result.shape[1]}, "
                    f"not {expected[0]}x{expected[1]} (scale {scale})"
                )
            if output is None:
                output = np.zeros((out_h, out_w, result.shape[2]), np.float32)
            oy, ox = int(y0 * scale), int(x0 * scale)
            wy = weights_y[grid.starts_y.index(y0)]
            wx = weights_x[grid.starts_x.index(x0)]
            rows, cols = min(expected[0], out_h - oy), min(expected[1], out_w - ox)
            if rows > 0 and cols > 0:
                weight = (wy[:rows, None] * wx[None, :cols]).astype(np.float32)[..., None]
                output[oy : oy + rows, ox : ox + cols] += weight * result[:rows, :cols]
            bar.update()
    return output
