"""Per-stream face tracks: boxes follow faces on every frame, detections correct and create them.

Every frame, ``follow`` moves each track's box with the image (optical flow, see flow.py) or,
where the flow fails, with the track's recent velocity. When a detection arrives (for the
frame it was taken from, possibly a few frames ago), ``update`` matches it to the tracks by
IoU against where each track was *on that frame* (Hungarian assignment; then, of those left,
by how near their centres lie for their size), moves matched tracks by the correction, starts
tentative tracks for the rest and counts a miss on unmatched tracks.

A track shows (is confirmed) after ``confirm_hits`` detections, or on its first one when the
detector is sure (``confirm_confidence``): one-frame false positives are rarely confident, and
a clear face should not wait a detection interval for its box. A track detected only once and
then missed ends at once (silently if it never showed). A confirmed track that is missed keeps
coasting until it has been missed ``max_misses`` times in a row *and* ``max_coast_s`` has passed
since it was last detected, or until its box leaves the frame; then it ends. A scene cut
(the grey histogram jumps and the picture's layout changes with it: not a change of exposure)
ends every track and asks for a detection on the next frame; faces
the detector found on a frame before the cut, arriving after it, are dropped. A change of the
frame size scales every track with it (a cut if the picture's shape changed). A confirmed track
whose box, at its look every ``unlike_every`` frames, shows nothing like the face the detector
last saw (appearance.py) is not drawn until it does again or the detector next sees the face.
A detection overlapping a track but of someone else (identity.py: their face descriptors lie
apart) is never matched to it; the track ends and the face starts its own: the track's box had
been pulled onto a passer-by. Where its face looks less like its template than ``doubt`` while
another track is near, a track is classified (so its identity checked) at the next detection. Of
two tracks that come to lie on one face, the one whose template it is clearly less like ends.
A confirmed track that ends is remembered for ``remember_s`` by its identities: a new face that
is clearly that person (identity.py), at its first detection or one of its first few
classifications, takes the track's id, labels and first sighting back (it came back into view,
out from behind someone, or its track had been lost).

Tracks also carry the classifier evidence (evidence.py) and the schedule of when their face
needs classifying again (first sight, box grown by ``reclassify_growth``, every
``reclassify_every`` detections, or while the label is still "?").
"""

from __future__ import annotations

import copy
import itertools
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from streamer.detect.regions import looked_at
from streamer.track.appearance import likeness, normalised, template
from streamer.track.evidence import EvidenceRule, LabelEvidence, look_weight
from streamer.track.flow import follow_boxes, follow_near, to_gray, work_scale
from streamer.track.identity import OTHER_PERSON, SAME_PERSON, apart, other_person, recognised
from streamer.track.matching import XYXY, iou_matrix, match, near_matrix
from streamer.types import Box, Face, Label, Region

# Bhattacharyya distance between consecutive frames' grey histograms above which the scene changed
# (a cut): on the Hamilton clip its 3 cuts score 0.23-0.39, everything else under 0.06; the
# moving-camera clip stays under 0.03
SCENE_CUT = 0.15
# ... and the picture's layout changed too: the normalised cross-correlation of consecutive frames'
# 32x24 thumbnails is under this. A change of exposure alone (lights switched on, a camera's
# auto-exposure) moves the histogram as much as a cut (0.3-0.45 for a gain of 0.5-2.2) but keeps
# the layout (0.88-0.89); the Hamilton clip's cuts score 0.01-0.26, its other frames 0.66 and more
SAME_LAYOUT = 0.5


# of two tracks on one face, one whose template the face is this much less like is not that face
CLEARLY_LIKER = 0.1

IDENTITIES = 4  # identities a track keeps (see Track.identities)
REMEMBERED = 64  # ended tracks a stream remembers at most (the oldest are forgotten first)

KEYFRAMES = 4  # frames at the detector whose answers are awaited (one per batch in flight)
# grey frames kept from the oldest awaited keyframe on, so a new face is carried to now frame by frame
# (a face walking across a 1080p street moves 2 face widths while the detector looks: more than one
# flow step can follow); beyond this many the oldest go, and their keyframes with them
CARRY_FRAMES = 40
CARRY_BYTES = 32 << 20  # and at most this much of them (16 full-resolution 1080p frames) per stream


@dataclass(frozen=True)
class TrackerRule:
    min_iou: float = 0.3  # a detection and a track overlap at least this much to be the same face
    # or, of those left, their centres lie within this share of the larger one's width (0: off)
    near_reach: float = 0.5
    confirm_hits: int = 2
    confirm_confidence: float = 0.3  # MMOD score (a face from 0); clear frontal faces score 0.8 and more
    max_misses: int = 2
    max_coast_s: float = 1.0
    history: int = 120  # frames of box history kept to place late detections
    reclassify_growth: float = 1.2
    reclassify_every: int = 10
    # a track the detector missed whose box lies at least this much (of its own area) inside a
    # face the detector found on that frame is a duplicate of that face: it ends at once
    duplicate_inside: float = 0.6
    # two tracks overlapping this much are one face: the one detected longer ago ends
    duplicate_iou: float = 0.5
    # a track whose box has shown nothing like the face the detector last saw there (best
    # correlation of their grey patches under ``unlike``) at this many looks in a row, one every
    # ``unlike_every`` frames, is not drawn until it does again or the detector sees it: a box
    # pulled off its face, left on the street (0 looks: off)
    unlike: float = 0.5
    unlike_looks: int = 1
    unlike_every: int = 3
    # a detection overlapping a track whose identity (face descriptor, identity.py) is further than
    # this from each of the track's last ones is someone else: never matched to it; the track ends
    # (its box had moved onto that person) and the face starts its own, with its own labels (0: off)
    other_person: float = OTHER_PERSON
    # a track whose face looks less than this like its template (at a look, or the detection it is
    # matched to) while another track's box is near it is classified again at the next detection,
    # so its identity is checked (0: off)
    doubt: float = 0.8
    # a confirmed track that ends is remembered this long (its identities: face descriptors, kept in
    # memory only); a new face within ``same_person`` of them, and clearly nearer them than any other
    # remembered track's, resumes it: its id, labels and first sighting (0: off)
    remember_s: float = 30.0
    same_person: float = SAME_PERSON
    # ... checked at a new track's first detection, and at its classifications up to its
    # ``recognise_hits``-th detection (a face coming out from behind someone, or turned, can be
    # recognised only at a later look): a track recognised then becomes the remembered one
    recognise_hits: int = 4
    evidence: EvidenceRule = field(default_factory=EvidenceRule)


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


class Track:
    def __init__(self, tid: int, face: Face, index: int, t: float, rule: TrackerRule) -> None:
        b = face.box
        self.id = tid
        self.rule = rule
        self.box: np.ndarray = np.array([b.left, b.top, b.right, b.bottom], dtype=np.float64)
        self.velocity = np.zeros(2)
        self.confidence = float(b.confidence)
        self.hits = 1
        self.misses = 0
        self.confirmed = False
        self.first_seen = t
        self.last_hit = t
        self.last_seen = t
        self.history: deque[tuple[int, np.ndarray]] = deque([(index, self.box.copy())], maxlen=rule.history)
        self.evidence: dict[str, LabelEvidence] = {}
        self.classified_height = 0.0  # box height when last classified (0: never)
        self.detections_since_classified = 0
        self.flow_failures = 0
        self.seen_at = self.box.copy()  # where the detector last saw the face (then)
        # the face as the detector last saw it (appearance.template; None: the box is not judged)
        self.template: tuple[np.ndarray, ...] | None = None
        self.likeness: float | None = None  # the box's content to the template, at its last look
        self.unlike_run = 0  # looks in a row the likeness was under the rule's ``unlike``
        # who: its face's identities at its last few classifications (a face's drifts as it turns,
        # speaks, is lit otherwise; the nearest of them is compared)
        self.identities: deque[np.ndarray] = deque(
            [] if face.identity is None else [face.identity], IDENTITIES
        )
        self.doubted = False  # its face may be someone else's: classify it at the next detection
        self.resumed = False  # it had ended and its face was recognised: it goes on where it left off

    def resume(self, old: Departed) -> None:
        """Take ``old``'s id, labels, first sighting and identities (this face is that person)."""
        self.id, self.first_seen, self.resumed = old.id, old.first_seen, True
        self.evidence = copy.deepcopy(old.evidence)  # (remembered as it was, should this one not show)
        self.identities = deque([*old.identities, *self.identities], IDENTITIES)

    @property
    def xyxy(self) -> XYXY:
        return tuple(self.box)  # type: ignore[return-value]

    @property
    def shown(self) -> bool:
        """Confirmed, and its box still shows the face (see ``TrackerRule.unlike``)."""
        return self.confirmed and not (self.rule.unlike_looks and self.unlike_run >= self.rule.unlike_looks)

    def box_at(self, index: int) -> np.ndarray:
        """Where the track was on frame ``index`` (its oldest known box if that is before it began)."""
        for i, b in reversed(self.history):
            if i <= index:
                return b
        return self.history[0][1]

    def as_box(self) -> Box:
        x0, y0, x1, y1 = (round(float(v)) for v in self.box)
        return Box(x0, y0, x1, y1, self.confidence)

    def labels(self) -> tuple[Label, ...]:
        return tuple(e.label() for e in self.evidence.values())

    def face(self) -> Face:
        return Face(self.as_box(), self.labels(), track=self.id)

    def needs_classifying(self) -> bool:
        if self.classified_height <= 0 or self.detections_since_classified >= self.rule.reclassify_every:
            return True
        if self.doubted:
            return True
        if any(e.shown == "?" for e in self.evidence.values()) or not self.evidence:
            return True
        h = self.box[3] - self.box[1] + 1
        return h >= self.classified_height * self.rule.reclassify_growth

    def look(self, labels: Sequence[Label], height: int, confidence: float) -> bool:
        """Add one classification; True when a shown label changed."""
        changed = False
        w = look_weight(height, confidence)
        for lab in labels:
            ev = self.evidence.setdefault(lab.classifier, LabelEvidence(lab.classifier, self.rule.evidence))
            changed |= ev.add(lab, w)
        self.classified_height = float(height)
        self.detections_since_classified = 0
        return changed


@dataclass(frozen=True)
class Departed:
    """A confirmed track that ended, remembered for a while by who its face was."""

    id: int
    ended: float
    first_seen: float
    identities: tuple[np.ndarray, ...]
    evidence: dict[str, LabelEvidence]


class Tracker:
    def __init__(self, rule: TrackerRule | None = None) -> None:
        self.rule = rule or TrackerRule()
        self.tracks: list[Track] = []
        self.events: list[TrackEvent] = []
        self._next_id = 1
        self._prev: np.ndarray | None = None
        self._hist: np.ndarray | None = None
        self._thumb = np.zeros((24, 32), np.float32)  # the last frame's, normalised (see SAME_LAYOUT)
        self.cut = False  # a scene cut was seen: the next frame should go to the detector
        self._scene_from = -1  # the first frame of the current scene: the newest cut or size change
        self.dropped_stale = 0  # answers that arrived after a cut or size change but were of a frame before
        self._size: tuple[int, int] | None = None  # (width, height) of the frames followed
        self._prev_scale = 1.0
        self._index = -1
        self._keyframes: set[int] = set()  # frames at the detector whose faces are still to come
        self._frames: dict[int, tuple[np.ndarray, float]] = {}  # grey, scale: since the oldest keyframe
        self.started = 0  # confirmed tracks so far
        self.looks = 0  # faces classified (the classifier's work)
        self.looks_skipped = 0  # detected faces of settled tracks left unclassified
        self.switches = 0  # tracks ended because the face matched to them was someone else
        self.resumed = 0  # ended tracks whose face came back and was recognised
        self._departed: deque[Departed] = deque(maxlen=REMEMBERED)

    # -- every frame -------------------------------------------------------------------------
    def follow(self, image: np.ndarray, index: int, t: float, keep: bool = False) -> None:
        """Move every track to frame ``index`` (an RGB image) and end the ones lost or gone.

        ``keep``: this frame went to the detector; its faces will arrive a few frames later, and
        the boxes of new faces are carried from it to the frame shown then (``update``)."""
        h, w = image.shape[:2]
        if self._size is not None and self._size != (w, h):
            self._resized(w, h, index, t)
        self._size = (w, h)
        smallest = min((min(tr.box[2] - tr.box[0], tr.box[3] - tr.box[1]) for tr in self.tracks), default=1e9)
        s = work_scale(image.shape, smallest)
        if self._prev is not None and self._prev_scale != s:  # same scale for both frames of a step
            s = self._prev_scale
        gray = to_gray(image, s)
        # a 16th of the pixels tells a scene cut as well (the histogram of all cost 2 ms at 1080p)
        small = np.ascontiguousarray(gray[::4, ::4])
        hist = cv2.calcHist([small], [0], None, [32], [0, 256])
        cv2.normalize(hist, hist)
        thumb = _thumbnail(small)  # (from the 16th: from the whole grey copy it cost 1.4 ms at 1080p)
        if (
            self._hist is not None
            and cv2.compareHist(self._hist, hist, cv2.HISTCMP_BHATTACHARYYA) > SCENE_CUT
            and float((thumb * self._thumb).sum()) < SAME_LAYOUT
        ):
            # another scene: no face here is where a track is; end them all and ask for a detection
            self._end_where(lambda tr: True, t)
            self.cut = True
            self._scene_from = index
        self._hist, self._thumb = hist, thumb
        if self._prev is not None and self._prev.shape == gray.shape and self.tracks:
            moves = follow_boxes(self._prev, gray, s, [tr.xyxy for tr in self.tracks])
            for tr, mv in zip(self.tracks, moves, strict=True):
                self._move(tr, mv)
        for tr in self.tracks:  # (a look costs 0.1-0.2 ms: each track's turn comes every few frames)
            if (
                self.rule.unlike_looks
                and tr.template is not None
                and (index + tr.id) % self.rule.unlike_every == 0
            ):
                tr.likeness = likeness(tr.template, gray, s, tr.box)
                unlike = tr.likeness is not None and tr.likeness < self.rule.unlike
                tr.unlike_run = tr.unlike_run + 1 if unlike else 0
                if not tr.doubted and tr.likeness is not None and tr.likeness < self.rule.doubt:
                    tr.doubted = self._has_neighbour(tr)
        # the next step may pick another scale (a smaller face arrived): then this frame is redone
        s_next = work_scale(image.shape, smallest)
        self._prev, self._prev_scale = (gray, s) if s_next == s else (to_gray(image, s_next), s_next)
        self._index = index
        if keep:
            self.keep_last()
        else:
            if self._keyframes:
                self._frames[index] = (self._prev, self._prev_scale)
            self._forget()
        for tr in self.tracks:
            tr.history.append((index, tr.box.copy()))
            tr.last_seen = t
        self._end_where(lambda tr: _visible_fraction(tr.box, w, h) < 0.35, t)
        self._end_duplicates(t)

    def _resized(self, w: int, h: int, index: int, t: float) -> None:
        """The source changed resolution (a WebRTC sender adapting to its bandwidth, a camera
        reconfigured). The same view scaled: every track is scaled with it (it keeps its id and
        labels). Another picture shape: not the same view, so a cut. Either way answers for frames
        of the old size are dropped (their boxes and regions are in its pixels) and the next frame
        goes to the detector."""
        assert self._size is not None
        w0, h0 = self._size
        sx, sy = w / w0, h / h0
        self.cut = True
        self._scene_from = index
        self._frames.clear()
        self._keyframes.clear()
        self._prev = None
        if abs(sx / sy - 1.0) > 0.02:
            self._end_where(lambda tr: True, t)
            return
        k = np.array([sx, sy, sx, sy])
        for tr in self.tracks:
            tr.box *= k
            tr.seen_at = tr.seen_at * k
            tr.velocity *= k[:2]
            tr.history = deque(((i, b * k) for i, b in tr.history), maxlen=tr.history.maxlen)
            tr.classified_height *= sy

    def keep_last(self) -> None:
        """The last followed frame went to the detector (``follow``'s ``keep``, or said afterwards:
        the detector came free before the next frame)."""
        if self._prev is None:
            return
        self._keyframes.add(self._index)
        while len(self._keyframes) > KEYFRAMES:
            self._keyframes.discard(min(self._keyframes))
        self._frames[self._index] = (self._prev, self._prev_scale)
        self._forget()

    def _end_duplicates(self, t: float) -> None:
        """Two tracks that came to lie on one face (IoU >= ``rule.duplicate_iou``): the one whose
        template the face there is clearly less like ends (someone walking in front of a face pulls
        its box onto their own, whose track is the one to keep); failing that, the one the detector
        confirmed longer ago (seen live: two boxes drifting onto one place)."""
        if len(self.tracks) < 2:
            return
        ious = iou_matrix([tr.xyxy for tr in self.tracks], [tr.xyxy for tr in self.tracks])
        gone: set[int] = set()
        for i, j in zip(*np.nonzero(np.triu(ious, 1) >= self.rule.duplicate_iou), strict=True):
            a, b = self.tracks[i], self.tracks[j]
            if id(a) in gone or id(b) in gone:
                continue
            gone.add(id(self._less_like(a, b) or (a if (a.last_hit, a.hits) < (b.last_hit, b.hits) else b)))
        if gone:
            self._end_where(lambda tr: id(tr) in gone, t)

    def _has_neighbour(self, tr: Track) -> bool:
        """Another track's box lies within half a box width of this one's: someone who could have
        walked in front of its face (a face alone that turns or is lit otherwise needs no check)."""
        x0, y0, x1, y1 = tr.box
        m = (x1 - x0) / 2
        for o in self.tracks:
            if (
                o is not tr
                and o.box[0] < x1 + m
                and o.box[2] > x0 - m
                and o.box[1] < y1 + m
                and o.box[3] > y0 - m
            ):
                return True
        return False

    def _less_like(self, a: Track, b: Track) -> Track | None:
        """Of two tracks on one place, the one whose template is clearly less like what is there,
        where the other's is like it beyond doubt (None: no clear difference, neither like it, or a
        template or the frame is missing)."""
        if self._prev is None or a.template is None or b.template is None:
            return None
        la = likeness(a.template, self._prev, self._prev_scale, a.box)
        lb = likeness(b.template, self._prev, self._prev_scale, b.box)
        if la is None or lb is None or abs(la - lb) < CLEARLY_LIKER or max(la, lb) < self.rule.doubt:
            return None
        return a if la < lb else b

    def _move(self, tr: Track, mv: tuple[float, float, float] | None) -> None:
        if mv is None:
            tr.flow_failures += 1
            tr.box[[0, 2]] += tr.velocity[0]
            tr.box[[1, 3]] += tr.velocity[1]
            return
        tr.box[:] = _moved(tr.box, mv)
        tr.velocity = 0.5 * tr.velocity + 0.5 * np.array(mv[:2])

    # -- when a detection arrives -----------------------------------------------------------------
    def update(self, faces: Sequence[Face], index: int, t: float, looked: Sequence[Region] = ()) -> None:
        """The detector's faces on frame ``index`` (at or before the last followed frame).

        ``looked``: the regions the detector looked at (empty: all of the frame); a track outside
        them (or too small there) was not looked for, so it was not missed.

        Faces of a frame before the newest scene cut are of another scene: dropped (carried over
        the cut they would be boxes where nobody is, with the labels of people no longer seen);
        so are those of a frame before the source changed size (in the old size's pixels)."""
        if index < self._scene_from:
            self.dropped_stale += 1
            self._keyframes = {i for i in self._keyframes if i > index}
            self._forget()
            return
        rule = self.rule
        then = [tuple(tr.box_at(index)) for tr in self.tracks]
        dets = [(f.box.left, f.box.top, f.box.right, f.box.bottom) for f in faces]
        ious = iou_matrix(then, dets)
        # a track and a face whose identities (identity.py) say two people are never the same face,
        # however they overlap: the track's box was pulled onto a passer-by, who is the face
        other = np.zeros(ious.shape, dtype=bool)
        known = [di for di, f in enumerate(faces) if f.identity is not None]  # (classified this round)
        if known:
            who = np.stack([faces[di].identity for di in known])
            for ti, tr in enumerate(self.tracks):
                other[ti, known] = other_person(tr.identities, who, rule.other_person)
        pairs, lost, new = match(np.where(other, 0.0, ious), rule.min_iou)
        if lost and new and rule.near_reach > 0:
            # the detector's box of a face can move and change size more than IoU allows (a head
            # turning; a face half hidden by a hand): a track and a face still unmatched whose
            # centres lie close, for their size, are the same face, not a new one beside a ghost
            near = near_matrix([then[ti] for ti in lost], [dets[di] for di in new], rule.near_reach)
            near[other[np.ix_(lost, new)]] = 0.0
            more, still_lost, still_new = match(near, 1e-9)
            pairs += [(lost[i], new[j]) for i, j in more]
            lost, new = [lost[i] for i in still_lost], [new[j] for j in still_new]
        if looked:
            lost = [ti for ti in lost if looked_at(_as_box(then[ti]), looked)]
        # a track left without a face that it overlaps as a match would, but that is someone else:
        # its box moved onto that person; it ends (the face starts its own track)
        switched = {id(self.tracks[ti]) for ti in lost if (other[ti] & (ious[ti] >= rule.min_iou)).any()}
        lost = [ti for ti in lost if id(self.tracks[ti]) not in switched]
        self.switches += len(switched)
        seen = self._frames.get(index) or (
            (self._prev, self._prev_scale) if index == self._index and self._prev is not None else None
        )  # the grey frame the detector saw, for the faces' templates
        for ti, di in pairs:
            tr = self.tracks[ti]
            # (the neighbour first: cheaper than the look, and most faces have none near)
            if (
                rule.doubt > 0
                and seen is not None
                and tr.template is not None
                and not tr.doubted
                and self._has_neighbour(tr)
            ):
                like = likeness(tr.template, seen[0], seen[1], np.asarray(dets[di], dtype=np.float64))
                tr.doubted = like is not None and like < rule.doubt
            self._correct(tr, np.asarray(then[ti]), faces[di], t)
            tr.unlike_run = 0
            tr.template = template(seen[0], seen[1], dets[di]) if seen is not None else None
        for ti in lost:
            self.tracks[ti].misses += 1
        duplicates = {
            id(self.tracks[ti]) for ti in lost if _inside_any(then[ti], dets) >= rule.duplicate_inside
        }
        matched = [(np.asarray(then[ti]), self.tracks[ti].box) for ti, _ in pairs]
        born, paths = self._carry([faces[di].box for di in new], index, matched)
        for di, box, path in zip(new, born, paths, strict=True):
            f = Face(box, faces[di].labels, faces[di].track, faces[di].identity)
            tr = Track(self._next_id, f, index, t, rule)
            tr.history = deque(path, maxlen=rule.history)  # where it was since the detector saw it
            if not self._take_back(tr, t):
                self._next_id += 1
            if seen is not None:
                tr.template = template(seen[0], seen[1], dets[di])
            if f.labels:
                self._look(tr, f)
            self.tracks.append(tr)
            if rule.confirm_hits <= 1 or f.box.confidence >= rule.confirm_confidence:
                self._confirm(tr, t)
        dead = {id(self.tracks[ti]) for ti in lost if not self.tracks[ti].confirmed}
        self.tracks = [tr for tr in self.tracks if id(tr) not in dead]
        gone = duplicates | switched
        self._end_where(
            lambda tr: (
                id(tr) in gone or (tr.misses >= rule.max_misses and t - tr.last_hit >= rule.max_coast_s)
            ),
            t,
        )

    def _forget(self) -> None:
        """Keep the grey frames from the oldest awaited keyframe on (at most ``CARRY_FRAMES`` and
        ``CARRY_BYTES``: a detector that answers late or never must not make a stream hold more).
        Over the limit, frames between keyframes go first, where the kept ones lie closest (the
        flow then steps over two or more frames), so a keyframe keeps its start for the carry:
        dropping the oldest had dropped the keyframe itself once a round took over 16 1080p frames,
        and its new faces then started where they had been, not where they were."""
        size = sum(g.nbytes for g, _ in self._frames.values())
        while len(self._frames) > CARRY_FRAMES or (len(self._frames) > 1 and size > CARRY_BYTES):
            size -= self._frames.pop(self._to_drop())[0].nbytes
        if self._frames:
            self._keyframes = {i for i in self._keyframes if i >= min(self._frames)}
        first = min(self._keyframes, default=self._index + 1)
        for i in [i for i in self._frames if i < first]:
            del self._frames[i]

    def _to_drop(self) -> int:
        """The kept frame to drop first: between keyframes, where its neighbours lie closest."""
        kept = sorted(self._frames)
        inner = [k for k in range(1, len(kept) - 1) if kept[k] not in self._keyframes]
        if not inner:
            return kept[0]
        return kept[min(inner, key=lambda k: (kept[k + 1] - kept[k - 1], kept[k]))]

    def _carry(
        self, boxes: list[Box], index: int, moved: list[tuple[np.ndarray, np.ndarray]]
    ) -> tuple[list[Box], list[list[tuple[int, np.ndarray]]]]:
        """New faces found on frame ``index``, moved to the last followed frame: by the optical flow
        from frame to frame since the one the detector saw, or else (no flow) by how the matched
        tracks moved meanwhile. Also each one's path: (frame, box) from ``index`` on, for its
        track's history (a detection of a frame in between, answered later, is matched against
        where the face was then, not where it is now: on a camera panning 11 px a frame, with
        answers 24 frames late and rounds every 12, the next round's face lay 130 px from the new
        track's box and started a second track on it)."""
        self._keyframes = {i for i in self._keyframes if i > index}
        paths = [[(index, np.array([b.left, b.top, b.right, b.bottom], dtype=np.float64))] for b in boxes]
        try:
            if not boxes or index >= self._index:
                return boxes, paths
            xyxy = np.array([[b.left, b.top, b.right, b.bottom] for b in boxes], dtype=np.float64)
            steps = [i for i in sorted(self._frames) if i >= index]
            ok = np.zeros(len(boxes), dtype=bool)
            v = np.zeros((len(boxes), 2))  # each box's shift per frame on its last step that held
            if steps and steps[0] == index:
                for a, b in itertools.pairwise(steps):
                    (ga, sa), (gb, sb) = self._frames[a], self._frames[b]
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
                            xyxy[k] = _moved(xyxy[k], mv)
                            v[k] = (mv[0] / (b - a), mv[1] / (b - a))
                            ok[k] = True
                        paths[k].append((b, xyxy[k].copy()))
            shifts = [((now[:2] + now[2:]) - (then[:2] + then[2:])) / 2 for then, now in moved]
            shift = np.median(shifts, axis=0) if shifts else np.zeros(2)
            out = []
            for k, (b, x, good) in enumerate(zip(boxes, xyxy, ok, strict=True)):
                if not good:
                    x = np.array([b.left, b.top, b.right, b.bottom], dtype=np.float64) + np.tile(shift, 2)
                    paths[k] = paths[k][:1]  # (where it was in between is not known)
                out.append(Box(round(x[0]), round(x[1]), round(x[2]), round(x[3]), b.confidence))
                if paths[k][-1][0] != self._index:
                    paths[k].append((self._index, np.asarray(x, dtype=np.float64).copy()))
            return out, paths
        finally:
            self._forget()

    def _correct(self, tr: Track, then: np.ndarray, f: Face, t: float) -> None:
        b = f.box
        det = np.array([b.left, b.top, b.right, b.bottom], dtype=np.float64)
        # the detection is of frame `index`; carry its correction over to where the track is now
        sc = (det[2] - det[0] + 1) / max(1.0, then[2] - then[0] + 1)
        dc = (det[:2] + det[2:]) / 2 - (then[:2] + then[2:]) / 2
        c = (tr.box[:2] + tr.box[2:]) / 2 + dc
        half = (tr.box[2:] - tr.box[:2]) / 2 * sc
        tr.box[:] = (*(c - half), *(c + half))
        if tr.history and tr.history[-1][0] == self._index:
            # where the track is on this frame now: a later detection of this frame (the one just
            # planned, say) is matched against it and corrects from it, not from the box before
            tr.history[-1] = (self._index, tr.box.copy())
        tr.seen_at = det
        tr.confidence = float(b.confidence)
        tr.hits += 1
        tr.misses = 0
        tr.last_hit = t
        tr.detections_since_classified += 1
        if f.identity is not None:
            tr.identities.append(f.identity)
            self._take_back(tr, t)
        if f.identity is not None or f.labels:  # classified: a doubt is answered (or cannot be)
            tr.doubted = False
        changed = self._look(tr, f) if f.labels else False
        if not f.labels and tr.evidence:
            self.looks_skipped += 1
        if not tr.confirmed and (
            tr.hits >= self.rule.confirm_hits or b.confidence >= self.rule.confirm_confidence
        ):
            self._confirm(tr, t)
        elif changed and tr.confirmed:
            self.events.append(TrackEvent("update", tr.id, t, tr.as_box(), tr.labels(), t - tr.first_seen))

    def _look(self, tr: Track, f: Face) -> bool:
        self.looks += 1
        return tr.look(f.labels, f.box.height, f.box.confidence)

    def _confirm(self, tr: Track, t: float) -> None:
        tr.confirmed = True
        if tr.resumed:
            self.resumed += 1
            # (with any other track of that person: they are this one now)
            self._departed = deque(
                (
                    d
                    for d in self._departed
                    if d.id != tr.id and apart(d.identities, tr.identities) > self.rule.same_person
                ),
                REMEMBERED,
            )
        else:
            self.started += 1
        self.events.append(
            TrackEvent("start", tr.id, t, tr.as_box(), tr.labels(), t - tr.first_seen, tr.resumed)
        )

    def _take_back(self, tr: Track, t: float) -> bool:
        """A young track (up to its ``recognise_hits``-th detection) whose newest identity is clearly
        a remembered track's becomes that track: at its first detection it starts as that one; later
        its own shown id ends, merged into the remembered one, which starts again. True if so."""
        if tr.resumed or tr.hits > self.rule.recognise_hits or not tr.identities:
            return False
        old = self._recognise(tr.identities[-1], t)
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
            self._confirm(tr, t)
        return True

    def _recognise(self, identity: np.ndarray, t: float) -> Departed | None:
        """The remembered track whose face ``identity`` clearly is, if any (forgotten once the track
        that resumes it shows; one not yet shown, say a low score awaiting a second detection, holds
        its id meanwhile)."""
        while self._departed and t - self._departed[0].ended > self.rule.remember_s:
            self._departed.popleft()
        if not self._departed:
            return None
        live = {tr.id for tr in self.tracks}
        free = [d for d in self._departed if d.id not in live]
        k = recognised(identity, [d.identities for d in free], self.rule.same_person)
        if k is None:
            return None
        # one person can have left several tracks (a brief one, not recognised when it came): the
        # one first seen is theirs (seen live: a person back under a 3-frame id, not their own)
        same = [d for d in free if apart(d.identities, free[k].identities) <= self.rule.same_person]
        return min(same, key=lambda d: d.first_seen)

    def _end_where(self, gone, t: float) -> None:
        keep = []
        for tr in self.tracks:
            if gone(tr):
                if tr.confirmed:
                    self.events.append(
                        TrackEvent("end", tr.id, t, tr.as_box(), tr.labels(), tr.last_seen - tr.first_seen)
                    )
                    if tr.identities and self.rule.remember_s > 0:
                        self._departed.append(
                            Departed(tr.id, t, tr.first_seen, tuple(tr.identities), tr.evidence)
                        )
            else:
                keep.append(tr)
        self.tracks = keep

    # -- what others read ---------------------------------------------------------------------------
    @property
    def gray(self) -> np.ndarray | None:
        """The last followed frame in grey, at the flow's working scale (None before the first)."""
        return self._prev

    def faces(self) -> tuple[Face, ...]:
        """The shown tracks' faces on the last followed frame."""
        return tuple(tr.face() for tr in self.tracks if tr.shown)

    def predicted(self) -> list[tuple[int, Box]]:
        """Every live track's (id, box) on the last followed frame: for a detection scheduler."""
        return [(tr.id, tr.as_box()) for tr in self.tracks]

    def left_behind(self) -> list[tuple[int, Box]]:
        """(id, box) of the places where a track's face was last detected and which its box has since
        left (by a face width or more): another face may be there, one the track was pulled off
        by someone passing in front (seen on a street: a standing person lost for 7 s)."""
        out = []
        for tr in self.tracks:
            w = max(1.0, tr.seen_at[2] - tr.seen_at[0])
            moved = np.abs((tr.box[:2] + tr.box[2:]) / 2 - (tr.seen_at[:2] + tr.seen_at[2:]) / 2).max()
            if tr.confirmed and moved >= w:
                out.append((tr.id, _as_box(tuple(tr.seen_at))))
        return out

    def settled_boxes(self) -> tuple[Box, ...]:
        """Boxes of tracks whose face needs no classifying on the next detection."""
        return tuple(tr.as_box() for tr in self.tracks if tr.confirmed and not tr.needs_classifying())

    def drain_events(self) -> list[TrackEvent]:
        ev, self.events = self.events, []
        return ev

    def end_all(self, t: float) -> None:
        self._end_where(lambda tr: True, t)


def _moved(box: np.ndarray, mv: tuple[float, float, float]) -> np.ndarray:
    """``box`` (x0, y0, x1, y1) shifted by (dx, dy) and scaled about its centre by the third value."""
    dx, dy, sc = mv
    cx, cy = (box[0] + box[2]) / 2 + dx, (box[1] + box[3]) / 2 + dy
    hw, hh = (box[2] - box[0]) / 2 * sc, (box[3] - box[1]) / 2 * sc
    return np.array([cx - hw, cy - hh, cx + hw, cy + hh])


def _thumbnail(gray: np.ndarray) -> np.ndarray:
    """32x24, zero mean, unit norm: the picture's layout, whatever its exposure."""
    t = normalised(cv2.resize(gray, (32, 24), interpolation=cv2.INTER_AREA).astype(np.float32))
    return np.zeros((24, 32), np.float32) if t is None else t


def _visible_fraction(box: np.ndarray, w: int, h: int) -> float:
    x0, y0, x1, y1 = box
    area = max(1.0, (x1 - x0 + 1) * (y1 - y0 + 1))
    iw = max(0.0, min(x1, w - 1) - max(x0, 0) + 1)
    ih = max(0.0, min(y1, h - 1) - max(y0, 0) + 1)
    return iw * ih / area


def _inside_any(box: XYXY, others: Sequence[XYXY]) -> float:
    """The largest share of ``box``'s area that lies inside one of ``others``."""
    x0, y0, x1, y1 = box
    area = max(1.0, (x1 - x0 + 1) * (y1 - y0 + 1))
    best = 0.0
    for a0, b0, a1, b1 in others:
        iw = min(x1, a1) - max(x0, a0) + 1
        ih = min(y1, b1) - max(y0, b0) + 1
        if iw > 0 and ih > 0:
            best = max(best, iw * ih / area)
    return best


def _as_box(b: XYXY) -> Box:
    return Box(round(b[0]), round(b[1]), round(b[2]), round(b[3]), 0.0)
