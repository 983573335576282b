"""The held-out inputs a learned ISP is scored on, and the classical ISP rendered from each of them.

Shared by ``pynet_tf.evaluation`` (whole test images) and the exporters' fidelity (``export/fidelity.py``, crops
of the export's shape): the test split, no augmentation, the largest centred crop whose packed sides are
multiples of 16 (optionally capped); synthetic RAW drawn, noise included as in training, from the seed pair
(seed, CRC-32 of the image's name). Which classical ISP runs next to the model depends on what the source
knows about its camera (``BASELINES``).
"""

from __future__ import annotations

import dataclasses
import zlib
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from pynet_tf.data import isp
from pynet_tf.data.augment import target_for_level
from pynet_tf.data.pipeline import PipelineOptions, load_example
from pynet_tf.data.rawio import read_raw
from pynet_tf.data.sources import Example
from pynet_tf.data.unprocess import unprocess
from pynet_tf.nets.pynet.levels import DOWNSAMPLING

SPLIT = "test"
SYNTHETIC_CFA = PipelineOptions.cfa  # the pattern training samples synthetic RAW with (its default)


class EvaluationError(ValueError):
    """An evaluation that cannot run as asked (model, level, sizes); the message names the cause and fix."""


@dataclass(frozen=True)
class Baseline:
    """A classical ISP run next to a learned one: the metadata it was given decides how good it can be."""

    name: str
    label: str
    """What tables and charts call it."""
    description: str

    def record(self) -> dict[str, str]:
        return {"name": self.name, "label": self.label, "description": self.description}


BASELINES = {
    "photos": Baseline(
        "oracle_metadata",
        "classical ISP (oracle metadata)",
        "classical ISP with oracle metadata: the white balance and colour matrix unprocess drew for each "
        "image (the best this pipeline can do on these inputs)",
    ),
    "raw": Baseline(
        "as_shot_metadata",
        "classical ISP (as-shot metadata)",
        "classical ISP with each RAW file's as-shot white balance and colour matrix",
    ),
    "zrr": Baseline(
        "gray_world",
        "classical ISP (grey-world)",
        "classical ISP with grey-world white balance and an identity colour matrix (ZRR ships no metadata)",
    ),
}
"""Source kind -> the classical ISP run next to the model on its inputs (``prepare_test_input``)."""


@dataclass(frozen=True)
class TestInput:
    """One test example, cropped and ready: what the model sees, what it is scored against, the baseline."""

    packed: np.ndarray
    target: np.ndarray
    baseline: tf.Tensor
    """The classical ISP's render of ``packed`` (``BASELINES`` by the source's kind), at the target's size."""
    source_size: tuple[int, int]
    offset: tuple[int, int]
    camera: dict | None

    def at_level(self, level: int) -> tuple[np.ndarray, np.ndarray]:
        """(target, baseline) at the size level ``level`` outputs, resized as training resizes targets."""
        return (
            target_for_level(tf.constant(self.target), level).numpy(),
            target_for_level(self.baseline, level).numpy(),
        )


def centred_crop(
    name: str, size: tuple[int, int], cap: tuple[int, int] | None
) -> tuple[tuple[int, int], tuple[int, int]]:
    """(offset, size) in packed pixels of the largest centred crop of ``size`` (example ``name``'s packed
    size) whose sides are multiples of 16, no larger than ``cap``."""
    if min(size) < DOWNSAMPLING:
        raise EvaluationError(
            f"example {name!r} packs to {size[0]}x{size[1]}, smaller than the {DOWNSAMPLING}x{DOWNSAMPLING} "
            f"packed pixels PyNET needs ({2 * DOWNSAMPLING}x{2 * DOWNSAMPLING} pixels of photo); remove it "
            "from the test split"
        )
    limits = cap or size
    crop = tuple(min(side, limit) // DOWNSAMPLING * DOWNSAMPLING for side, limit in zip(size, limits))
    return tuple((side - kept) // 2 for side, kept in zip(size, crop)), crop


def prepare_test_input(example: Example, kind: str, cap: tuple[int, int] | None, seed: int) -> TestInput:
    """Load, crop and make the baseline's render of one example (RAW inputs cropped from the whole frame)."""
    packed, target = load_example(example, kind)
    full = (target.shape[0] // 2, target.shape[1] // 2)
    (top, left), (height, width) = centred_crop(example.name, full, cap)
    target = target[2 * top : 2 * (top + height), 2 * left : 2 * (left + width)]
    camera = None
    if kind == "photos":
        image_seed = tf.constant([seed, zlib.crc32(example.name.encode())], tf.int64)
        packed, _, params = unprocess(target, image_seed, pattern=SYNTHETIC_CFA)
        baseline = isp.process(packed, params.white_balance, params.camera_to_srgb, SYNTHETIC_CFA)
        packed, camera = packed.numpy(), params.to_dict()
    else:
        packed = packed[top : top + height, left : left + width]
        if kind == "raw":  # read again for its metadata; an even offset keeps the CFA pattern
            raw = read_raw(example.raw)
            window = raw.mosaic[2 * top : 2 * (top + height), 2 * left : 2 * (left + width)]
            baseline = isp.process_raw(dataclasses.replace(raw, mosaic=window, size=window.shape))
        else:
            baseline = isp.process(packed, isp.gray_world(packed), tf.eye(3))
    return TestInput(packed, target, baseline, full, (top, left), camera)
