"""Detecting in parts of a frame: cut a region at its scale, map its boxes back, merge them.

Shared by every inference backend (in-process Engine, Triton client), so that a region's
boxes mean the same wherever it ran. Merging follows dlib's own non-max suppression rule
(the MMOD network's IoU and covered thresholds), as if one detector had seen the frame.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from streamer.detect.mmod.postprocess import overlaps
from streamer.types import Box, Face, Region

# dlib's mmod_human_face_detector.dat: test_box_overlap(iou 0.338..., percent covered 1.0)
NMS_IOU = 0.3382761351109955
NMS_COVERED = 1.0
FACE_PX = 80  # MMOD's window: at a region's scale the smallest face it finds is this wide
# a face this share of FACE_PX wide at a region's scale could have been found there: MMOD finds
# none of 69 reference faces (three real clips) cut to 48 px, 5 at 56 px, 38 at 64, 60 at 72, 67 at 80
LOOKED_FACE = 0.8
EDGE_PX = 2  # a box this close to a region's cut edge (inside the frame) may be a part face: dropped
NEAR_CUT = 0.25  # a box within this share of its width of a cut edge yields to one further inside


def clip(r: Region, width: int, height: int) -> Region:
    """``r`` inside a ``width`` x ``height`` frame."""
    return Region(
        max(0, r.left), max(0, r.top), min(width - 1, r.right), min(height - 1, r.bottom), r.scale, r.why
    )


def square(cx: float, cy: float, side: float, s: float, width: int, height: int, why: str) -> Region:
    """A ``side`` square around (cx, cy), shifted (not shrunk) to stay inside the frame where it can."""
    side = min(side, width, height)
    x0 = min(max(0.0, cx - side / 2), width - side)
    y0 = min(max(0.0, cy - side / 2), height - side)
    return Region(round(x0), round(y0), round(x0 + side) - 1, round(y0 + side) - 1, s, why)


def cut(image: np.ndarray, r: Region) -> np.ndarray:
    """The region's pixels at its scale (a view when the scale is 1)."""
    crop = image[r.top : r.bottom + 1, r.left : r.right + 1]
    if r.scale == 1.0:
        return crop
    h, w = crop.shape[:2]
    size = (max(1, round(w * r.scale)), max(1, round(h * r.scale)))
    return cv2.resize(crop, size, interpolation=cv2.INTER_AREA if r.scale < 1 else cv2.INTER_LINEAR)


def to_frame(b: Box, r: Region, width: int, height: int) -> Box:
    """A box found in ``cut(image, r)`` in the frame's pixels (like dlib's, it may reach past the
    frame's edge where the face does)."""
    s = r.scale
    return Box(
        r.left + round(b.left / s),
        r.top + round(b.top / s),
        r.left + round((b.right + 1) / s) - 1,
        r.top + round((b.bottom + 1) / s) - 1,
        b.confidence,
    )


def at_cut_edge(b: Box, r: Region, width: int, height: int, margin: float = EDGE_PX) -> bool:
    """Whether a (frame) box comes within ``margin`` of an edge where the region cut the frame
    (the frame's own edges do not count): there, it may be part of a face."""
    return (
        (r.left > 0 and b.left - r.left < margin)
        or (r.top > 0 and b.top - r.top < margin)
        or (r.right < width - 1 and r.right - b.right < margin)
        or (r.bottom < height - 1 and r.bottom - b.bottom < margin)
    )


def boxes_in(r: Region, boxes: Sequence[Box]) -> list[Box]:
    """Frame boxes in a region's detector pixels (for the classifier-skip hint)."""
    s = r.scale
    return [
        Box(
            round((b.left - r.left) * s),
            round((b.top - r.top) * s),
            round((b.right + 1 - r.left) * s) - 1,
            round((b.bottom + 1 - r.top) * s) - 1,
            b.confidence,
        )
        for b in boxes
    ]


def merge(
    found: Sequence[Sequence[Face]], regions: Sequence[Region], width: int, height: int
) -> tuple[Face, ...]:
    """Faces found per region (in region pixels) as one frame's faces: mapped back, part faces at
    cut edges dropped, overlaps resolved by dlib's non-max suppression (best score first, but a
    box well inside its region before one near a cut, and a face before a weak detection)."""
    faces: list[Face] = []
    near_cut: dict[int, bool] = {}
    for fs, r in zip(found, regions, strict=True):
        for f in fs:
            b = to_frame(f.box, r, width, height)
            if not at_cut_edge(b, r, width, height):
                faces.append(Face(b, f.labels, f.track, f.identity))
                near_cut[id(faces[-1])] = at_cut_edge(b, r, width, height, NEAR_CUT * b.width)
    # a face well inside its region first: near a cut it may be part of a face, scored as high; and
    # faces before weak detections (types.FACE_SCORE): a weak one never suppresses a face
    faces.sort(key=lambda f: (f.box.weak, near_cut.get(id(f), False), -f.box.confidence))
    kept: list[Face] = []
    rects = np.zeros((0, 4), dtype=np.int64)
    for f in faces:
        rect = np.array([f.box.left, f.box.top, f.box.right, f.box.bottom], dtype=np.int64)
        if not overlaps(rects, rect, NMS_IOU, NMS_COVERED):
            kept.append(f)
            rects = np.vstack([rects, rect[None]])
    return tuple(kept)


CUT_OFF = 0.2  # a face cut by up to this part of its width on each side still counts as looked at


def holds(r: Region, box: Box) -> bool:
    """Whether region ``r`` holds ``box`` whole."""
    return r.left <= box.left and box.right <= r.right and r.top <= box.top and box.bottom <= r.bottom


def too_small_in(box: Box, regions: Sequence[Region]) -> bool:
    """Whether a track's region (the planner's look at a tracked face, at the finest scale it uses)
    holds ``box`` whole at a scale where it is too small for the detector: looked at as closely as
    the planner looks, and a face that small could not have been found there."""
    return any(
        r.why == "track" and holds(r, box) and box.width * r.scale < LOOKED_FACE * FACE_PX for r in regions
    )


def looked_at(box: Box, regions: Sequence[Region], frame: tuple[int, int] | None = None) -> bool:
    """Whether a round with these regions would have found a face at ``box``: in a region whose
    scale makes it big enough for the detector, and not cut by the region's edge by more than
    ``CUT_OFF`` of its width on a side (a face across a tile's edge is half a face there). The
    part of the box outside the ``frame`` (width, height), where known, is not counted as cut.
    No regions: the whole frame. A propose region does not count: MMOD looked only at what HOG
    proposed there."""
    if not regions:
        return True
    regions = [r for r in regions if r.why != "propose"]  # it looked only at the faces HOG proposed
    width, m = box.width, CUT_OFF * box.width
    left, top, right, bottom = box.left, box.top, box.right, box.bottom
    if frame is not None:  # the frame's edge cuts the face for every region alike
        left, top = max(0, left), max(0, top)
        right, bottom = min(frame[0] - 1, right), min(frame[1] - 1, bottom)
    return any(
        r.left <= left + m
        and right - m <= r.right
        and r.top <= top + m
        and bottom - m <= r.bottom
        and width * r.scale >= LOOKED_FACE * FACE_PX
        for r in regions
    )
