"""When a track starts to show, and when it ends: the stream's live tracks and their events.

A track shows (is confirmed) after ``confirm_hits`` detections, or on its first one when the
detector is sure (``confirm_confidence``): one-frame false positives are rarely confident, and a
clear face should not wait a detection interval for its box. A track detected once and then
missed ends at once, silently: it never showed. A confirmed track the detector misses coasts
(the flow still moves it) until it has been missed ``max_misses`` times in a row *and*
``max_coast_s`` has passed since it was last detected: a face turned away or hidden for a moment
keeps its track. It ends sooner when its box leaves the frame (``end_out_of_view``), when it
lies inside a face given to another track (``duplicate_inside``, decided at the detection), or
when two tracks come to lie on one face (``end_duplicates``).

A confirmed track that ends is remembered by who its face was (remembered.py); a young track whose
face is recognised as a remembered one's takes that track's id back (``take_back``).

Each change is a ``TrackEvent`` ("start", "update" when a shown label changes, "end"), which the
service sends to event clients and counts in its metrics.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from streamer.track.appearance_checks import less_like
from streamer.track.matching import iou_matrix
from streamer.track.remembered import RememberedTracks
from streamer.track.rule import TrackerRule
from streamer.track.track import Track
from streamer.types import Box, Face, Label

VISIBLE = 0.35  # a track whose box shows less than this share of itself inside the frame has left it


@dataclass(frozen=True)
class TrackEvent:
    kind: str  # "start" | "update" | "end"
    track: int
    time: float
    box: Box
    labels: tuple[Label, ...]
    duration_s: float  # since the track was first seen (a resumed track's start: before it ended)
    resumed: bool = False  # a start: the track had ended, and its face was recognised (identity.py)
    merged_into: int | None = None  # an end: the track's face was recognised as this ended track's

    def as_dict(self, stream: str) -> dict[str, object]:
        return {
            "stream": stream,
            "track": self.track,
            "time": round(self.time, 3),
            "box": {k: v for k, v in self.box.as_dict().items() if k != "confidence"},
            "labels": {
                lab.classifier: {"label": lab.label, "p": round(lab.probability, 4)} for lab in self.labels
            },
            "duration_s": round(self.duration_s, 3),
            **({"resumed": self.resumed} if self.kind == "start" else {}),
            **({"merged_into": self.merged_into} if self.kind == "end" else {}),
        }


class Lifecycle:
    """The live tracks (in the order they started), the events since they were last drained, the
    remembered ended tracks, and the counts of tracks started and resumed."""

    def __init__(self, rule: TrackerRule) -> None:
        self.rule = rule
        self.tracks: list[Track] = []
        self.events: list[TrackEvent] = []
        self.remembered = RememberedTracks(rule)
        self.started = 0  # confirmed tracks so far
        self.resumed = 0  # ended tracks whose face came back and was recognised
        self._next_id = 1

    # -- starting ---------------------------------------------------------------------------------
    def new_track(self, face: Face, index: int, t: float) -> Track:
        """A track for a face no track matched (not yet among ``tracks``): a new id, or a remembered
        track's if the face is recognised as theirs."""
        tr = Track(self._next_id, face, index, t, self.rule)
        if not self.take_back(tr, t):
            self._next_id += 1
        return tr

    def detected(self, tr: Track, confidence: float, t: float, labels_changed: bool = False) -> None:
        """``tr`` was detected (a new track's first detection, or a match): it shows once it has
        ``confirm_hits`` detections or this one is sure; a shown track whose shown label changed
        says so."""
        rule = self.rule
        if not tr.confirmed and (tr.hits >= rule.confirm_hits or confidence >= rule.confirm_confidence):
            self.confirm(tr, t)
        elif labels_changed and tr.confirmed:
            self.events.append(TrackEvent("update", tr.id, t, tr.as_box(), tr.labels(), t - tr.first_seen))

    def confirm(self, tr: Track, t: float) -> None:
        tr.confirmed = True
        if tr.resumed:
            self.resumed += 1
            self.remembered.forget_person(tr)  # (with any other track of that person: they are this one now)
        else:
            self.started += 1
        self.events.append(
            TrackEvent("start", tr.id, t, tr.as_box(), tr.labels(), t - tr.first_seen, tr.resumed)
        )

    def take_back(self, tr: Track, t: float) -> bool:
        """A young track (up to its ``recognise_hits``-th detection) whose newest identity is clearly
        a remembered track's becomes that track: at its first detection it starts as that one; later
        its own shown id ends, merged into the remembered one, which starts again. True if so."""
        if tr.resumed or tr.hits > self.rule.recognise_hits or not tr.identities:
            return False
        old = self.remembered.recognise(tr.identities[-1], t, {o.id for o in self.tracks})
        if old is None:
            return False
        if tr.confirmed:
            self.events.append(
                TrackEvent(
                    "end",
                    tr.id,
                    t,
                    tr.as_box(),
                    tr.labels(),
                    tr.last_seen - tr.first_seen,
                    merged_into=old.id,
                )
            )
        tr.resume(old)
        if tr.confirmed:
            self.confirm(tr, t)
        return True

    # -- ending -----------------------------------------------------------------------------------
    def end_where(self, gone: Callable[[Track], bool], t: float) -> None:
        """End the tracks ``gone`` says: a confirmed one says so and is remembered; one that never
        showed goes silently."""
        keep = []
        for tr in self.tracks:
            if gone(tr):
                if tr.confirmed:
                    self.events.append(
                        TrackEvent("end", tr.id, t, tr.as_box(), tr.labels(), tr.last_seen - tr.first_seen)
                    )
                    self.remembered.remember(tr, t)
            else:
                keep.append(tr)
        self.tracks = keep

    def end_all(self, t: float) -> None:
        self.end_where(lambda tr: True, t)

    def end_missed(self, lost: Sequence[Track], gone: set[int], t: float) -> None:
        """After a detection: ``lost`` tracks were looked for and missed, ``gone`` (``id()`` of
        tracks) are duplicates or switched to someone else. A lost track that never showed ends
        silently; the ``gone`` end; so does a track missed ``max_misses`` times in a row once
        ``max_coast_s`` has passed since its last detection."""
        rule = self.rule
        dead = {id(tr) for tr in lost if not tr.confirmed}
        self.tracks = [tr for tr in self.tracks if id(tr) not in dead]
        self.end_where(
            lambda tr: (
                id(tr) in gone or (tr.misses >= rule.max_misses and t - tr.last_hit >= rule.max_coast_s)
            ),
            t,
        )

    def end_out_of_view(self, w: int, h: int, t: float) -> None:
        """Tracks whose box has left a w x h frame (under ``VISIBLE`` of it inside) end."""
        self.end_where(lambda tr: _visible_fraction(tr.box, w, h) < VISIBLE, t)

    def end_duplicates(self, t: float, gray: np.ndarray | None, s: float) -> None:
        """Two tracks that came to lie on one face (IoU >= ``rule.duplicate_iou``): the one whose
        template the face there (on ``gray``, the flow's image at scale ``s``) is clearly less like
        ends (someone walking in front of a face pulls its box onto their own, whose track is the
        one to keep); failing that, the one the detector confirmed longer ago (two boxes that
        drifted onto one place: the newer detection is the better box)."""
        if len(self.tracks) < 2:
            return
        ious = iou_matrix([tr.xyxy for tr in self.tracks], [tr.xyxy for tr in self.tracks])
        gone: set[int] = set()
        for i, j in zip(*np.nonzero(np.triu(ious, 1) >= self.rule.duplicate_iou), strict=True):
            a, b = self.tracks[i], self.tracks[j]
            if id(a) in gone or id(b) in gone:
                continue
            older = a if (a.last_hit, a.hits) < (b.last_hit, b.hits) else b
            gone.add(id(less_like(a, b, gray, s, self.rule.doubt) or older))
        if gone:
            self.end_where(lambda tr: id(tr) in gone, t)


def _visible_fraction(box: np.ndarray, w: int, h: int) -> float:
    x0, y0, x1, y1 = box
    area = max(1.0, (x1 - x0 + 1) * (y1 - y0 + 1))
    iw = max(0.0, min(x1, w - 1) - max(x0, 0) + 1)
    ih = max(0.0, min(y1, h - 1) - max(y0, 0) + 1)
    return iw * ih / area
