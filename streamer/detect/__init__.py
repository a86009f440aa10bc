"""Face detectors, selected by name: ``dlib`` (the reference) and ``mmod`` (the Keras port)."""

from __future__ import annotations

from streamer.detect.base import MAX_SIDE, BadImageError, Detector, as_rgb

DETECTORS = ("dlib", "mmod")


def make_detector(name: str, **options: object) -> Detector:
    """Build a detector by name. Heavy imports happen here, not at module import."""
    if name == "dlib":
        from streamer.detect.dlib_cnn import DlibDetector

        return DlibDetector(**options)  # type: ignore[arg-type]
    if name == "mmod":
        from streamer.detect.mmod import MMODDetector  # type: ignore[import-not-found]

        return MMODDetector(**options)  # type: ignore[no-any-return]
    raise ValueError(f"unknown detector {name!r}; choose one of {', '.join(DETECTORS)}")


__all__ = ["DETECTORS", "MAX_SIDE", "BadImageError", "Detector", "as_rgb", "make_detector"]
