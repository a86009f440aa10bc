"""A worker pool for the photo tests (models: the detector and the face backbone, no classifier),
and what a worker runs in place of describing a photo when a test wants it to die."""

from __future__ import annotations

import os

import numpy as np

from streamer.inference.engine import EngineSpec


def photo_spec() -> EngineSpec:
    """The default config's detection (mmod, detect_max_side 640, upsample 0), no classifier."""
    return EngineSpec(detector="mmod", upsample=0, detect_max_side=640)


def die(image: np.ndarray, mirrored: bool, most: int = 0) -> list:
    """A worker dying in the middle of a photo (a segfault in native code looks the same)."""
    os._exit(3)
