"""The one face-crop function, shared by the service and by train/.

Training crops must be made exactly as the service makes them live: detect,
expand the box by a margin, clamp to the image, resize.
"""

from __future__ import annotations

import cv2
import numpy as np

from streamer.types import Box

DEFAULT_MARGIN = 0.25


def crop_box(box: Box, width: int, height: int, margin: float = DEFAULT_MARGIN) -> tuple[int, int, int, int]:
    """The expanded crop rectangle (x0, y0, x1, y1), half-open, clamped to the image.

    The box grows by ``margin`` times its width/height on every side, and is made
    square around its centre first so faces keep their aspect ratio.
    """
    cx = (box.left + box.right + 1) / 2.0
    cy = (box.top + box.bottom + 1) / 2.0
    side = max(box.width, box.height) * (1.0 + 2.0 * margin)
    x0 = round(cx - side / 2.0)
    y0 = round(cy - side / 2.0)
    x1 = round(cx + side / 2.0)
    y1 = round(cy + side / 2.0)
    x0, y0 = max(0, x0), max(0, y0)
    x1, y1 = min(width, x1), min(height, y1)
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"box {box} lies outside the {width}x{height} image")
    return x0, y0, x1, y1


def crop_face(
    image: np.ndarray, box: Box, size: tuple[int, int], margin: float = DEFAULT_MARGIN
) -> np.ndarray:
    """Crop ``box`` (expanded by ``margin``) out of an RGB image, resized to ``size`` (h, w)."""
    h, w = image.shape[:2]
    x0, y0, x1, y1 = crop_box(box, w, h, margin)
    patch = image[y0:y1, x0:x1]
    interp = cv2.INTER_AREA if patch.shape[0] > size[0] else cv2.INTER_LINEAR
    return cv2.resize(patch, (size[1], size[0]), interpolation=interp)


def whole_image_box(image: np.ndarray) -> Box:
    """A box covering the whole image (for inputs that are already face crops)."""
    h, w = image.shape[:2]
    return Box(0, 0, w - 1, h - 1, 0.0)
