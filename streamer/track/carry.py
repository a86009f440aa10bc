"""The keyframe carry: a new face found on a frame a few frames back is carried to now.

The detector answers for the frame it was given (a keyframe), several frames later: meanwhile the
stream went on, and a face walking across a 1080p street moves two face widths while the detector
looks. A matched track needs no help (its correction is applied to where it is now), but a new
face has no track yet: its box is where the face *was*. So the tracker keeps the grey frames it
followed since the oldest keyframe whose answer is awaited, and a new face's box is carried
through them frame by frame with the optical flow (flow.py; frames kept apart are stepped over
with the face's velocity so far as the flow's starting guess). Where the flow loses the face, the
box is moved by how the matched tracks moved meanwhile (the camera's motion, roughly). Each new
face also gets its path, (frame, box) from the keyframe on, as its track's history: a detection of
a frame in between, answered later, is matched against where the face was on that frame.

A detector that answers late or never must not make a stream hold more: at most ``KEYFRAMES``
keyframes are awaited, and at most ``CARRY_FRAMES`` frames and ``CARRY_BYTES`` of them are kept.
"""

from __future__ import annotations

import itertools

import numpy as np

from streamer.track.flow import follow_near
from streamer.track.track import moved
from streamer.types import Box

KEYFRAMES = 4  # frames at the detector whose answers are awaited (one per batch in flight)
# grey frames kept from the oldest awaited keyframe on, so a new face is carried to now frame by frame
# (a face walking across a 1080p street moves 2 face widths while the detector looks: more than one
# flow step can follow); beyond this many the oldest go, and their keyframes with them
CARRY_FRAMES = 40
CARRY_BYTES = 32 << 20  # and at most this much of them (16 full-resolution 1080p frames) per stream

Path = list[tuple[int, np.ndarray]]  # (frame, box) from the keyframe on


class KeyframeCarry:
    """The awaited keyframes and the grey frames kept from the oldest of them on (each at the flow's
    working scale, as followed)."""

    def __init__(self) -> None:
        self.keyframes: set[int] = set()  # frames at the detector whose faces are still to come
        self.frames: dict[int, tuple[np.ndarray, float]] = {}  # grey, scale: since the oldest keyframe

    def clear(self) -> None:
        """Forget every keyframe and frame (the frames changed size: their pixels are not now's)."""
        self.frames.clear()
        self.keyframes.clear()

    def keep(self, index: int, gray: np.ndarray, scale: float) -> None:
        """Frame ``index`` (the last followed: ``gray`` at ``scale``) went to the detector."""
        self.keyframes.add(index)
        while len(self.keyframes) > KEYFRAMES:
            self.keyframes.discard(min(self.keyframes))
        self.frames[index] = (gray, scale)
        self.forget(index)

    def followed(self, index: int, gray: np.ndarray, scale: float) -> None:
        """Frame ``index``, not for the detector, was followed: kept while an answer is awaited."""
        if self.keyframes:
            self.frames[index] = (gray, scale)
        self.forget(index)

    def dropped(self, index: int, now: int) -> None:
        """The answer for frame ``index`` came and was dropped: no keyframe up to it is awaited."""
        self.keyframes = {i for i in self.keyframes if i > index}
        self.forget(now)

    def forget(self, now: int) -> None:
        """Keep the grey frames from the oldest awaited keyframe on (``now``: the last followed frame;
        at most ``CARRY_FRAMES`` and ``CARRY_BYTES``). Over the limit, frames between keyframes go
        first, where the kept ones lie closest (the flow then steps over two or more frames), so a
        keyframe keeps its start for the carry: dropping the oldest instead would drop the keyframe
        itself once a round takes over 16 1080p frames, and its new faces would start where they
        had been, not where they are."""
        size = sum(g.nbytes for g, _ in self.frames.values())
        while len(self.frames) > CARRY_FRAMES or (len(self.frames) > 1 and size > CARRY_BYTES):
            size -= self.frames.pop(self._to_drop())[0].nbytes
        if self.frames:
            self.keyframes = {i for i in self.keyframes if i >= min(self.frames)}
        first = min(self.keyframes, default=now + 1)
        for i in [i for i in self.frames if i < first]:
            del self.frames[i]

    def _to_drop(self) -> int:
        """The kept frame to drop first: between keyframes, where its neighbours lie closest."""
        kept = sorted(self.frames)
        inner = [k for k in range(1, len(kept) - 1) if kept[k] not in self.keyframes]
        if not inner:
            return kept[0]
        return kept[min(inner, key=lambda k: (kept[k + 1] - kept[k - 1], kept[k]))]

    def carry(
        self, boxes: list[Box], index: int, now: int, matched: list[tuple[np.ndarray, np.ndarray]]
    ) -> tuple[list[Box], list[Path]]:
        """New faces found on frame ``index``, moved to frame ``now`` (the last followed): by the
        optical flow from frame to frame since the one the detector saw, or else (no flow) by the
        median shift of the matched tracks meanwhile (``matched``: each one's box on frame
        ``index`` and now). Also each one's path: (frame, box) from ``index`` on, for its track's
        history (on a camera panning 11 px a frame, with answers 24 frames late and rounds every
        12, the next round's face lies 130 px from where the new track is now: matched against
        now, it would start a second track)."""
        self.keyframes = {i for i in self.keyframes if i > index}
        paths = [[(index, np.array([b.left, b.top, b.right, b.bottom], dtype=np.float64))] for b in boxes]
        try:
            if not boxes or index >= now:
                return boxes, paths
            xyxy = np.array([[b.left, b.top, b.right, b.bottom] for b in boxes], dtype=np.float64)
            steps = [i for i in sorted(self.frames) if i >= index]
            ok = np.zeros(len(boxes), dtype=bool)
            v = np.zeros((len(boxes), 2))  # each box's shift per frame on its last step that held
            if steps and steps[0] == index:
                for a, b in itertools.pairwise(steps):
                    (ga, sa), (gb, sb) = self.frames[a], self.frames[b]
                    if sa != sb or ga.shape != gb.shape:
                        continue
                    # frames kept apart: a fast face moves further between them than frame to
                    # frame, so LK starts from where its velocity so far puts it (see flow.py)
                    moves = follow_near(
                        ga, gb, sa, [tuple(x) for x in xyxy], [tuple(g) for g in v * (b - a)], b - a
                    )
                    for k, mv in enumerate(moves):
                        if mv is None:  # the flow lost it here: on at its velocity
                            xyxy[k] += np.tile(v[k] * (b - a), 2)
                        else:
                            xyxy[k] = moved(xyxy[k], mv)
                            v[k] = (mv[0] / (b - a), mv[1] / (b - a))
                            ok[k] = True
                        paths[k].append((b, xyxy[k].copy()))
            shifts = [((to[:2] + to[2:]) - (fro[:2] + fro[2:])) / 2 for fro, to in matched]
            shift = np.median(shifts, axis=0) if shifts else np.zeros(2)
            out = []
            for k, (b, x, good) in enumerate(zip(boxes, xyxy, ok, strict=True)):
                if not good:
                    x = np.array([b.left, b.top, b.right, b.bottom], dtype=np.float64) + np.tile(shift, 2)
                    paths[k] = paths[k][:1]  # (where it was in between is not known)
                out.append(Box(round(x[0]), round(x[1]), round(x[2]), round(x[3]), b.confidence))
                if paths[k][-1][0] != now:
                    paths[k].append((now, np.asarray(x, dtype=np.float64).copy()))
            return out, paths
        finally:
            self.forget(now)
