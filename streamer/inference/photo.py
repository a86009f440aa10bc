"""Describing a photo (an upload to the face library, an event's snapshot): the model stage's third
call beside ``run`` and ``start`` (WorkerPool.describe_photo, TritonPool.describe_photo).

The same steps wherever the models run: the faces of the whole photo at ``detect_max_side`` and
``upsample`` (when none is found at upsample 0, again at 1: a small face in a large photo), each
face's dlib 5-point chip from the photo at its own resolution, and the backbone's descriptor of the
chip, ``mirrored``: the mean of the chip's and its mirror image's (as enrolment describes a photo,
people.faces.ENROL_MIRRORED). A worker runs them all on its Engine; on Triton the detector and the
backbone run on the model server and the chips are cut on the front end (alignment needs only
dlib's 5-point landmarks, ~10 MB). ``streamer people add`` (offline) runs them in-process
(people.faces.FaceFinder).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from streamer.classify.face_resnet import FLIP_SUFFIX, IDENTITY
from streamer.types import Box


@dataclass(frozen=True)
class PhotoFace:
    box: Box  # in the photo's pixels
    chip: np.ndarray | None  # dlib's aligned 150x150 RGB chip (None: not described, see ``most``)
    descriptor: np.ndarray | None  # (128,) float32


def photo_boxes(
    detect: Callable[[np.ndarray, int], list[Box]], image: np.ndarray, max_side: int, upsample: int
) -> list[Box]:
    """The faces of an RGB photo: ``detect(scaled image, upsample)`` on the photo scaled to
    ``max_side``, at upsample 1 when ``upsample`` 0 finds none; boxes in the photo's pixels, the
    weak ones (scored under 0: no face on their own) left out."""
    from streamer.inference.engine import scale_for_detection, unscale_box

    small, s = scale_for_detection(image, max_side)
    found = [b for b in detect(small, upsample) if not b.weak]
    if not found and upsample == 0:  # small faces: live looks at them upsampled too
        found = [b for b in detect(small, 1) if not b.weak]
    h, w = image.shape[:2]
    return [unscale_box(b, s, w, h) for b in found]


def chip_descriptors(backbone, chips: Sequence[np.ndarray], mirrored: bool) -> np.ndarray:
    """(len(chips), 128) float32: the backbone's descriptor of each chip, ``mirrored`` the mean of
    the chip's and its mirror image's (a second pass)."""
    if len(chips) == 0:
        return np.zeros((0, 128), np.float32)
    key = IDENTITY + (FLIP_SUFFIX if mirrored else "")
    return np.asarray(backbone.features(np.stack(chips), mirrored=mirrored)[key], np.float32)


def describe_photo(engine, image: np.ndarray, mirrored: bool, most: int = 0) -> list[PhotoFace]:
    """Every face of an RGB photo with its chip and descriptor, on ``engine``'s detector and face
    backbone (the backbone is loaded here the first time when no classifier of the engine uses it).
    With more than ``most`` faces found (0: any number), none is described (``undescribed``)."""
    from streamer.detect import as_rgb

    image = np.ascontiguousarray(as_rgb(image))
    spec = engine.spec
    detect = engine.detector.detect
    boxes = photo_boxes(lambda im, up: detect([im], up)[0], image, spec.detect_max_side, spec.upsample)
    if too_many(boxes, most):
        return undescribed(boxes)
    backbone = photo_backbone(engine)
    chips = backbone.chips(image, boxes)
    ds = chip_descriptors(backbone, chips, mirrored)
    return [PhotoFace(b, c, d) for b, c, d in zip(boxes, chips, ds, strict=True)]


def too_many(boxes: Sequence[Box], most: int) -> bool:
    return bool(most) and len(boxes) > most


def undescribed(boxes: Sequence[Box]) -> list[PhotoFace]:
    """The faces of a photo that has more than the caller wants (an upload of one person showing a
    crowd): their boxes alone, without the alignment and backbone passes (two a face, mirrored) that
    would hold the model stage up before the photo is turned down anyway."""
    return [PhotoFace(b, None, None) for b in boxes]


_OWN_BACKBONE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # engine -> its photos' backbone


def photo_backbone(engine):
    """The engine's face backbone, or, when none of its classifiers uses it, one for its photos,
    loaded on first use (kept apart from ``engine.backbone``, which the live path and its warm-up
    read as the classifiers' own)."""
    if engine.backbone is not None:
        return engine.backbone
    if engine not in _OWN_BACKBONE:
        from streamer.classify.backbone import FaceBackbone

        _OWN_BACKBONE[engine] = FaceBackbone(
            engine.spec.face_backbone or None, runtime=engine.spec.runtime, threads=engine.spec.threads
        )
    return _OWN_BACKBONE[engine]
