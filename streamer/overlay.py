"""Pure drawing: an RGB image and its faces in, an annotated copy out."""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import cv2
import numpy as np

from streamer.classify import UNCERTAIN
from streamer.types import Face

FONT = cv2.FONT_HERSHEY_SIMPLEX
BOX_COLOURS = [(0, 220, 90), (255, 170, 0), (0, 160, 255), (230, 60, 200)]  # RGB
TEXT_COLOUR = (0, 0, 0)


def face_caption(face: Face) -> str:
    """ "male 0.97 | shaved 0.88", or the detector's confidence when there are no labels;
    "#7 male 0.97" for a tracked face."""
    tag = f"#{face.track} " if face.track is not None else ""
    if not face.labels:
        return f"{tag}face {face.box.confidence:.2f}"
    return tag + " | ".join(
        f"{lab.label} {lab.probability:.2f}" if lab.label != UNCERTAIN else f"{lab.classifier}?"
        for lab in face.labels
    )


def _colour(face: Face) -> tuple[int, int, int]:
    if not face.labels:
        return BOX_COLOURS[0]
    return BOX_COLOURS[zlib.crc32(face.labels[0].label.encode()) % len(BOX_COLOURS)]


def draw_faces(image: np.ndarray, faces: Sequence[Face], note: str | None = None) -> np.ndarray:
    """A copy of ``image`` with each face's box and caption; sizes scale with the frame."""
    out = image.copy()
    h, w = out.shape[:2]
    short = min(h, w)
    thick = max(1, round(short / 240))
    scale = max(0.35, short / 720)
    for face in faces:
        b = face.box
        colour = _colour(face)
        cv2.rectangle(out, (b.left, b.top), (b.right, b.bottom), colour, thick, cv2.LINE_AA)
        caption = face_caption(face)
        (tw, th), base = cv2.getTextSize(caption, FONT, scale, max(1, thick // 2 + 1))
        x = min(max(0, b.left), max(0, w - tw - 4))
        y = b.top - 4 if b.top - th - base - 4 >= 0 else min(h - 1, b.bottom + th + base + 4)
        cv2.rectangle(out, (x, y - th - base), (x + tw + 4, y + base // 2), colour, -1)
        cv2.putText(
            out,
            caption,
            (x + 2, y - base // 2),
            FONT,
            scale,
            TEXT_COLOUR,
            max(1, thick // 2 + 1),
            cv2.LINE_AA,
        )
    if note:
        cv2.putText(out, note, (8, h - 8), FONT, scale * 0.8, (255, 255, 255), 1, cv2.LINE_AA)
    return out
