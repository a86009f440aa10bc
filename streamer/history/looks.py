"""The best look at each track's face, kept while the track lives, for its event's snapshot.

A *look* is a detection of the track's face (the tracker's ``hits`` went up). At each look the
stage hands the frame over (it is there anyway: ``FaceStage.finish`` runs in the render pool);
the look is scored by size x sharpness (variance of the Laplacian of the face, in grey) x how
much of the box is in the frame x how frontal the face is (pose.py: a profile counts a quarter of
a frontal view, so a clear profile can still beat a blurred frontal face), and the best one so
far is kept as a small RGB crop (with a margin) and a thumbnail of the frame with the box drawn.
JPEG encoding waits for the store's writer thread.

Cost per look: a crop, a grey conversion, a Laplacian and dlib's 5 landmarks of the face; a
better look also pays a thumbnail resize (a new look must beat the kept one by ``BETTER`` to
replace it).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

import cv2
import numpy as np

from streamer.history.pose import frontalness

MARGIN = 0.25  # of the box's side, around the face in the crop
BETTER = 1.15  # a new look replaces the kept one when its score is this much higher
ENDED_KEPT = 512  # looks of ended tracks waiting to be taken (a bound, should nobody take them)


@dataclass(frozen=True, slots=True)
class Look:
    score: float
    face: np.ndarray  # RGB crop (uint8), at most ``max_side`` on its longer side
    thumb: np.ndarray  # RGB thumbnail of the whole frame with the box drawn
    box: tuple[int, int, int, int]  # left, top, right, bottom in the frame
    time: float  # the frame's capture time


@dataclass(slots=True)
class _Kept:
    hits: int
    looks: int
    best: Look | None


def sharpness(gray: np.ndarray) -> float:
    """Variance of the Laplacian: high for a crisp face, low for a blurred or flat one."""
    if gray.size == 0:
        return 0.0
    return float(cv2.Laplacian(gray, cv2.CV_32F).var())


def score_look(image: np.ndarray, box: tuple[int, int, int, int]) -> float:
    """size x sharpness x visible fraction of the box x frontalness (0 for a box outside the frame)."""
    h, w = image.shape[:2]
    x0, y0, x1, y1 = box
    area = max(1, (x1 - x0 + 1) * (y1 - y0 + 1))
    cx0, cy0, cx1, cy1 = max(0, x0), max(0, y0), min(w - 1, x1), min(h - 1, y1)
    if cx1 <= cx0 or cy1 <= cy0:
        return 0.0
    crop = image[cy0 : cy1 + 1, cx0 : cx1 + 1]
    gray = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY)
    visible = (cx1 - cx0 + 1) * (cy1 - cy0 + 1) / area
    pose = 0.25 + 0.75 * frontalness(image, box)
    return float(area * (1.0 + sharpness(gray)) * visible * pose)


def face_crop(image: np.ndarray, box: tuple[int, int, int, int], max_side: int) -> np.ndarray:
    h, w = image.shape[:2]
    x0, y0, x1, y1 = box
    m = MARGIN * max(x1 - x0 + 1, y1 - y0 + 1)
    cx0, cy0 = max(0, int(x0 - m)), max(0, int(y0 - m))
    cx1, cy1 = min(w, int(x1 + m) + 1), min(h, int(y1 + m) + 1)
    crop = image[cy0:cy1, cx0:cx1]
    side = max(crop.shape[:2])
    if side > max_side:
        s = max_side / side
        crop = cv2.resize(
            crop,
            (max(1, round(crop.shape[1] * s)), max(1, round(crop.shape[0] * s))),
            interpolation=cv2.INTER_AREA,
        )
    return np.ascontiguousarray(crop)


def thumbnail(image: np.ndarray, box: tuple[int, int, int, int], width: int) -> np.ndarray:
    h, w = image.shape[:2]
    s = min(1.0, width / w)
    small = cv2.resize(image, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    x0, y0, x1, y1 = (round(v * s) for v in box)
    cv2.rectangle(small, (x0, y0), (x1, y1), (0, 220, 90), max(1, round(2 * width / 320)))
    return small


class LookKeeper:
    """Per stream: each live track's best look; an ended track's is kept until ``take``n.

    ``observe`` runs where the stage runs (a render thread); ``take`` on the event loop."""

    def __init__(self, max_side: int = 160, thumb_width: int = 256) -> None:
        self.max_side = max_side
        self.thumb_width = thumb_width
        self._live: dict[int, _Kept] = {}
        self._ended: OrderedDict[int, tuple[Look | None, int]] = OrderedDict()
        self._lock = threading.Lock()

    def observe(self, image: np.ndarray | None, t: float, tracks, events) -> None:
        """The stage's frame after its detections were applied: ``tracks`` are the tracker's live
        tracks, ``events`` the track events drained on this frame (``image`` None: no frame, the
        stream is over and every track ends)."""
        with self._lock:
            live: dict[int, _Kept] = {}
            for tr in tracks:
                k = self._live.get(tr.id)
                if k is None:
                    k = _Kept(tr.hits, 1, None)
                    self._look(k, image, t, tr)
                elif tr.hits != k.hits:
                    k.hits = tr.hits
                    k.looks += 1
                    self._look(k, image, t, tr)
                live[tr.id] = k
            for e in events:
                if e.kind != "end":
                    continue
                k = self._live.get(e.track) or live.get(e.track)
                if e.merged_into is not None:
                    # its face was someone who had left: its looks go on under that id
                    if k is not None and e.merged_into in live:
                        into = live[e.merged_into]
                        into.looks += k.looks
                        if k.best is not None and (into.best is None or k.best.score > into.best.score):
                            into.best = k.best
                    continue
                self._ended[e.track] = (k.best if k else None, k.looks if k else 0)
                self._ended.move_to_end(e.track)
                while len(self._ended) > ENDED_KEPT:
                    self._ended.popitem(last=False)
            self._live = live

    def _look(self, k: _Kept, image: np.ndarray | None, t: float, tr) -> None:
        if image is None:
            return
        b = tr.as_box()
        box = (b.left, b.top, b.right, b.bottom)
        s = score_look(image, box)
        if s <= 0 or (k.best is not None and s < k.best.score * BETTER):
            return
        k.best = Look(
            s, face_crop(image, box, self.max_side), thumbnail(image, box, self.thumb_width), box, t
        )

    def take(self, track: int) -> tuple[Look | None, int]:
        """An ended track's best look (None if it had none) and how many looks it had."""
        with self._lock:
            return self._ended.pop(track, (None, 0))
