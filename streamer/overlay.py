"""Pure drawing: an RGB image and its faces in, an annotated copy out."""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from streamer.classify import UNCERTAIN
from streamer.types import Face

FONT = cv2.FONT_HERSHEY_SIMPLEX
BOX_COLOURS = [(0, 220, 90), (255, 170, 0), (0, 160, 255), (230, 60, 200)]  # RGB
TEXT_COLOUR = (0, 0, 0)
CAPTION_FACE_PX = 60  # a face this tall gets a caption at font scale 1 (at most the frame's scale)


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


@dataclass(frozen=True)
class Caption:
    text: str
    x: int
    y: int  # baseline of the plate's bottom
    width: int
    height: int
    base: int
    scale: float
    weight: int

    @property
    def rect(self) -> tuple[int, int, int, int]:
        return _plate(self.x, self.y, self.width, self.height, self.base)


def layout(faces: Sequence[Face], w: int, h: int) -> list[tuple[Face, Caption]]:
    """Where each face's caption goes on a ``w`` x ``h`` frame: above its box (below when there is
    no room), at a size that grows with the frame but stays small on a small face (a 40 px face in
    a 1080p street does not carry a caption wider than a person); one that would cover a caption
    already placed goes below the box or further up instead, where that is free."""
    thick, frame_scale = _sizes(w, h)
    out: list[tuple[Face, Caption]] = []
    for face in sorted(faces, key=lambda f: f.box.top):
        b = face.box
        text = face_caption(face)
        scale = min(frame_scale, max(0.35, b.height / CAPTION_FACE_PX))
        weight = max(1, round((thick // 2 + 1) * scale / frame_scale))
        (tw, th), base = cv2.getTextSize(text, FONT, scale, weight)
        x = min(max(0, b.left), max(0, w - tw - 4))
        step = th + base + 2
        above = b.top - 4 if b.top - th - base - 4 >= 0 else min(h - 1, b.bottom + th + base + 4)
        spots = [above, min(h - 1, b.bottom + th + base + 4), *(above - k * step for k in range(1, 7))]
        taken = [c.rect for _, c in out]
        free = (y for y in spots if th + base <= y < h and not _covers(taken, _plate(x, y, tw, th, base)))
        y = next(free, above)
        out.append((face, Caption(text, x, y, tw, th, base, scale, weight)))
    return out


def draw_faces(image: np.ndarray, faces: Sequence[Face], note: str | None = None) -> np.ndarray:
    """A copy of ``image`` with each face's box and caption (see ``layout``)."""
    out = image.copy()
    h, w = out.shape[:2]
    thick, scale = _sizes(w, h)
    for face, c in layout(faces, w, h):
        b = face.box
        colour = _colour(face)
        cv2.rectangle(out, (b.left, b.top), (b.right, b.bottom), colour, thick, cv2.LINE_AA)
        cv2.rectangle(out, (c.x, c.y - c.height - c.base), (c.x + c.width + 4, c.y + c.base // 2), colour, -1)
        cv2.putText(
            out, c.text, (c.x + 2, c.y - c.base // 2), FONT, c.scale, TEXT_COLOUR, c.weight, cv2.LINE_AA
        )
    if note:
        cv2.putText(out, note, (8, h - 8), FONT, scale * 0.8, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def _sizes(w: int, h: int) -> tuple[int, float]:
    """Line thickness and caption font scale for a ``w`` x ``h`` frame: legible at any size."""
    short = min(h, w)
    return max(1, round(short / 240)), max(0.35, short / 720)


def _plate(x: int, y: int, width: int, height: int, base: int) -> tuple[int, int, int, int]:
    """A caption's plate (x0, y0, x1, y1) for text ``width`` x ``height`` on baseline ``y``."""
    return (x, y - height - base, x + width + 4, y)


def _covers(placed: Sequence[tuple[int, int, int, int]], r: tuple[int, int, int, int]) -> bool:
    return any(r[0] < p[2] and p[0] < r[2] and r[1] < p[3] and p[1] < r[3] for p in placed)
