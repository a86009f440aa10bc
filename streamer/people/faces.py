"""The checks an uploaded photo passes before anything is stored, the one face it must hold, and
``FaceFinder``: a photo described in this process (``streamer people add``, offline; the service
asks its model stage, inference/photo.py, which runs the same steps): the configured detector on
the image scaled to ``pipeline.detect_max_side`` (boxes mapped back), then the face backbone's
dlib 5-point alignment and ResNet, the same code the Engine runs on a live face; an enrolled
photo's descriptor is averaged with its mirror image's (``ENROL_MIRRORED``).
"""

from __future__ import annotations

import struct
import threading
from dataclasses import dataclass

import cv2
import numpy as np

from streamer.history.looks import face_crop
from streamer.types import Box

MIN_SIDE = 24  # a photo narrower than this holds no face the detector can find
MAX_PIXELS = 40_000_000  # an upload's width x height at most (read from its header, before decoding)
# An enrolled photo's descriptor is the mean of its chip's and the mirrored chip's: done once at
# enrolment, live faces are described by one pass. On LFW it names about as many of a library of
# 20 people, 1-2 points more of 100 and 1-4 more of 1,167 at the same share of strangers named
# (docs/people.md).
ENROL_MIRRORED = True


class BadPhoto(ValueError):
    """The photo cannot be enrolled; ``status`` is the HTTP answer (400, 413, 415, 422)."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


def image_size(data: bytes) -> tuple[str, int, int]:
    """("jpeg" or "png", width, height) from the header alone; BadPhoto(415) if neither."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24 and data[12:16] == b"IHDR":
        w, h = struct.unpack(">II", data[16:24])
        return "png", w, h
    if data[:3] == b"\xff\xd8\xff":
        i = 2
        while i + 9 < len(data):
            if data[i] != 0xFF:
                i += 1
                continue
            marker = data[i + 1]
            if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7 or marker == 0xFF:
                i += 1 if marker == 0xFF else 2
                continue
            length = struct.unpack(">H", data[i + 2 : i + 4])[0]
            if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
                h, w = struct.unpack(">HH", data[i + 5 : i + 9])
                return "jpeg", w, h
            i += 2 + length
        raise BadPhoto("not a readable JPEG (no frame header)", 415)
    raise BadPhoto("not a JPEG or PNG image", 415)


def decode_photo(data: bytes, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """An uploaded JPEG or PNG as RGB, its size checked from the header before decoding."""
    if not data:
        raise BadPhoto("empty upload", 400)
    kind, w, h = image_size(data)
    if w <= 0 or h <= 0:
        raise BadPhoto(f"{kind} of size {w}x{h}", 415)
    if w * h > max_pixels:
        raise BadPhoto(f"image of {w}x{h} pixels: at most {max_pixels:,} pixels are accepted", 413)
    if min(w, h) < MIN_SIDE:
        raise BadPhoto(f"no face found in the photo ({w}x{h} pixels: too small to hold one)")
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise BadPhoto(f"the {kind} does not decode", 415)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


@dataclass(frozen=True)
class Described:
    box: Box
    descriptor: np.ndarray  # (128,) float32
    crop: np.ndarray  # RGB face with a margin, for the library's pictures


class FaceFinder:
    """Detector and backbone, built on first use (seconds; then ~0.1-0.3 s a photo on a CPU).
    Thread-safe: one photo at a time."""

    def __init__(
        self, detector: str = "mmod", max_side: int = 640, upsample: int = 0, runtime: str = "auto"
    ) -> None:
        self.detector_name, self.max_side, self.upsample, self.runtime = detector, max_side, upsample, runtime
        self._detector = None
        self._backbone = None
        self._lock = threading.Lock()

    @classmethod
    def from_config(cls, config) -> FaceFinder:
        p = config.pipeline
        return cls(p.detector, p.detect_max_side, p.upsample, p.runtime)

    def _load(self) -> None:
        if self._detector is None:
            from streamer.classify.backbone import FaceBackbone
            from streamer.detect import make_detector

            opts = {"runtime": self.runtime} if self.detector_name == "mmod" else {}
            self._detector = make_detector(self.detector_name, **opts)
            self._backbone = FaceBackbone(runtime=self.runtime)

    def boxes(self, image: np.ndarray) -> list[Box]:
        from streamer.inference.photo import photo_boxes

        with self._lock:
            self._load()
            detect = self._detector.detect
            return photo_boxes(lambda im, up: detect([im], up)[0], image, self.max_side, self.upsample)

    def describe(self, image: np.ndarray, boxes: list[Box], mirrored: bool = False) -> np.ndarray:
        """(len(boxes), 128) descriptors as live; ``mirrored``: each the mean of the aligned chip's
        and its mirror image's (a second backbone pass)."""
        from streamer.inference.photo import chip_descriptors

        with self._lock:
            self._load()
            return chip_descriptors(self._backbone, self._backbone.chips(image, boxes), mirrored)

    def one_face(self, image: np.ndarray, pick_central: bool = False, mirrored: bool = False) -> Described:
        """The photo's one face; BadPhoto(422) for none or (unless ``pick_central``) several.
        ``mirrored``: its descriptor averaged with its mirror image's, as enrolment describes a photo
        (``ENROL_MIRRORED``)."""
        b = one_box(image, self.boxes(image), pick_central)
        return described(image, b, self.describe(image, [b], mirrored)[0])


def one_box(image: np.ndarray, boxes: list[Box], pick_central: bool = False) -> Box:
    """The photo's one face among ``boxes``; BadPhoto(422) for none or (unless ``pick_central``:
    the one nearest the photo's centre) several."""
    if not boxes:
        raise BadPhoto("no face found in the photo")
    if len(boxes) > 1 and not pick_central:
        raise BadPhoto(f"{len(boxes)} faces in the photo: upload one with a single face")
    h, w = image.shape[:2]
    return min(
        boxes,
        key=lambda b: ((b.left + b.right) / 2 - w / 2) ** 2 + ((b.top + b.bottom) / 2 - h / 2) ** 2,
    )


def described(image: np.ndarray, b: Box, descriptor: np.ndarray) -> Described:
    """A face of ``image`` with its descriptor, and its picture for the library."""
    crop = face_crop(image, (b.left, b.top, b.right, b.bottom), 160)
    return Described(b, np.asarray(descriptor, np.float32), crop)
