"""One tf.data pipeline for every source: decode in parallel, cache, crop, augment, size targets per level.

    examples -> decode (parallel; RAW readers and PIL) -> cache -> repeat/shuffle
             -> per-element seed -> crop aligned to the 2x2 mosaic -> rotations/flips (input and target
                together) -> [photos: unprocess to synthetic RAW] -> target for the level -> batch -> prefetch

Every random choice derives from ``seed`` and the element's position in the stream, so a run's batches
can be reproduced.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf

from pynet_tf.data.augment import bayer_dihedral, target_for_level
from pynet_tf.data.photoio import read_photo
from pynet_tf.data.rawio import RawReadError, read_raw, read_zrr_raw
from pynet_tf.data.sources import Example, Source
from pynet_tf.data.unprocess import unprocess

log = logging.getLogger(__name__)


class BadExampleError(ValueError):
    """An example could not be loaded; the message names it."""


@dataclass(frozen=True)
class PipelineOptions:
    level: int
    patch: int
    """Packed input side (the target is 2x that at level 0)."""
    batch_size: int
    seed: int = 0
    augment: bool = True
    skip_bad: bool = False
    cache: bool = True
    training: bool = True
    """Training streams repeat and shuffle forever; evaluation passes over the split once, in order."""
    cfa: str = "RGGB"
    """The sensor pattern synthetic RAW is sampled with (photo sources): match the phone you deploy to."""


def load_example(
    example: Example, kind: str, min_packed: int = 0, patch: int | None = None
) -> tuple[np.ndarray | None, np.ndarray]:
    """(packed RAW or None for photo sources, RGB target), cropped so the target is exactly 2x the input;
    ``BadExampleError`` naming the file and its size when it packs to less than ``min_packed`` a side (what
    ``--patch`` ``patch`` needs)."""
    try:
        target = read_photo(example.target)
        if kind == "photos":
            _check_size(
                example.target, f"a {target.shape[1]}x{target.shape[0]} photo", target, min_packed, patch
            )
            return None, target[: target.shape[0] // 2 * 2, : target.shape[1] // 2 * 2]
        packed = read_zrr_raw(example.raw) if kind == "zrr" else read_raw(example.raw).packed()
    except (OSError, ValueError, RawReadError) as error:
        raise BadExampleError(f"cannot load example {example.name!r}: {error}") from error
    height = min(packed.shape[0], target.shape[0] // 2)
    width = min(packed.shape[1], target.shape[1] // 2)
    if (packed.shape[0], packed.shape[1]) != (height, width) or target.shape[:2] != (2 * height, 2 * width):
        raise BadExampleError(
            f"example {example.name!r}: RAW packs to {packed.shape[0]}x{packed.shape[1]} but the photo is "
            f"{target.shape[0]}x{target.shape[1]}; a pair must be aligned (photo = 2x the packed RAW)"
        )
    _check_size(example.raw, f"packs to {width}x{height}", target, min_packed, patch)
    return packed.astype(np.float32), target


def _check_size(path: Path, size: str, target: np.ndarray, min_packed: int, patch: int | None) -> None:
    """``BadExampleError`` when ``target`` gives fewer than ``min_packed`` packed pixels a side."""
    if min(target.shape[:2]) // 2 >= min_packed:
        return
    photo = 2 * min_packed
    raise BadExampleError(
        f"{path}: {size}, smaller than --patch {patch} needs ({photo}x{photo} photo pixels, {min_packed} "
        "packed): remove it from --data or lower --patch"
    )


def make_dataset(source: Source, split: str, options: PipelineOptions) -> tf.data.Dataset:
    """Batches of (packed (patch, patch, 4), target at ``options.level``) from ``source``'s ``split``."""
    examples = source.examples(split)
    decoded = _decoded(examples, source.kind, options)
    if options.cache:
        decoded = decoded.cache()
    if options.training:
        decoded = decoded.repeat().shuffle(max(len(examples), 1), seed=options.seed)
    crop = _crop_photo if source.synthetic else _crop_raw
    pairs = decoded.enumerate().map(
        lambda index, item: crop(item, _element_seed(options.seed, index), options),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    pairs = pairs.map(lambda packed, target: (packed, target_for_level(target, options.level)))
    return pairs.batch(options.batch_size, drop_remainder=options.training).prefetch(tf.data.AUTOTUNE)


def _decoded(examples: tuple[Example, ...], kind: str, options: PipelineOptions) -> tf.data.Dataset:
    """(packed, target) per usable example, read in parallel through ``tf.numpy_function``.

    Photo sources carry an empty packed array here: their RAW input is made after cropping.
    """
    # augmenting a RAW crop needs one spare packed pixel (see augment.bayer_dihedral)
    needed = options.patch + (1 if options.augment and kind != "photos" else 0)
    no_raw = np.zeros((0, 0, 4), np.float32)
    skipped: list[str] = []

    def read(index: np.int64):
        example = examples[int(index)]
        try:
            packed, target = load_example(example, kind, needed, options.patch)
        except BadExampleError as error:
            if not options.skip_bad:
                raise
            skipped.append(example.name)
            log.warning("skipping (%d so far): %s", len(skipped), error)
            return no_raw, np.zeros((0, 0, 3), np.float32), False
        return (no_raw if packed is None else packed), target, True

    def decode(index):
        packed, target, ok = tf.numpy_function(read, [index], (tf.float32, tf.float32, tf.bool))
        return tf.ensure_shape(packed, [None, None, 4]), tf.ensure_shape(target, [None, None, 3]), ok

    dataset = tf.data.Dataset.range(len(examples)).map(
        decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
    )
    usable = dataset.filter(lambda packed, target, ok: ok)
    return usable.map(lambda packed, target, ok: (packed, target))


def _element_seed(seed: int, index: tf.Tensor) -> tf.Tensor:
    return tf.stack([tf.constant(seed, tf.int64), index])


def _random_corner(seed: tf.Tensor, height: tf.Tensor, width: tf.Tensor, size: int) -> tf.Tensor:
    """Top-left (row, col) of a ``size`` square inside ``height`` x ``width``, uniform."""
    limits = tf.stack([height - size + 1, width - size + 1])
    return tf.random.stateless_uniform([2], seed, minval=0, maxval=tf.int32.max, dtype=tf.int32) % limits


def _transform(seed: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Quarter turns (0-3) and a flip, from the element's seed."""
    draws = tf.random.stateless_uniform([2], seed + 1, minval=0, maxval=8, dtype=tf.int32)
    return draws[0] % 4, draws[1] % 2 == 1


def _crop_raw(item, seed: tf.Tensor, options: PipelineOptions):
    packed, target = item
    size = options.patch + 1 if options.augment else options.patch
    corner = _random_corner(seed, tf.shape(packed)[0], tf.shape(packed)[1], size)
    packed = packed[corner[0] : corner[0] + size, corner[1] : corner[1] + size]
    target = target[2 * corner[0] : 2 * (corner[0] + size), 2 * corner[1] : 2 * (corner[1] + size)]
    if options.augment:
        rotations, flip = _transform(seed)
        packed, target = bayer_dihedral(packed, target, rotations, flip)
    return tf.ensure_shape(packed, [options.patch, options.patch, 4]), tf.ensure_shape(
        target, [2 * options.patch, 2 * options.patch, 3]
    )


def _crop_photo(item, seed: tf.Tensor, options: PipelineOptions):
    """Photos are augmented as RGB (no mosaic yet), then unprocessed into a synthetic RAW input."""
    _, photo = item
    size = 2 * options.patch
    corner = 2 * _random_corner(seed, tf.shape(photo)[0] // 2, tf.shape(photo)[1] // 2, options.patch)
    photo = photo[corner[0] : corner[0] + size, corner[1] : corner[1] + size]
    if options.augment:
        rotations, flip = _transform(seed)
        photo = tf.image.rot90(
            tf.cond(flip, lambda: tf.image.flip_left_right(photo), lambda: photo), rotations
        )
    packed, target, _ = unprocess(photo, seed=seed + 2, pattern=options.cfa)
    return tf.ensure_shape(packed, [options.patch, options.patch, 4]), tf.ensure_shape(
        target, [size, size, 3]
    )
