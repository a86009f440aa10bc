"""What travels between a front end and the Triton model server: one model, its tensors, faces as JSON.

Request: ``image``, uint8 [batch, height, width, 3] (RGB, already scaled to the detection size),
or (transport "jpeg", model ``streamer_faces_jpeg``) ``jpeg``, bytes [batch, 1]: the same frames as JPEG.
Response: ``faces``, one JSON document per frame (bytes): boxes in the sent image's coordinates,
labels, or an error; and the server batch's model time, so the front end's stage metrics stay true.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from streamer.inference.engine import FrameResult
from streamer.types import BatchTimings, Box, Face, Label

MODEL = "streamer_faces"
INPUT = "image"
OUTPUT = "faces"
# the same Engine behind a second model that takes each frame as JPEG bytes (~15x smaller than raw RGB)
JPEG_MODEL = "streamer_faces_jpeg"
JPEG_INPUT = "jpeg"
JPEG_QUALITY = 90
# a photo to describe (photo.py): its faces ("image", scaled to the detection size, one a request;
# "faces": a JSON list of [left, top, right, bottom, score] in its pixels), then its faces' chips
# ("chip", uint8 [150, 150, 3] each; "descriptor" and "descriptor_flip", float32 [128] each: the
# chip's, and the mean of the chip's and its mirror image's)
PHOTO_FACES_MODEL = "streamer_photo_faces"
PHOTO_CHIPS_MODEL = "streamer_photo_chips"
CHIP_INPUT = "chip"
DESCRIPTOR = "descriptor"
DESCRIPTOR_FLIP = "descriptor_flip"


def encode_result(result: FrameResult, timings: BatchTimings) -> bytes:
    faces = result.faces
    doc: dict[str, Any] = {
        "faces": [
            [f.box.left, f.box.top, f.box.right, f.box.bottom, float(f.box.confidence)]
            + [[lab.classifier, lab.label, float(lab.probability)] for lab in f.labels]
            for f in faces
        ],
        # each face's identity (Face.identity), rounded: the tracks' identity check needs ~0.01
        "ids": [None if f.identity is None else [round(float(v), 5) for v in f.identity] for f in faces],
        "t": [timings.detect_s, timings.classify_s, timings.n_frames],
        "clf": timings.classifier_batches,
        "clf_err": timings.classifier_errors,
    }
    if result.error is not None:
        doc["error"] = result.error
    return json.dumps(doc, separators=(",", ":")).encode()


def decode_result(raw: bytes) -> tuple[FrameResult, dict[str, Any]]:
    """The frame's result (boxes in the sent image's coordinates) and the server batch's costs."""
    doc = json.loads(raw)
    ids = doc.get("ids") or [None] * len(doc["faces"])
    faces = tuple(
        Face(
            Box(int(f[0]), int(f[1]), int(f[2]), int(f[3]), float(f[4])),
            tuple(Label(*lab) for lab in f[5:]),
            identity=None if d is None else np.asarray(d, np.float32),
        )
        for f, d in zip(doc["faces"], ids, strict=True)
    )
    return FrameResult(faces=faces, error=doc.get("error")), doc
