"""The detector contract and input checks shared by every detector backend."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from streamer.types import Box

# Frames larger than this (in either side) are refused: a 8K frame would take
# minutes on the CPU and gigabytes of memory. Scale such sources down first.
MAX_SIDE = 4096


class BadImageError(ValueError):
    """The image cannot be fed to a detector (empty, wrong shape or dtype, too big)."""


def as_rgb(image: np.ndarray, max_side: int = MAX_SIDE) -> np.ndarray:
    """Return ``image`` as a C-contiguous (H, W, 3) uint8 RGB array.

    Grayscale (H, W) or (H, W, 1) is expanded, RGBA drops alpha. Anything else,
    an empty image, or a side over ``max_side`` raises BadImageError.
    """
    if not isinstance(image, np.ndarray):
        raise BadImageError(f"expected a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise BadImageError(f"expected uint8 pixels, got {image.dtype}")
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[2] not in (1, 3, 4):
        raise BadImageError(f"expected (H, W), (H, W, 3) or (H, W, 4), got {image.shape}")
    h, w = image.shape[:2]
    if h == 0 or w == 0:
        raise BadImageError(f"empty image {image.shape}")
    if max(h, w) > max_side:
        raise BadImageError(f"image {w}x{h} exceeds the {max_side}px limit; scale it down")
    if image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    elif image.shape[2] == 4:
        image = image[:, :, :3]
    return np.ascontiguousarray(image)


class Detector(Protocol):
    """Finds faces in RGB images. Implementations must be safe to call repeatedly."""

    name: str

    def detect(self, images: Sequence[np.ndarray], upsample: int = 0, exact: bool = True) -> list[list[Box]]:
        """One list of boxes per image, in dlib's inclusive integer coordinates,
        sorted by descending confidence. Images may differ in size. ``exact=False`` allows an
        approximate image pyramid where that is cheaper (regions); dlib's own is always exact."""
        ...
