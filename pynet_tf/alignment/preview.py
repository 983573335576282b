"""What a person looks at to trust an alignment: a checkerboard of the two views, and a two-frame flicker.

The checkerboard alternates squares of the RAW's classical render and the photo warped onto it: any
misalignment breaks the lines that cross the squares' edges. Kept patches are outlined in green, dropped
ones in red (those outside the photo are not drawn). The flicker GIF shows the two views in turn at the same
size: an aligned pair stands still, whatever its colour difference.
"""

from __future__ import annotations

import io

import cv2
import numpy as np
from PIL import Image

from pynet_tf.alignment.patches import Patch

PREVIEW_SIDE = 1024
"""Longest side of the preview images, in pixels."""
SQUARES = 8
"""Checkerboard squares along the longer side."""
KEPT, DROPPED = (0, 200, 0), (230, 0, 0)


def _small(image: np.ndarray) -> tuple[np.ndarray, float]:
    scale = min(1.0, PREVIEW_SIDE / max(image.shape[:2]))
    size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
    small = cv2.resize(image, size, interpolation=cv2.INTER_AREA) if scale < 1 else image
    return np.clip(np.rint(small * 255), 0, 255).astype(np.uint8), scale


def checkerboard(render: np.ndarray, warped: np.ndarray, patches: list[Patch], patch: int) -> bytes:
    """JPEG bytes: render and warped photo in alternate squares, patch outlines on top."""
    first, scale = _small(render)
    second, _ = _small(warped)
    height, width = first.shape[:2]
    square = max(1, max(height, width) // SQUARES)
    rows, cols = np.indices((height, width))
    board = np.where((((rows // square) + (cols // square)) % 2 == 0)[..., None], first, second)
    board = np.ascontiguousarray(board)
    for item in sorted(
        patches, key=lambda patch: patch.dropped is not None
    ):  # red over green where they overlap
        if item.dropped == "outside the photo":
            continue
        corner = (round(item.left * scale), round(item.top * scale))
        far = (round((item.left + patch) * scale) - 1, round((item.top + patch) * scale) - 1)
        cv2.rectangle(board, corner, far, DROPPED if item.dropped else KEPT, 1)
    buffer = io.BytesIO()
    Image.fromarray(board).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def flicker(render: np.ndarray, warped: np.ndarray) -> bytes:
    """GIF bytes: the render and the warped photo alternating every half second."""
    frames = [Image.fromarray(_small(view)[0]).quantize(colors=256) for view in (render, warped)]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=500, loop=0)
    return buffer.getvalue()
