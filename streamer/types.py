"""The contract between stages: only these types cross a stage boundary."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# MMOD's (and dlib's) threshold: a detection scoring this or more is a face. One scoring less (the
# detector keeps them down to ``pipeline.weak_score``) is weak: it may keep a track that is there
# and place its box, but never starts one (docs/tracking.md).
FACE_SCORE = 0.0


@dataclass(frozen=True, slots=True)
class Box:
    """A face box in dlib's convention: inclusive integer pixel coordinates.

    ``right - left + 1`` is the width; ``confidence`` is the detector's raw score.
    """

    left: int
    top: int
    right: int
    bottom: int
    confidence: float

    @property
    def width(self) -> int:
        return self.right - self.left + 1

    @property
    def height(self) -> int:
        return self.bottom - self.top + 1

    @property
    def weak(self) -> bool:
        """Scored under ``FACE_SCORE``: a weak detection, not a face on its own."""
        return self.confidence < FACE_SCORE

    def iou(self, other: Box) -> float:
        """Intersection over union with ``other`` (inclusive pixels)."""
        iw = min(self.right, other.right) - max(self.left, other.left) + 1
        ih = min(self.bottom, other.bottom) - max(self.top, other.top) + 1
        if iw <= 0 or ih <= 0:
            return 0.0
        inter = iw * ih
        return inter / (self.width * self.height + other.width * other.height - inter)

    def as_dict(self) -> dict[str, float | int]:
        return {
            "left": self.left,
            "top": self.top,
            "right": self.right,
            "bottom": self.bottom,
            "confidence": round(float(self.confidence), 6),
        }


@dataclass(frozen=True, slots=True)
class Label:
    """One classifier's verdict on one face."""

    classifier: str
    label: str  # the winning class, or "?" when below the classifier's threshold
    probability: float


@dataclass(frozen=True, slots=True)
class Face:
    box: Box
    labels: tuple[Label, ...] = ()
    track: int | None = None  # the id of the track this face belongs to (None: straight from the detector)
    # who it is: dlib's 128-D face descriptor (float32; how near is the same person: see
    # track/identity.py), where the face was classified on the face backbone; None where it was not
    identity: np.ndarray | None = field(default=None, compare=False, repr=False)

    def as_dict(self) -> dict[str, object]:
        d: dict[str, object] = self.box.as_dict()
        d["track"] = self.track
        d["labels"] = {
            lab.classifier: {"label": lab.label, "p": round(lab.probability, 4)} for lab in self.labels
        }
        return d


@dataclass(frozen=True, slots=True)
class Frame:
    """A decoded RGB frame (H, W, 3, uint8) from one stream."""

    stream: str
    index: int
    image: np.ndarray
    captured_at: float  # time.time() when the frame was captured / received
    pts: int | None = None
    time_base: object | None = None


@dataclass(frozen=True, slots=True)
class Region:
    """A part of a frame the detector looks at: source pixels ``left..right`` x ``top..bottom``
    (inclusive), scaled by ``scale`` (detector pixels per source pixel) before detection.

    ``why`` says what asked for it: "track", "motion", "sweep" (or "whole": the frame)."""

    left: int
    top: int
    right: int
    bottom: int
    scale: float
    why: str = "sweep"

    @property
    def pixels(self) -> int:
        """Detector input pixels this region costs."""
        return round((self.right - self.left + 1) * self.scale) * round(
            (self.bottom - self.top + 1) * self.scale
        )


@dataclass(frozen=True, slots=True)
class Detections:
    """The faces found in one frame of one stream.

    ``regions``: where the detector looked (empty: the whole frame). A face outside them was
    not looked for, so a track there was not missed."""

    stream: str
    frame_index: int
    captured_at: float
    faces: tuple[Face, ...]
    regions: tuple[Region, ...] = ()


@dataclass(frozen=True, slots=True)
class BatchTimings:
    """What one inference batch cost, measured inside the worker."""

    detect_s: float
    classify_s: float
    n_frames: int
    n_faces: int
    classifier_batches: dict[str, int] = field(default_factory=dict)
    classifier_errors: dict[str, str] = field(default_factory=dict)  # classifier -> error this batch
    oom_splits: int = 0  # times a batch was halved after running out of memory
