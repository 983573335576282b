"""One RAW and its photo -> training patches: render, global fit, then per patch a local shift and a check.

    RAW ──classical ISP──> render ──luminance──┐
    photo ─────────────────────────luminance───┴─> fit_global ──> patch grid on the RAW's frame
        per patch: inside the photo? ─> flat in both views? (kept on the global fit)
                   ─> ECC shift (≤ max_shift) ─> photo resampled once ─> gradient agreement

The render only finds correspondences: the dataset keeps the RAW's own samples and the photo's pixels. The
grid lies on even positions, so every RAW patch starts on the same CFA site as the frame.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from pynet_tf.alignment import register
from pynet_tf.data import isp
from pynet_tf.data.rawio import RawImage

DEFAULT_PATCH = 448
"""ZRR's patch: 448x448 mosaic pixels (224x224 packed), 448x448 photo pixels."""
DEFAULT_MAX_SHIFT = 8
"""Largest local correction, in RAW pixels, on top of the global fit: beyond it, something moved."""
DEFAULT_MIN_AGREEMENT = 0.8
"""Lowest gradient agreement a kept patch may have (see README's "Your own camera" for the measurements)."""
CELL = 64
"""Side, in RAW pixels, of the cells ``gradient_agreement`` checks separately: an object this size that is
in one view only, or moved, spoils its cell's score even inside a large patch."""


@dataclass(frozen=True)
class AlignOptions:
    patch: int = DEFAULT_PATCH
    stride: int | None = None
    """Step between patches in RAW pixels (default: the patch, no overlap)."""
    max_shift: int = DEFAULT_MAX_SHIFT
    min_agreement: float = DEFAULT_MIN_AGREEMENT
    local: bool = True
    """False (``--global-only``): every patch inside the photo is cut on the global fit, unchecked; what
    the local stage is measured against (benchmarks/align_training.py)."""

    @property
    def step(self) -> int:
        return self.stride or self.patch

    def check(self) -> None:
        """One error naming the flag, before any file is read."""
        if self.patch < 32 or self.patch % 2:
            raise ValueError(
                f"--patch {self.patch}: an even number of RAW pixels, at least 32 (ZRR's is 448)"
            )
        if self.step < 2 or self.step % 2:
            raise ValueError(f"--stride {self.stride}: an even number of RAW pixels (keeps the CFA's phase)")
        if self.max_shift < 1:
            raise ValueError(f"--max-shift {self.max_shift}: at least 1 RAW pixel")
        if not -1.0 <= self.min_agreement <= 1.0:
            raise ValueError(f"--min-agreement {self.min_agreement}: a correlation, between -1 and 1")


@dataclass
class Patch:
    left: int
    top: int
    shift: tuple[float, float] | None = None
    """The local correction (dx, dy) in RAW pixels; None where it was not estimated: outside the photo, or
    flat in both views (kept on the global fit alone: ECC has nothing to lock on there, and nothing shows a
    misalignment)."""
    agreement: float | None = None
    dropped: str | None = None
    """Why the patch is not in the dataset; None when kept."""
    photo: np.ndarray | None = field(default=None, repr=False)
    """The aligned photo patch (kept patches), float32 (patch, patch, 3)."""


@dataclass
class PairAlignment:
    fit: register.GlobalFit
    render: np.ndarray
    """The RAW's classical render, float32 (H, W, 3): for the visual check."""
    warped: np.ndarray
    """The photo on the RAW's grid by the global fit alone, float32 (H, W, 3): for the visual check."""
    patches: list[Patch]


def grid(height: int, width: int, options: AlignOptions) -> Iterator[tuple[int, int]]:
    """(left, top) of every patch position on the frame, even, row by row."""
    for top in range(0, height - options.patch + 1, options.step):
        for left in range(0, width - options.patch + 1, options.step):
            yield left, top


def align_pair(raw: RawImage, photo: np.ndarray, options: AlignOptions) -> PairAlignment:
    """Registers ``photo`` (float (h, w, 3) in [0, 1]) on ``raw``'s frame and cuts the checked patches.

    Raises ``register.AlignmentError`` when the pair has no usable global fit.
    """
    render = np.asarray(isp.process_raw(raw).numpy(), np.float32)
    reference = register.luminance(render)
    fit = register.fit_global(reference, register.luminance(photo))
    photo, homography = register.resample_photo(photo, fit)
    height, width = reference.shape
    margin = options.max_shift
    # the photo's luminance on the frame grown by the margin, so each patch's search window exists
    grown = homography @ np.array([[1, 0, -margin], [0, 1, -margin], [0, 0, 1]], np.float64)
    warped_luma = register.warp_to_grid(
        register.luminance(photo), grown, width + 2 * margin, height + 2 * margin
    )
    inside = register.coverage(photo.shape, grown, width + 2 * margin, height + 2 * margin)
    blocks = max(1, round(options.patch / CELL))
    patches = []
    for left, top in grid(height, width, options):
        patch = Patch(left, top)
        patches.append(patch)
        window = (
            slice(top, top + options.patch + 2 * margin),
            slice(left, left + options.patch + 2 * margin),
        )
        if not inside[window].all():
            patch.dropped = "outside the photo"
            continue
        target = reference[top : top + options.patch, left : left + options.patch]
        around = warped_luma[window]
        if (
            not options.local
            or register.gradient_agreement(target, around[margin:-margin, margin:-margin], blocks) is None
        ):
            # --global-only, or flat in both views: nothing for ECC to lock on (it would drift), nothing to
            # misalign either
            patch.photo = register.photo_patch(photo, homography, left, top, options.patch)
            continue
        shift = register.refine(target, around, margin)
        if shift is None:
            patch.dropped = "local refinement did not converge"
            continue
        patch.shift = (float(shift[0]), float(shift[1]))
        if np.abs(shift).max() > options.max_shift:
            patch.dropped = f"local shift beyond --max-shift {options.max_shift} px (moved or parallax)"
            continue
        aligned = register.photo_patch(photo, homography, left + shift[0], top + shift[1], options.patch)
        patch.agreement = register.gradient_agreement(target, register.luminance(aligned), blocks)
        if patch.agreement is not None and patch.agreement < options.min_agreement:
            patch.dropped = f"gradient agreement below --min-agreement {options.min_agreement:g}"
            continue
        patch.photo = aligned
    warped = register.warp_to_grid(photo, homography, width, height)
    return PairAlignment(fit, render, warped, patches)
