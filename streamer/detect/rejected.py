"""HOG proposals MMOD already turned down: not looked at again while their picture stays the same.

dlib's HOG proposes at a low threshold (proposals.py), so it proposes the same non-faces (a poster,
a railing, a bag) every time its tile comes round, and MMOD looked at each of them every time: on
a dense crossing, one static non-face took 12 verify looks in 14 s. Here, a proposal that MMOD
looked at and found no face on is remembered with a small grey thumbnail of its box; a later
proposal at the same place (IoU > SAME_IOU) is not looked at while the remembered box's pixels
still look the same (normalised correlation with the thumbnail > SAME_PICTURE) and for at most
FORGET_ROUNDS of the stream's proposal rounds. A face coming there changes the picture, so it is
looked at; a scene cut changes it everywhere, and clears the memory at the stream's next round
(``Rejected.cut``; the whole frame's layout changing as the tracker's cut test sees it, scene.py).

Per stream (``Proposer`` keeps one per stream key), at most MAX_REMEMBERED places each, the oldest
forgotten first. A worker process keeps its own: with several detector workers, a stream's rounds
on different workers each pay their own first look.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from streamer.track.appearance import normalised
from streamer.track.scene import layout, same_layout
from streamer.types import Box

THUMB = 16  # pixels a side: the layout of what HOG proposed, not its detail
SAME_IOU = 0.5  # a proposal this close to a remembered one is at the same place
SAME_PICTURE = 0.9  # ... and its pixels unchanged when they correlate this well with the thumbnail
FORGET_ROUNDS = 40  # proposal rounds of the stream (at 8 frames a round, 30 fps: about 10 s)
MAX_REMEMBERED = 32  # places per stream
FOUND_IOU = 0.3  # an MMOD box this close to a proposal: it was a face


@dataclass
class _Place:
    box: Box
    thumb: np.ndarray
    since: int  # the round it was turned down in


def thumbnail(image: np.ndarray, box: Box, side: int = THUMB) -> np.ndarray | None:
    """``box``'s pixels of an RGB (or grey) image, grey, ``side`` a side, of zero mean and unit
    norm; None where less than half of it lies in the image, or it is flat."""
    h, w = image.shape[:2]
    x0, y0 = max(0, int(box.left)), max(0, int(box.top))
    x1, y1 = min(w, int(box.right) + 1), min(h, int(box.bottom) + 1)
    if x1 - x0 < 4 or y1 - y0 < 4 or (x1 - x0) * (y1 - y0) * 2 < max(1, box.width * box.height):
        return None
    crop = image[y0:y1, x0:x1]
    grey = crop.mean(axis=2, dtype=np.float32) if crop.ndim == 3 else crop.astype(np.float32)
    return normalised(cv2.resize(grey, (side, side), interpolation=cv2.INTER_AREA))


def _like(a: np.ndarray | None, b: np.ndarray | None) -> float:
    return -1.0 if a is None or b is None else float((a * b).sum())


class Rejected:
    """One stream's proposals turned down (see the module's doc)."""

    def __init__(self) -> None:
        self.places: list[_Place] = []
        self.round = 0
        self.skipped = 0  # proposals not looked at again (for tests and benchmarks)
        self._frame: np.ndarray | None = None  # the last round's whole-frame thumbnail
        self._pending: list[Box] = []  # this round's proposals MMOD looks at

    def start(self, image: np.ndarray) -> None:
        """A new proposal round on ``image``: forget the places too old, all of them at a cut."""
        self.round += 1
        whole = layout(image)  # the tracker's cut test's layout (scene.py); shrunk first: ~1 ms on 720p
        if self._frame is not None and not same_layout(whole, self._frame):
            self.cut()
        self._frame = whole
        self.places = [p for p in self.places if self.round - p.since <= FORGET_ROUNDS]
        self._pending = []

    def cut(self) -> None:
        """A new scene: nothing remembered holds."""
        self.places = []

    def holds(self, image: np.ndarray, b: Box) -> bool:
        """Whether proposal ``b`` on ``image`` was turned down before and its picture is unchanged
        (then it is not looked at); otherwise it is noted as looked at this round."""
        for p in self.places:
            if b.iou(p.box) > SAME_IOU and _like(thumbnail(image, p.box), p.thumb) > SAME_PICTURE:
                self.skipped += 1
                return True
        self._pending.append(b)
        return False

    def learn(self, image: np.ndarray, found: list[Box]) -> None:
        """After the round: each proposal looked at with no MMOD box on it (IoU >= FOUND_IOU) is
        remembered; a place where MMOD found a face is forgotten."""
        for b in self._pending:
            self.places = [p for p in self.places if p.box.iou(b) <= SAME_IOU]
            if any(f.iou(b) >= FOUND_IOU for f in found):
                continue
            t = thumbnail(image, b)
            if t is not None:
                self.places.append(_Place(b, t, self.round))
        self.places = self.places[-MAX_REMEMBERED:]
        self._pending = []
