"""Registering a DSLR photo onto a phone RAW's pixel grid: one global homography, then a shift per patch.

    RAW's classical render (luminance) ─┐
                                        ├─ SIFT + ratio test + MAGSAC homography (``fit_global``)
    photo (luminance) ──────────────────┘          │ RAW grid -> photo pixels
                                                   ▼
    per patch: ECC translation on the photo warped by it (``refine``), one resampling of the photo with
    the homography and that shift (``photo_patch``), then the gradients' agreement (``gradient_agreement``)

Positions are (x, y) in pixels, pixel centres at integers, as OpenCV has them. The RAW grid is the mosaic's
(full-resolution) grid, the grid a learned ISP's output lives on. Matching runs on copies no larger than
``MATCH_SIDE`` (SIFT's cost grows with the pixels, its accuracy at the corners does not need more); the
homography is scaled back to full resolution, and the per-patch refinement works at full resolution.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import cv2
import numpy as np

MATCH_SIDE = 1600
"""Longest side, in pixels, of the copies SIFT runs on."""
RATIO_TEST = 0.75
"""Lowe's ratio: a match is kept when its distance is below this share of the second best's."""
RANSAC_THRESHOLD = 3.0
"""MAGSAC's inlier threshold, in pixels of the matching copies: loose enough for the parallax and lens
differences no homography follows (the patches' own shifts take those up), tight against wrong matches."""
MIN_INLIERS = 30
"""Fewer inlier matches than this: the photo is not of the RAW's scene (or too little of it overlaps)."""
MIN_PHOTO_SCALE = 0.5
"""Photo pixels per RAW pixel below this: the target would be the photo upsampled more than 2x."""
MAX_ANISOTROPY = 3.0
"""Ratio of the homography's local stretch along its two axes above this: a degenerate fit, not a camera."""
POLISH_LIMIT = 8.0
"""Pixels (matching copies) the dense polish may move a corner from the matches' fit before it is distrusted
(MAGSAC's fits were off by up to 2.2 px there in the benchmark; a wandering ECC goes much further)."""
ECC_CRITERIA = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 100, 1e-4)
"""ECC stops after 100 iterations or when the shift changes by less than 1e-4 px."""
FLAT = 0.01
"""Gradient RMS (Sobel units) below which a cell counts as flat even in a noise-free image."""
_IMMERKAER = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)
HIGH_PASS_SIGMA = 4.0
"""Blur, in RAW pixels, whose removal leaves what ECC matches patches on."""
GRADIENT_SIGMA = 1.0
"""Gaussian blur before the gradients: the RAW render's demosaicking and the photo's sharpening differ
at the finest scale, the structure the alignment is checked on does not."""


class AlignmentError(ValueError):
    """A pair that cannot be registered; the message says why in the user's terms."""


@dataclass(frozen=True)
class GlobalFit:
    """The homography from the RAW grid to the photo's pixels, and how well the matches support it."""

    homography: np.ndarray
    """(3, 3) float64: photo (x, y, 1) ~ homography @ RAW (x, y, 1)."""
    matches: int
    """SIFT matches that passed the ratio test."""
    inliers: int
    reprojection_px: float
    """Median distance of the inliers from the fit, in RAW pixels at full resolution."""
    photo_scale: float
    """Photo pixels per RAW pixel at the RAW's centre."""


def luminance(rgb: np.ndarray) -> np.ndarray:
    """Rec. 709 luma of an (H, W, 3) float image, float32."""
    return np.asarray(rgb[..., 0] * 0.2126 + rgb[..., 1] * 0.7152 + rgb[..., 2] * 0.0722, np.float32)


def _matching_copy(luma: np.ndarray) -> tuple[np.ndarray, float]:
    """A copy no larger than MATCH_SIDE, and its size over the original's."""
    scale = min(1.0, MATCH_SIDE / max(luma.shape))
    if scale < 1.0:
        size = (round(luma.shape[1] * scale), round(luma.shape[0] * scale))
        luma = cv2.resize(luma, size, interpolation=cv2.INTER_AREA)
    return luma, scale


def _keypoints(image: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """SIFT keypoints' (x, y) and descriptors of a float luminance image (SIFT takes 8 bits)."""
    image = np.clip(np.rint(image * 255), 0, 255).astype(np.uint8)
    keypoints, descriptors = cv2.SIFT_create().detectAndCompute(image, None)
    return np.array([point.pt for point in keypoints], np.float64).reshape(-1, 2), descriptors


def _correlation(reference: np.ndarray, photo: np.ndarray, homography: np.ndarray) -> float:
    """ECC's own score of a homography: the normalised correlation of the reference with the photo warped
    onto it, over the pixels the photo covers."""
    height, width = reference.shape
    warped = warp_to_grid(photo, homography, width, height)
    inside = coverage(photo.shape, homography, width, height).astype(np.uint8)
    return float(cv2.computeECC(reference, warped, inside))


def _polish(reference: np.ndarray, photo: np.ndarray, homography: np.ndarray) -> np.ndarray:
    """The homography refined by ECC over every pixel of the two (high-passed) copies, kept when it
    correlates better than the matches' fit and stays within POLISH_LIMIT px of it at the corners.

    Keypoints cluster on texture, so far corners are extrapolated (by 2 px on a sky-filled frame in
    benchmarks/align_accuracy.py); a dense fit also weighs the sparse parts.
    """
    reference, photo = high_pass(reference), high_pass(photo)
    try:
        _, polished = cv2.findTransformECC(
            reference, photo, homography.astype(np.float32), cv2.MOTION_HOMOGRAPHY, ECC_CRITERIA, None, 5
        )
    except cv2.error:  # did not converge
        return homography
    polished = polished.astype(np.float64) / polished[2, 2]
    corners = frame_corners(reference.shape[1], reference.shape[0])
    moved = np.linalg.norm(project(polished, corners) - project(homography, corners), axis=1).max()
    if moved > POLISH_LIMIT or _correlation(reference, photo, polished) < _correlation(
        reference, photo, homography
    ):
        return homography
    return polished


def frame_corners(width: int, height: int) -> np.ndarray:
    """(4, 2) the pixel centres at the corners of a ``width`` x ``height`` frame, clockwise from top-left."""
    return np.array([(0, 0), (width - 1, 0), (width - 1, height - 1), (0, height - 1)], np.float64)


def jacobian(homography: np.ndarray, x: float, y: float) -> np.ndarray:
    """The 2x2 derivative of the homography's mapping at (x, y): its local stretch and rotation."""
    h = homography
    w = h[2, 0] * x + h[2, 1] * y + h[2, 2]
    u = (h[0, 0] * x + h[0, 1] * y + h[0, 2]) / w
    v = (h[1, 0] * x + h[1, 1] * y + h[1, 2]) / w
    return (h[:2, :2] - np.outer([u, v], h[2, :2])) / w


def project(homography: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(N, 2) points through the homography."""
    return cv2.perspectiveTransform(np.asarray(points, np.float64).reshape(-1, 1, 2), homography).reshape(
        -1, 2
    )


def fit_global(reference: np.ndarray, photo: np.ndarray) -> GlobalFit:
    """The homography taking the RAW render's luminance ``reference`` onto the photo's luminance ``photo``.

    Raises AlignmentError for too few matches (another scene), a degenerate fit (mirrored, folded or torn
    frame) or a photo with too few pixels for the RAW's frame.
    """
    reference_small, reference_scale = _matching_copy(reference)
    photo_small, photo_scale = _matching_copy(photo)
    reference_points, reference_descriptors = _keypoints(reference_small)
    photo_points, photo_descriptors = _keypoints(photo_small)
    if reference_descriptors is None or photo_descriptors is None or len(photo_points) < 2:
        raise AlignmentError("no SIFT features in one of the images (blank or flat frame?)")
    pairs = cv2.BFMatcher(cv2.NORM_L2).knnMatch(reference_descriptors, photo_descriptors, k=2)
    good = [pair[0] for pair in pairs if len(pair) == 2 and pair[0].distance < RATIO_TEST * pair[1].distance]
    if len(good) < MIN_INLIERS:
        raise AlignmentError(
            f"only {len(good)} SIFT matches (at least {MIN_INLIERS} needed): is the photo of the same scene?"
        )
    source = reference_points[[match.queryIdx for match in good]]
    target = photo_points[[match.trainIdx for match in good]]
    small, mask = cv2.findHomography(source, target, cv2.USAC_MAGSAC, RANSAC_THRESHOLD, confidence=0.9999)
    inliers = int(mask.sum()) if mask is not None else 0
    if small is None or inliers < MIN_INLIERS:
        raise AlignmentError(
            f"{inliers} of {len(good)} SIFT matches agree on one homography (at least {MIN_INLIERS} needed): "
            "is the photo of the same scene?"
        )
    height, width = reference.shape
    # full-resolution RAW -> matching copy -> (fit) -> photo's matching copy -> full-resolution photo
    to_small, from_small = (
        np.diag([reference_scale, reference_scale, 1.0]),
        np.diag([1 / photo_scale, 1 / photo_scale, 1]),
    )
    _check_geometry(from_small @ small @ to_small, width, height)
    homography = from_small @ _polish(reference_small, photo_small, small) @ to_small
    homography /= homography[2, 2]
    stretch = np.sqrt(abs(np.linalg.det(jacobian(homography, (width - 1) / 2, (height - 1) / 2))))
    if stretch < MIN_PHOTO_SCALE:
        raise AlignmentError(
            f"the photo has {stretch:.2f} pixels per RAW pixel (at least {MIN_PHOTO_SCALE} needed): the target "
            "would be an upsampled photo; use the DSLR's full-resolution photos"
        )
    keep = mask.ravel().astype(bool)
    inlier_source = source[keep] / reference_scale
    inlier_target = target[keep] / photo_scale
    residual = np.linalg.norm(project(homography, inlier_source) - inlier_target, axis=1) / stretch
    return GlobalFit(homography, len(good), inliers, float(np.median(residual)), float(stretch))


def _check_geometry(homography: np.ndarray, width: int, height: int) -> None:
    """Refuse fits no camera pair produces: the RAW frame mirrored, folded, torn across the horizon or sheared."""
    for x, y in [*frame_corners(width, height), ((width - 1) / 2, (height - 1) / 2)]:
        w = homography[2, 0] * x + homography[2, 1] * y + homography[2, 2]
        local = jacobian(homography, x, y)
        if w <= 0 or np.linalg.det(local) <= 0:
            raise AlignmentError(
                "degenerate homography: it mirrors or folds the RAW's frame (the matches are not of one scene)"
            )
        singular = np.linalg.svd(local, compute_uv=False)
        if singular[0] > MAX_ANISOTROPY * singular[1]:
            raise AlignmentError(
                f"degenerate homography: it stretches the RAW's frame {singular[0] / singular[1]:.1f}x more "
                f"along one axis than the other (at most {MAX_ANISOTROPY} for two cameras side by side)"
            )


def resample_photo(
    photo: np.ndarray, fit: GlobalFit, largest_scale: float = 1.25
) -> tuple[np.ndarray, np.ndarray]:
    """The photo brought near the RAW's pixel scale when it is much finer, and the homography onto it.

    Warping straight from a photo with many more pixels than the RAW grid would alias; INTER_AREA averages
    them first, so the one resampling per patch that follows is close to 1:1.
    """
    if fit.photo_scale <= largest_scale:
        return photo, fit.homography
    factor = 1.0 / fit.photo_scale
    size = (max(1, round(photo.shape[1] * factor)), max(1, round(photo.shape[0] * factor)))
    smaller = cv2.resize(photo, size, interpolation=cv2.INTER_AREA)
    scale = np.diag([size[0] / photo.shape[1], size[1] / photo.shape[0], 1.0])
    return smaller, scale @ fit.homography


def warp_to_grid(
    image: np.ndarray, homography: np.ndarray, width: int, height: int, interpolation: int = cv2.INTER_LINEAR
) -> np.ndarray:
    """``image`` (photo pixels) sampled on the RAW grid's ``width`` x ``height`` through ``homography``."""
    return cv2.warpPerspective(
        image,
        homography,
        (width, height),
        flags=interpolation | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_CONSTANT,
    )


def coverage(photo_shape: tuple[int, int], homography: np.ndarray, width: int, height: int) -> np.ndarray:
    """Bool (height, width): RAW grid pixels whose photo position lies inside the photo."""
    inside = np.ones(photo_shape[:2], np.uint8)
    return warp_to_grid(inside, homography, width, height, cv2.INTER_NEAREST).astype(bool)


def refine(reference: np.ndarray, warped: np.ndarray, margin: int) -> np.ndarray | None:
    """The sub-pixel shift (dx, dy) with ``warped(p + shift) ~ reference(p)``, or None if ECC does not converge.

    ``reference`` is a patch of the RAW render's luminance; ``warped`` the photo's warped luminance over
    the same patch grown by ``margin`` on every side, so the shift can reach ``margin`` px without leaving
    it. ECC maximises a normalised correlation, so exposure and contrast differences do not bias it.
    """
    start = np.array([[1, 0, margin], [0, 1, margin]], np.float32)
    try:
        _, found = cv2.findTransformECC(
            high_pass(reference), high_pass(warped), start, cv2.MOTION_TRANSLATION, ECC_CRITERIA, None, 5
        )
    except cv2.error:  # "Iterations do not converge", or a flat patch ECC cannot correlate
        return None
    return found[:, 2].astype(np.float64) - margin


def high_pass(luma: np.ndarray) -> np.ndarray:
    """The luminance less its HIGH_PASS_SIGMA blur: edges and texture without the slow shading that two
    cameras' tone curves render differently (on a smooth ramp that difference would pull the shift)."""
    return luma - cv2.GaussianBlur(luma, (0, 0), HIGH_PASS_SIGMA, borderType=cv2.BORDER_REFLECT)


def photo_patch(photo: np.ndarray, homography: np.ndarray, left: float, top: float, size: int) -> np.ndarray:
    """The photo resampled once onto the ``size``-square RAW grid patch whose top-left pixel sits at (left, top)."""
    offset = np.array([[1, 0, left], [0, 1, top], [0, 0, 1]], np.float64)
    patch = cv2.warpPerspective(
        photo,
        homography @ offset,
        (size, size),
        flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REPLICATE,
    )
    return np.clip(patch, 0.0, 1.0)


def gradients(luma: np.ndarray) -> np.ndarray:
    """(H, W, 2) x and y derivatives of the luminance, after a GRADIENT_SIGMA blur."""
    blurred = cv2.GaussianBlur(luma, (0, 0), GRADIENT_SIGMA)
    return np.stack([cv2.Sobel(blurred, cv2.CV_32F, 1, 0), cv2.Sobel(blurred, cv2.CV_32F, 0, 1)], axis=-1)


def _noise_response(luma: np.ndarray) -> np.ndarray:
    """Immerkaer's 3x3 mask over the image: it cancels planes and gentle curves, so what remains is mostly
    noise (J. Immerkaer, "Fast Noise Variance Estimation", CVIU 64(2), 1996)."""
    return cv2.filter2D(luma, cv2.CV_32F, _IMMERKAER, borderType=cv2.BORDER_REFLECT)


@cache
def _noise_gain() -> float:
    """Gradient RMS that white noise of standard deviation 1 has after ``gradients``: the norm of its
    impulse response, computed rather than approximated."""
    impulse = np.zeros((31, 31), np.float32)
    impulse[15, 15] = 1.0
    return float(np.sqrt((gradients(impulse) ** 2).sum()))


def gradient_agreement(reference: np.ndarray, photo: np.ndarray, blocks: int) -> float | None:
    """The lowest normalised cross-correlation of the two luminances' gradients over ``blocks`` x ``blocks`` cells.

    A region that moved, or an object in one view only, gives a low value in its own cell even when the
    rest of the patch matches. A cell counts when either view has structure there: gradient RMS above 3x
    what the noisier view's noise alone gives in that cell (at least FLAT), since fainter structure cannot be
    compared. Noise is estimated per cell because a RAW's rendered noise depends on the signal (shadows,
    lifted by the tone curve, are the noisiest): 1.4826 x median |Immerkaer response| / 6 (the mask's norm)
    is Gaussian noise's standard deviation, and a median is barely moved by the cell's edges. None when every
    cell is flat in both views (nothing to misalign there).
    """
    reference, photo = (
        cv2.resize(view, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA) for view in (reference, photo)
    )
    first, second = gradients(reference), gradients(photo)
    noise = np.stack([_noise_response(reference), _noise_response(photo)], axis=-1)
    gain = _noise_gain()
    lowest = None
    for rows in np.array_split(np.arange(reference.shape[0]), blocks):
        for cols in np.array_split(np.arange(reference.shape[1]), blocks):
            cell = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
            a = first[cell].reshape(-1, 2)
            b = second[cell].reshape(-1, 2)
            sigma = 1.4826 * np.median(np.abs(noise[cell].reshape(-1, 2)), axis=0).max() / 6.0
            floor = max(FLAT, 3.0 * gain * sigma)
            a = a - a.mean(axis=0)
            b = b - b.mean(axis=0)
            energy_a, energy_b = float((a * a).sum()), float((b * b).sum())
            if max(energy_a, energy_b) < floor * floor * len(a):
                continue
            score = float((a * b).sum()) / max(np.sqrt(energy_a * energy_b), 1e-12)
            lowest = score if lowest is None else min(lowest, score)
    return lowest
