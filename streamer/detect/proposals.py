"""Where small faces may be: dlib's HOG face detector proposes, MMOD decides.

A "propose" region is not searched by MMOD itself: dlib's HOG frontal face detector (built into
dlib-bin, no model file) scans it first, at a low threshold, and every face it proposes becomes a
small square region around that face, at the scale that makes it ``VERIFY_FACE_PX`` wide, for
MMOD to look at. Only MMOD's boxes come out, so boxes and scores mean what they always did.

Why: on a 1080p frame the MMOD pixels that find 40 px faces everywhere (the frame at scale 2,
8 Mpx) take this CPU four seconds; HOG scans the same 8 Mpx in about 0.7 s of one core (~12 Mpx/s).
Scanned at scale 1.5, it proposed 628 of the 630 faces of 40 px and more on the four 1080p test
clips, one frame in 50 (IoU > 0.3 with the truth; ``python -m benchmarks proposals``; ``python -m
benchmarks small-faces`` measures the whole), but missed blurred real faces of 40-50 px (a
handheld mall clip) that it proposes at scale 2, HOG's 80 px window. HOG misses faces turned to
profile, which the planner's other regions (tracks, motion, the coarse look) still cover.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Hashable, Sequence

import cv2
import numpy as np

from streamer.detect.regions import FACE_PX, LOOKED_FACE, cut, holds, square
from streamer.detect.rejected import Rejected
from streamer.types import Box, Region

# HOG's window is 80 px: a min_face_px face is scanned at that width. At 60 px, HOG proposed a
# real mall's blurred 40 px faces at scores under -0.5 or not at all, at 80 px all of them above 0
PROPOSE_FACE_PX = 80
# ...but a whole frame's scan stays under this many HOG pixels (a 720p frame at 2x), down to 60 px a
# face: a 1080p frame at 80 px (8.3 Mpx) made a first round, which scans every tile, take over 7 s
# on 2 cores (HOG proposes more at 2x, and MMOD looks at each)
PROPOSE_FRAME_PX = 1280 * 720 * 4
# HOG at PROPOSE_THRESHOLD proposes boxes from about 60 px of its scan: a proposed face is enlarged
# for MMOD by up to VERIFY_FACE_PX / 60 times the scan's scale (at / 80, a 1080p clip's 40-53 px
# proposals were looked at too small and its first rounds took over 7 s)
PROPOSE_FACE_PX_MIN = 60
# dlib's adjust_threshold (the default of pipeline.propose_threshold): lower proposes more, and MMOD
# drops the wrong ones. On the real clips' reference frames the grey scan at -0.6 proposes 667 of
# 726 faces, the colour scan at -0.5 656, with 7% more proposals; at -0.8 the planned runs find
# more, live on 2 cores no more (docs/detection.md)
PROPOSE_THRESHOLD = -0.6
# MMOD pixels a HOG pixel costs, for budgets: HOG scanned ~12 Mpx/s of colour on one core of the
# Intel Xeon the benchmarks ran on, the MMOD network on regions ~2 Mpx/s on two. Its grey scan
# (grey_cut) takes about a quarter less, which leaves room for CPUs where HOG is slower against the
# network (an AMD EPYC: ~8.5 Mpx/s of colour against MMOD's ~3 on a whole 640x480 frame, a HOG
# pixel about a third of an MMOD pixel)
PROPOSE_COST = 1 / 6
VERIFY_FACE_PX = 90  # a proposed face is cut so that it is this wide for MMOD (as a track's is)
VERIFY_CONTEXT = 2.0  # ... in a square this many face widths wide (HOG's box is not MMOD's)
KNOWN_IOU = 0.3  # a proposal overlapping a known face this much needs no look: it is tracked
STREAMS = 64  # streams whose turned-down proposals are remembered (rejected.py), the latest used


def cost(r: Region) -> int:
    """What a region costs in MMOD pixels (a propose region: its HOG scan; the looks at what it
    proposes are paid when they come)."""
    return math.ceil(r.pixels * PROPOSE_COST) if r.why == "propose" else r.pixels


class Proposer:
    """Loads dlib's HOG detector on the first propose region (a backend that never gets one, or
    that runs on a machine without dlib-bin, never loads it). Remembers, per stream key, the
    proposals MMOD turned down (rejected.py): ``expand`` skips them while their picture stays the
    same, ``learn`` (after MMOD's round) notes the new ones."""

    def __init__(self, threshold: float = PROPOSE_THRESHOLD) -> None:
        self.threshold = threshold  # dlib's adjust_threshold (pipeline.propose_threshold)
        self._hog = None
        self.rejected: OrderedDict[Hashable, Rejected] = OrderedDict()
        self._looked: set[Hashable] = set()  # streams with proposals looked at, not yet learned from

    def load(self) -> None:
        """Load dlib's HOG detector now (about half a second on the 2-core CPU), not on the first
        propose region: a worker warmed up with it (``Engine.warm_up``) does not hold a stream's
        first small faces for that time."""
        if self._hog is None:
            import dlib  # dlib-bin, a dependency

            self._hog = dlib.get_frontal_face_detector()

    def propose(self, image: np.ndarray, r: Region) -> list[Box]:
        """Faces HOG proposes in region ``r`` of an RGB image, in the frame's pixels."""
        self.load()
        return hog_scan(self._hog, image, r, self.threshold)

    def memory(self, key: Hashable) -> Rejected:
        """Stream ``key``'s turned-down proposals (the least recently used stream's dropped past
        STREAMS)."""
        m = self.rejected.pop(key, None) or Rejected()
        self.rejected[key] = m
        while len(self.rejected) > STREAMS:
            self.rejected.popitem(last=False)
        return m

    def expand(
        self, image: np.ndarray, plan: Sequence[Region], known: Sequence[Box] = (), key: Hashable = None
    ) -> tuple[Region, ...]:
        """``plan`` with each propose region replaced by the regions MMOD should look at: one
        square per proposed face, except where the plan already looks at that face, it is
        ``known`` (a tracked face, looked at on its own schedule) or stream ``key``'s memory holds
        it (turned down before, its picture unchanged: rejected.py)."""
        if not any(r.why == "propose" for r in plan):
            return tuple(plan)
        memory = self.memory(key)
        memory.start(image)
        self._looked.add(key)
        h, w = image.shape[:2]
        looks = [r for r in plan if r.why != "propose"]
        out = list(looks)
        for r in plan:
            if r.why != "propose":
                continue
            for b in self.propose(image, r):
                if _covered(b, looks) or any(b.iou(k) >= KNOWN_IOU for k in known):
                    continue
                if memory.holds(image, b):
                    continue
                v = verify_region(b, w, h, max_scale=r.scale * VERIFY_FACE_PX / PROPOSE_FACE_PX_MIN)
                if not any(_covered(b, [o]) for o in out[len(looks) :]):
                    out.append(v)
        return tuple(out)

    def learn(self, image: np.ndarray, found: Sequence[Box], key: Hashable = None) -> None:
        """After MMOD's round on ``image`` of stream ``key``: the proposals it looked at and found
        no face on (no box in ``found`` there) are remembered."""
        if key in self._looked:
            self._looked.discard(key)
            self.memory(key).learn(image, list(found))


def grey_cut(image: np.ndarray, r: Region) -> np.ndarray:
    """Region ``r`` of an RGB (or grey) image, grey, at its scale: HOG scans one channel instead of
    taking each pixel's strongest gradient of three (on the real clips' reference frames: the same
    faces proposed but 3 of 726, in 28% less time: ``python -m benchmarks proposals-real``)."""
    crop = image[r.top : r.bottom + 1, r.left : r.right + 1]
    if crop.ndim == 3:
        crop = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY)
    return cut(crop, Region(0, 0, crop.shape[1] - 1, crop.shape[0] - 1, r.scale, r.why))


def hog_scan(hog, image: np.ndarray, r: Region, threshold: float, view=grey_cut) -> list[Box]:
    """dlib HOG detector ``hog``'s faces in region ``r`` of an RGB image at ``threshold``, in the
    frame's pixels; ``view(image, r)`` gives it the region's pixels (default ``grey_cut``)."""
    dets, scores, _ = hog.run(np.ascontiguousarray(view(image, r)), 0, threshold)
    s = r.scale
    return [
        Box(
            r.left + round(d.left() / s),
            r.top + round(d.top() / s),
            r.left + round((d.right() + 1) / s) - 1,
            r.top + round((d.bottom() + 1) / s) - 1,
            float(sc),
        )
        for d, sc in zip(dets, scores, strict=True)
    ]


def verify_region(b: Box, width: int, height: int, max_scale: float = 4.0) -> Region:
    """The square MMOD looks at for a proposed face ``b``."""
    side_face = max(b.width, b.height)
    s = min(max_scale, VERIFY_FACE_PX / side_face)
    cx, cy = (b.left + b.right) / 2, (b.top + b.bottom) / 2
    return square(cx, cy, VERIFY_CONTEXT * side_face, s, width, height, "verify")


def _covered(b: Box, regions: Sequence[Region]) -> bool:
    """Whether one of ``regions`` holds the face at ``b`` whole, big enough for MMOD."""
    side = max(b.width, b.height)
    return any(holds(r, b) and side * r.scale >= LOOKED_FACE * FACE_PX for r in regions)
