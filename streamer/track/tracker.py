"""Per-stream face tracks: boxes follow faces on every frame, detections correct and create them.

``Tracker`` is the one object a stream holds; it runs the rules in their order and leaves each to
its module:

- every frame, ``follow``: a change of size or a scene cut (scene.py); every track's box moved with
  the image by the optical flow (flow.py; ``Track.move``); the tracks whose turn it is compared
  with their face's template (appearance_checks.py); the frame kept for the keyframe carry while
  an answer is awaited (carry.py); tracks that left the frame or lie on one face end
  (lifecycle.py).
- when the detector's answer for a frame arrives, ``update``: answers from before a cut or size
  change are dropped; the faces are associated with the tracks where they were on that frame
  (association.py); matched tracks are corrected (``Track.detected``), classified faces add to
  their labels (evidence.py) and identities, a young track's face may be recognised as a
  remembered one (remembered.py); new faces are carried to now (carry.py) and start tracks;
  tracks missed long enough end (lifecycle.py).

The rule (rule.py) holds every threshold. docs/tracking.md tells the whole story.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

import numpy as np

from streamer.track.appearance import likeness, template
from streamer.track.appearance_checks import check_boxes, check_carried, doubt_at_detection
from streamer.track.association import associate
from streamer.track.carry import CARRY_BYTES, CARRY_FRAMES, KeyframeCarry
from streamer.track.flow import follow_boxes, to_gray, work_scale
from streamer.track.lifecycle import Lifecycle, TrackEvent
from streamer.track.rule import TrackerRule
from streamer.track.scene import SceneWatch, same_view
from streamer.track.track import Track, xyxy_box
from streamer.types import Box, Face, Region

__all__ = ["CARRY_BYTES", "CARRY_FRAMES", "Track", "TrackEvent", "Tracker", "TrackerRule"]


class Tracker:
    """One stream's tracks. ``follow`` every frame, ``update`` with each detector answer, then read
    ``faces()`` (what to draw) and ``drain_events()`` (what changed)."""

    def __init__(self, rule: TrackerRule | None = None) -> None:
        self.rule = rule or TrackerRule()
        self._life = Lifecycle(self.rule)  # the tracks, their events, the remembered ones
        self._scene = SceneWatch()
        self._carry = KeyframeCarry()
        self._prev: np.ndarray | None = None  # the last followed frame, grey, at the flow's scale
        self._prev_scale = 1.0
        self._index = -1  # the last followed frame
        self._times: dict[int, float] = {}  # frame -> its time, for the frames a track's history holds
        self.cut = False  # a scene cut was seen: the next frame should go to the detector
        self.cuts = 0  # scene cuts and frame-size changes seen (each starts a scene)
        self._scene_from = -1  # the first frame of the current scene: the newest cut or size change
        self.dropped_stale = 0  # answers that arrived after a cut or size change but were of a frame before
        self.looks = 0  # faces classified (the classifier's work)
        self.looks_skipped = 0  # detected faces of settled tracks left unclassified
        self.switches = 0  # tracks ended because the face matched to them was someone else

    # -- every frame -------------------------------------------------------------------------
    def follow(self, image: np.ndarray, index: int, t: float, keep: bool = False) -> None:
        """Move every track to frame ``index`` (an RGB image) and end the ones lost or gone.

        ``keep``: this frame went to the detector; its faces will arrive a few frames later, and
        the boxes of new faces are carried from it to the frame shown then (``update``)."""
        h, w = image.shape[:2]
        scaled = self._scene.resized(w, h)
        if scaled is not None:
            self._resized(*scaled, index, t)
        smallest = min((min(tr.box[2] - tr.box[0], tr.box[3] - tr.box[1]) for tr in self.tracks), default=1e9)
        s = work_scale(image.shape, smallest)
        if self._prev is not None and self._prev_scale != s:  # same scale for both frames of a step
            s = self._prev_scale
        gray = to_gray(image, s)
        if self._scene.is_cut(gray):
            # another scene: no face here is where a track is; end them all and ask for a detection
            self._life.end_all(t)
            self.cut = True
            self.cuts += 1
            self._scene_from = index
        if self._prev is not None and self._prev.shape == gray.shape and self.tracks:
            moves = follow_boxes(self._prev, gray, s, [tr.xyxy for tr in self.tracks])
            for tr, mv in zip(self.tracks, moves, strict=True):
                tr.move(mv, t)
        check_boxes(self.tracks, gray, s, index, self.rule)
        # the next step may pick another scale (a smaller face arrived): then this frame is redone
        s_next = work_scale(image.shape, smallest)
        self._prev, self._prev_scale = (gray, s) if s_next == s else (to_gray(image, s_next), s_next)
        self._index = index
        self._times[index] = t
        while len(self._times) > self.rule.history:
            del self._times[next(iter(self._times))]
        if keep:
            self.keep_last()
        else:
            self._carry.followed(index, self._prev, self._prev_scale)
        for tr in self.tracks:
            tr.history.append((index, tr.box.copy()))
            tr.last_seen = t
        self._life.end_out_of_view(w, h, t)
        self._life.end_duplicates(t, self._prev, self._prev_scale)

    def _resized(self, sx: float, sy: float, index: int, t: float) -> None:
        """The source changed resolution by (sx, sy) (a WebRTC sender adapting to its bandwidth, a
        camera reconfigured). The same view scaled: every track is scaled with it (it keeps its id
        and labels). Another picture shape: not the same view, so a cut. Either way answers for
        frames of the old size are dropped (their boxes and regions are in its pixels) and the
        next frame goes to the detector."""
        self.cut = True
        self.cuts += 1
        self._scene_from = index
        self._carry.clear()
        self._prev = None
        if not same_view(sx, sy):
            self._life.end_all(t)
            return
        for tr in self.tracks:
            tr.scale(sx, sy)

    def keep_last(self) -> None:
        """The last followed frame went to the detector (``follow``'s ``keep``, or said afterwards:
        the detector came free before the next frame)."""
        if self._prev is None:
            return
        self._carry.keep(self._index, self._prev, self._prev_scale)

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
            self._carry.dropped(index, self._index)
            return
        rule = self.rule
        tracks = self.tracks
        a = associate(tracks, faces, index, rule, looked, self._scene.size)
        self.switches += len(a.switched)
        seen = self._carry.frames.get(index) or (
            (self._prev, self._prev_scale) if index == self._index and self._prev is not None else None
        )  # the grey frame the detector saw, for the faces' templates
        seen_t = self._times.get(index, t)  # (when the frame the detector saw was shown)
        for ti, di in a.pairs:
            tr = tracks[ti]
            doubt_at_detection(tr, self.tracks, seen, a.boxes[di], rule)
            self._correct(tr, np.asarray(a.then[ti]), faces[di], t, seen_t)
            tr.unlike_run = 0
            tr.template = template(seen[0], seen[1], a.boxes[di]) if seen is not None else None
        for ti, di in a.weak_pairs:  # (a weak detection places the box; the template stays the face's)
            tracks[ti].detected(np.asarray(a.then[ti]), faces[di].box, self._index, t, True, seen_t)
            tracks[ti].unlike_run = 0
        # a track the detector looked at where its box was too small to be found, undetected for
        # max_coast_s, counts as missed: a box the flow shrank (a head turning away, a face going
        # behind someone) is otherwise never missed, and stayed on the back of a head for seconds
        lost = a.lost + [ti for ti in a.small if t - tracks[ti].last_hit >= rule.max_coast_s]
        for ti in lost:
            tr = tracks[ti]
            tr.misses += 1
            if tr.missed_unlike and tr.template is not None and self._prev is not None:
                tr.likeness = likeness(tr.template, self._prev, self._prev_scale, tr.box)  # (Track.shown)
                tr.unsure |= (
                    bool(rule.sure_like) and tr.likeness is not None and tr.likeness < rule.missed_unlike
                )
        matched = [(np.asarray(a.then[ti]), tracks[ti].box) for ti, _ in a.pairs + a.weak_pairs]
        born, paths = self._carry.carry([faces[di].box for di in a.new], index, self._index, matched)
        for di, box, path in zip(a.new, born, paths, strict=True):
            f = Face(box, faces[di].labels, faces[di].track, faces[di].identity)
            tr = self._life.new_track(f, index, t)
            tr.history = deque(path, maxlen=rule.history)  # where it was since the detector saw it
            if seen is not None:
                tr.template = template(seen[0], seen[1], a.boxes[di])
                check_carried(tr, self._prev, self._prev_scale, rule)
            if f.labels:
                self._look(tr, f)
            self.tracks.append(tr)
            self._life.detected(tr, f.box.confidence, t)
        gone = {id(tracks[ti]) for ti in a.duplicates + a.switched}
        self._life.end_missed([tracks[ti] for ti in lost], gone, t)

    def _correct(self, tr: Track, then: np.ndarray, f: Face, t: float, seen_t: float) -> None:
        """``tr`` was matched to the detected face ``f``, found where the track was at ``then`` on
        a frame of time ``seen_t``."""
        tr.detected(then, f.box, self._index, t, seen_t=seen_t)
        if f.identity is not None:
            tr.identities.append(f.identity)
            self._life.take_back(tr, t)
        if f.identity is not None or f.labels:  # classified: a doubt is answered (or cannot be)
            tr.doubted = False
        changed = self._look(tr, f) if f.labels else False
        if not f.labels and tr.evidence:
            self.looks_skipped += 1
        self._life.detected(tr, f.box.confidence, t, changed)

    def _look(self, tr: Track, f: Face) -> bool:
        self.looks += 1
        return tr.look(f.labels, f.box.height, f.box.confidence)

    # -- what others read ---------------------------------------------------------------------------
    @property
    def tracks(self) -> list[Track]:
        """The live tracks, shown or not, in the order they started."""
        return self._life.tracks

    @tracks.setter
    def tracks(self, tracks: list[Track]) -> None:
        self._life.tracks = tracks

    @property
    def scene_from(self) -> int:
        """The first frame of the current scene (the newest cut or size change; -1: the first)."""
        return self._scene_from

    @property
    def events(self) -> list[TrackEvent]:
        """Events since the last ``drain_events``."""
        return self._life.events

    @property
    def started(self) -> int:
        """Confirmed tracks so far (resumed ones aside)."""
        return self._life.started

    @property
    def resumed(self) -> int:
        """Ended tracks whose face came back and was recognised."""
        return self._life.resumed

    @property
    def remembered(self) -> tuple[int, ...]:
        """Ids of the ended tracks remembered, oldest first."""
        return tuple(d.id for d in self._life.remembered)

    @property
    def _frames(self) -> dict[int, tuple[np.ndarray, float]]:
        """The grey frames kept for the keyframe carry (read by tests)."""
        return self._carry.frames

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
        left (by a face width or more): another face may be there, one the track was pulled off by
        someone passing in front (a person standing on a street would otherwise wait for the slow
        sweep to be found again)."""
        out = []
        for tr in self.tracks:
            w = max(1.0, tr.seen_at[2] - tr.seen_at[0])
            moved = np.abs((tr.box[:2] + tr.box[2:]) / 2 - (tr.seen_at[:2] + tr.seen_at[2:]) / 2).max()
            if tr.confirmed and moved >= w:
                out.append((tr.id, xyxy_box(tuple(tr.seen_at))))
        return out

    def settled_boxes(self) -> tuple[Box, ...]:
        """Boxes of tracks whose face needs no classifying on the next detection."""
        return tuple(tr.as_box() for tr in self.tracks if tr.confirmed and not tr.needs_classifying())

    def drain_events(self) -> list[TrackEvent]:
        ev, self._life.events = self._life.events, []
        return ev

    def end_all(self, t: float) -> None:
        self._life.end_all(t)
