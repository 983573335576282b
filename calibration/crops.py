"""Calibration sets for int8 post-training quantization: packed RAW crops that cover the inputs
(``build_calibration``; ``calibration/build.py`` is its command line).

A pool of candidate crops of exactly the exported model's packed input size (default max(64, 4 x num)) is
drawn from the train split, several per image at random positions; photo sources (samples, photos:DIR) make
each crop's RAW with unprocess from a seed of its own, RAW sources (zrr:DIR, pairs:DIR) crop the packed frame
(clipped to [0, 1]). An image smaller than the shape is used all the same: a photo is resized up (bicubic)
before unprocessing, a RAW frame is reflect-padded, and the crop's source says so. Every draw derives from
the seed: the same arguments give the same set.

``num`` crops are then chosen from the pool by greedy k-center on per-crop statistics (exposure, colour cast,
contrast, texture, clipping; calibration/selection.py says which and why), not the first N: int8 ranges
come from these crops, and k-center reaches the bright, dark, tinted and textured edges of the pool that
the first N (a few scenes) and a random N (mostly typical crops) miss. The set's summary, also kept in its
metadata, gives the covering radius (the farthest any candidate is from its nearest chosen crop, in standard
deviations of the features: lower is better) of the chosen set next to the first N's and random N's, and each
feature's range over the chosen crops against the pool's.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import tensorflow as tf
from tqdm import tqdm

import pynet_tf  # noqa: F401  (selects Keras 2 before TensorFlow loads)
from calibration.calibration_set import FORMAT, VERSION, CalibrationError, CalibrationSet, CropSource
from calibration.selection import FEATURE_NAMES, coverage, crop_features, k_center, standardise
from pynet_tf.architectures import DEFAULT as DEFAULT_ARCH
from pynet_tf.architectures import ArchitectureError, architecture
from pynet_tf.data import bayer
from pynet_tf.data.photoio import read_photo
from pynet_tf.data.pipeline import PipelineOptions
from pynet_tf.data.rawio import read_raw, read_zrr_raw
from pynet_tf.data.sources import Example, parse_source
from pynet_tf.data.unprocess import unprocess
from pynet_tf.shapes import InputShapeError

log = logging.getLogger(__name__)

SPLIT = "train"
MIN_CANDIDATES = 64
CANDIDATES_PER_CHOSEN = 4
DEFAULT_CFA = PipelineOptions.cfa  # the pattern training samples synthetic RAW with
METHOD = (
    "greedy k-center (farthest point) on standardised per-crop features, from the crop nearest the pool mean"
)

Unprocessor = Callable[[np.ndarray, tuple[int, int]], np.ndarray]


def default_candidates(num: int) -> int:
    """The pool size when none is given: a few candidates per chosen crop, never fewer than 64."""
    return max(MIN_CANDIDATES, CANDIDATES_PER_CHOSEN * num)


def default_calibration(
    shape: tuple[int, int], num: int = 16, seed: int = 0, arch: str = DEFAULT_ARCH
) -> CalibrationSet:
    """A small set from the embedded sample photos, built on the fly for network ``arch``: the exporter's
    default. Photos smaller than ``shape`` are resized up (see ``build_calibration``)."""
    return build_calibration("samples", num, shape, seed=seed, arch=arch)


def build_calibration(
    data_spec: str,
    num: int,
    shape: tuple[int, int],
    *,
    seed: int = 0,
    candidates: int | None = None,
    cfa: str = DEFAULT_CFA,
    arch: str = DEFAULT_ARCH,
) -> CalibrationSet:
    """``num`` packed crops of ``shape`` (H, W) chosen by greedy k-center from ``candidates`` random crops
    of ``data_spec``'s train split (default ``default_candidates(num)``), with their sources and coverage.

    The crops are in selection order (the first k are the greedy choice for k). ``cfa`` is the pattern
    synthetic RAW is sampled with (photo sources only); ``shape`` must meet the input rule of network
    ``arch`` (``pynet_tf.architectures``). Bad settings, or no readable image, raise ``CalibrationError``;
    a bad ``data_spec`` raises ``DataSourceError``.
    """
    height, width = shape
    try:
        network = architecture(arch)
        network.validate_input_shape(height, width)
    except ArchitectureError as error:
        raise CalibrationError(str(error)) from None
    except InputShapeError as error:
        raise CalibrationError(f"--shape {height}x{width}: {error}") from None
    count = default_candidates(num) if candidates is None else candidates
    if num < 1:
        raise CalibrationError(f"--num must be at least 1, got {num}")
    if count < num:
        raise CalibrationError(f"--candidates {count} is fewer than --num {num}: the pool must hold the set")
    if cfa not in bayer.PATTERNS:
        raise CalibrationError(f"--cfa must be one of {', '.join(bayer.PATTERNS)}, got {cfa!r}")
    source = parse_source(data_spec)
    unprocessor = _unprocessor(cfa)

    examples = source.examples(SPLIT)
    pool, owners, skipped = _draw_pool(examples, source.kind, shape, count, seed, cfa, unprocessor)
    if not pool:
        raise CalibrationError(
            f"--data {data_spec!r}: none of its {len(skipped)} {SPLIT} examples could be read "
            f"({', '.join(skipped[:5])}{', ...' if len(skipped) > 5 else ''}); see the warnings above"
        )
    if len(pool) < num:
        raise CalibrationError(
            f"--data {data_spec!r}: only {len(pool)} candidate crops, fewer than --num {num}"
        )
    features = np.stack([row for _, row in pool])
    points, mean, std = standardise(features)
    chosen = k_center(points, num)
    sources = [pool[i][0] for i in chosen]
    inputs = _remake(sources, [owners[i] for i in chosen], source.kind, shape, unprocessor)

    used = {crop.example: crop for crop, _ in pool}
    enlarged = sum(1 for crop in used.values() if crop.scale != 1.0 or any(crop.padding))
    metadata = {
        "format": FORMAT,
        "version": VERSION,
        "data": data_spec,
        "source_kind": source.kind,
        "split": SPLIT,
        "shape": [height, width],
        "arch": network.name,
        "num": num,
        "seed": seed,
        "cfa": cfa if source.synthetic else None,
        "method": METHOD,
        "candidates": len(pool),
        "images": len(used),
        "enlarged_images": enlarged,
        "enlarged_how": "photos resized up (bicubic), then unprocessed"
        if source.synthetic
        else "packed RAW reflect-padded",
        "skipped_images": skipped,
        "pool_indices": chosen.tolist(),
        "feature_names": list(FEATURE_NAMES),
        "feature_mean": mean.tolist(),
        "feature_std": std.tolist(),
        "coverage": coverage(features, chosen, seed),
    }
    return CalibrationSet(
        inputs, features[chosen], tuple(sources), metadata, shape_rule=network.validate_input_shape
    )


@dataclass(frozen=True, eq=False)
class _Frame:
    """One example ready to crop: a photo (2h, 2w, 3) or a packed RAW (h, w, 4), enlarged if it had to be."""

    image: np.ndarray
    size: tuple[int, int]
    """The packed size as read, before enlarging."""
    scale: float = 1.0
    padding: tuple[int, int, int, int] = (0, 0, 0, 0)

    @property
    def packed_size(self) -> tuple[int, int]:
        rows, cols = self.image.shape[:2]
        return (rows // 2, cols // 2) if self.image.shape[-1] == 3 else (rows, cols)


def _load_frame(example: Example, kind: str, shape: tuple[int, int]) -> _Frame:
    """Read ``example`` and enlarge it to at least ``shape`` packed pixels if it is smaller."""
    height, width = shape
    if kind == "photos":
        photo = read_photo(example.target)
        size = (photo.shape[0] // 2, photo.shape[1] // 2)
        if min(size) < 1:
            raise ValueError(f"{example.target}: a {photo.shape[0]}x{photo.shape[1]} photo, no 2x2 block")
        photo = photo[: 2 * size[0], : 2 * size[1]]
        scale = max(height / size[0], width / size[1])
        if scale <= 1:
            return _Frame(photo, size)
        resized = (2 * max(height, round(size[0] * scale)), 2 * max(width, round(size[1] * scale)))
        photo = np.clip(tf.image.resize(photo, resized, method="bicubic").numpy(), 0.0, 1.0)
        return _Frame(photo, size, scale=scale)
    packed = read_zrr_raw(example.raw) if kind == "zrr" else read_raw(example.raw).packed()
    size = (packed.shape[0], packed.shape[1])
    rows, cols = max(0, height - size[0]), max(0, width - size[1])
    padding = (rows // 2, rows - rows // 2, cols // 2, cols - cols // 2)
    if any(padding):
        packed = np.pad(packed, (padding[:2], padding[2:], (0, 0)), mode="reflect")
    # ZRR's 10-bit values reach 1023 / 1020: the model's inputs are [0, 1]
    return _Frame(np.clip(packed, 0.0, 1.0).astype(np.float32), size, padding=padding)


def _unprocessor(cfa: str) -> Unprocessor:
    """``unprocess`` traced once for every crop: (photo (2H, 2W, 3), seed pair) -> packed (H, W, 4)."""
    spec = [tf.TensorSpec([None, None, 3], tf.float32), tf.TensorSpec([2], tf.int64)]
    traced = tf.function(lambda photo, seed: unprocess(photo, seed, pattern=cfa)[0], input_signature=spec)
    return lambda photo, seed: traced(photo, tf.constant(seed, tf.int64)).numpy()


def _crop(frame: _Frame, source: CropSource, unprocessor: Unprocessor) -> np.ndarray:
    top, left, height, width = source.box
    if source.made == "raw":
        return frame.image[top : top + height, left : left + width]
    return unprocessor(frame.image[2 * top : 2 * (top + height), 2 * left : 2 * (left + width)], source.seed)


def _draw_pool(
    examples: tuple[Example, ...],
    kind: str,
    shape: tuple[int, int],
    count: int,
    seed: int,
    cfa: str,
    unprocessor: Unprocessor,
) -> tuple[list[tuple[CropSource, np.ndarray]], list[Example], list[str]]:
    """``count`` random crops with their features, the example of each, and the examples that failed.

    With fewer examples than ``count``, every example in order gives ``count / len(examples)`` crops (the
    first few one more); with more, a random subset of ``count`` gives one each. Unreadable examples are
    skipped with a warning.
    """
    rng = np.random.default_rng(seed)
    many = len(examples) > count
    order = rng.permutation(len(examples)) if many else np.arange(len(examples))
    pool: list[tuple[CropSource, np.ndarray]] = []
    owners: list[Example] = []
    skipped: list[str] = []
    with tqdm(total=count, desc="candidates", unit="crop", disable=None, mininterval=1.0) as bar:
        for rank, index in enumerate(order):
            if len(pool) >= count:
                break
            example = examples[index]
            try:
                frame = _load_frame(example, kind, shape)
            except (OSError, ValueError) as error:  # RawReadError and PhotoReadError are OSErrors
                log.warning("skipping %s: %s", example.name, error)
                skipped.append(example.name)
                continue
            rows, cols = frame.packed_size
            crops = 1 if many else count // len(examples) + (rank < count % len(examples))
            for _ in range(crops):
                top, left = int(rng.integers(rows - shape[0] + 1)), int(rng.integers(cols - shape[1] + 1))
                synthetic = kind == "photos"
                source = CropSource(
                    example=example.name,
                    file=str(example.target if synthetic else example.raw),
                    frame=frame.size,
                    box=(top, left, *shape),
                    made="unprocess" if synthetic else "raw",
                    scale=frame.scale,
                    padding=frame.padding,
                    seed=(seed, len(pool)) if synthetic else None,
                    cfa=cfa if synthetic else None,
                )
                pool.append((source, crop_features(_crop(frame, source, unprocessor))))
                owners.append(example)
                bar.update()
    return pool, owners, skipped


def _remake(
    sources: list[CropSource],
    examples: list[Example],
    kind: str,
    shape: tuple[int, int],
    unprocessor: Unprocessor,
) -> np.ndarray:
    """The chosen crops made again from their sources, each image read once (the pool keeps no pixels)."""
    inputs = np.empty((len(sources), *shape, 4), np.float32)
    by_example: dict[str, list[int]] = {}
    for position, source in enumerate(sources):
        by_example.setdefault(source.example, []).append(position)
    for positions in tqdm(by_example.values(), desc="chosen", unit="image", disable=None, mininterval=1.0):
        frame = _load_frame(examples[positions[0]], kind, shape)
        for position in positions:
            inputs[position] = _crop(frame, sources[position], unprocessor)
    return inputs
