"""The per-stream stage that live streams and ``streamer annotate`` share.

Detect when due, track always, labels per track, draw: ``due`` says when a frame should go to
the detector, ``on_detections`` hands its answer over (from the event loop or the caller's
thread), and ``process`` (run in the render pool, never on the event loop) moves the tracks to
the frame, applies the newest detections, plans where the detector should look on a due frame
(with a planner: tracks, motion, sweep; without one: the whole frame), and draws the tracked faces.
``prepare`` and ``finish`` are its two halves, for a caller that detects in between;
``plan_last`` plans on the frame finished last, for a caller whose detector came free before the
next frame.

With ``between`` (``pipeline.detect_between``) and detection rounds rationed (``detect_every`` >
1), a frame between rounds is due too, for a small look at what is new: the picture a panning or
zooming camera brought into view since the detector last looked there (revealed.py), grown
inward by a face or so (a face coming in is partly in view), and each face seen once and not
shown yet (the second sighting that confirms it, or ends it). Such a look does not move the
rounds' schedule.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from streamer.classify import UNCERTAIN
from streamer.config import PipelineConfig
from streamer.detect.regions import FACE_PX, square
from streamer.metrics import Metrics
from streamer.overlay import draw_faces
from streamer.pipeline.motion import MotionDetector
from streamer.pipeline.planner import TRACK_CONTEXT, RegionPlanner
from streamer.pipeline.revealed import Revealed
from streamer.track.tracker import Tracker, TrackerRule, TrackEvent
from streamer.types import Box, Detections, Face, Frame, Label, Region


def rule_for(p: PipelineConfig, classifiers: Sequence[object] = ()) -> TrackerRule:
    """The tracker's rule under ``pipeline`` settings (and the classifiers' ``when`` conditions)."""
    from streamer.classify.conditions import conditions_of

    conds = tuple((n, d, v) for n, (d, v) in conditions_of(classifiers).items())
    return TrackerRule(remember_s=p.reidentify_s, conditions=conds)


# a look between rounds waits until new picture this deep (in faces of the smallest size the
# whole frame's look finds) has come into view: a thinner sliver shows no face yet
REVEALED_DEPTH = 0.1
# ... and looks at it grown inward by this many such faces: a face coming in, partly in view
REVEALED_REACH = 1.0


@dataclass(frozen=True)
class BetweenLooks:
    """Looks between detection rounds (module docstring), at the scale of the whole frame's look:
    the frame scaled to ``max_side`` at ``upsample`` (with a planner, its whole-frame scale)."""

    max_side: int = 640
    upsample: int = 0

    def scale(self, width: int, height: int) -> float:
        side = max(width, height)
        return min(1.0, self.max_side / side if self.max_side else 1.0) * 2**self.upsample


def between_for(p: PipelineConfig) -> BetweenLooks | None:
    """The looks between rounds under ``pipeline`` settings (None: off)."""
    return BetweenLooks(p.detect_max_side, p.upsample) if p.detect_between else None


@dataclass(frozen=True)
class Processed:
    image: np.ndarray  # the annotated frame
    faces: tuple[Face, ...]  # the tracked faces drawn on it
    events: tuple[TrackEvent, ...]  # tracks that started, changed label or ended on this frame
    regions: tuple[Region, ...] = ()  # where to detect on this frame, if planned (empty: all of it)


class FaceStage:
    def __init__(
        self,
        stream: str,
        detect_every: int = 1,
        metrics: Metrics | None = None,
        rule: TrackerRule | None = None,
        planner: RegionPlanner | None = None,
        between: BetweenLooks | None = None,
    ) -> None:
        self.stream = stream
        self.planner = planner
        self.between = between if detect_every > 1 else None  # (every frame is a round's otherwise)
        self.revealed = Revealed() if self.between is not None else None
        self._size = (0, 0)  # the last frame's (width, height)
        self._looking_between = False  # the frame due now is due for a look between rounds
        self._due_index = 0  # the frame last asked about
        self._confirm_looked: set[int] = set()  # tracks seen once that a look between rounds has seen
        self.looks_between = 0  # of detections_due: looks between rounds
        self.motion = MotionDetector() if planner is not None else None
        self.detect_every = max(1, detect_every)
        self.metrics = metrics
        self.tracker = Tracker(rule)
        self._pending: Detections | None = None
        self._lock = threading.Lock()
        self._last_submitted = -(10**9)
        self.detections_due = 0  # frames sent to the detector: every Nth, and the one after a scene cut
        self._applied = -1  # frame index of the last detections applied
        self._counted: set[tuple[int, str]] = set()  # (track, classifier) already in faces_total
        self._young: set[int] = set()  # new tracks not counted yet (see _count)
        # the tracker's switches and resumed tracks already in their counters
        self._reported = {"switches": 0, "resumed": 0, "cuts": 0}
        self.faces: tuple[Face, ...] = ()
        self._track_s = 0.0  # time prepare() took, counted with finish() in the "track" stage
        self.looks = None  # a history.looks.LookKeeper: each track's best look, for its snapshot
        self.people = None  # a people.recognize.StageRecognizer: names from the face library, privacy

    def due(self, index: int) -> bool:
        """Whether frame ``index`` should go to the detector (and, if so, marks it sent): a round's
        frame (every ``detect_every``-th, the first after a scene cut, and the one after that if
        the planner's look at the new scene takes two rounds), or (with ``between``) one between
        rounds with something new to look at."""
        self._looking_between = False
        self._due_index = index
        if (
            self.tracker.cut
            or index - self._last_submitted >= self.detect_every
            or index < self._last_submitted
            or (self.planner is not None and self.planner.second_look)  # a new scene's, at once too
        ):
            if self.tracker.cut and self.planner is not None:
                self.planner.fresh = True
            self.tracker.cut = False
            self.detections_due += 1
            self._last_submitted = index
            return True
        if self.between is not None and self._new_to_look_at():
            self._looking_between = True
            self.detections_due += 1
            self.looks_between += 1
            return True
        return False

    def _new_to_look_at(self) -> bool:
        """Whether, as of the last frame prepared, something new waits for a look between rounds."""
        return bool(self._unconfirmed() or self._unseen())

    def _unconfirmed(self) -> list[tuple[int, Box]]:
        """Tracks seen once, not shown, and not looked at again yet (id, box)."""
        return [
            (tr.id, tr.as_box())
            for tr in self.tracker.tracks
            if not tr.confirmed and tr.id not in self._confirm_looked
        ]

    def _unseen(self) -> list[Box]:
        assert self.between is not None and self.revealed is not None
        w, h = self._size
        if not w:
            return []
        face = FACE_PX / self._look_scale(w, h)  # the smallest face the whole frame's look finds
        return self.revealed.unseen(REVEALED_DEPTH * face)

    def _look_scale(self, w: int, h: int) -> float:
        assert self.between is not None
        return self.planner.coarse(w, h).scale if self.planner is not None else self.between.scale(w, h)

    def _between_plan(self, w: int, h: int) -> tuple[Region, ...]:
        """What a look between rounds looks at on this frame: the new picture, grown inward, and
        the faces seen once (each once). Empty if nothing is left to look at after all (the
        camera turned back, the detections just applied confirmed the face): then the frame gets
        the next round's look, early."""
        s = self._look_scale(w, h)
        reach = REVEALED_REACH * FACE_PX / s
        out = []
        for b in self._unseen():
            x0, y0 = max(0, math.floor(b.left - reach)), max(0, math.floor(b.top - reach))
            x1, y1 = min(w - 1, math.ceil(b.right + reach)), min(h - 1, math.ceil(b.bottom + reach))
            out.append(Region(x0, y0, x1, y1, s, "revealed"))
        for tid, b in self._unconfirmed():
            self._confirm_looked.add(tid)
            side = TRACK_CONTEXT * max(b.width, b.height)
            out.append(square((b.left + b.right) / 2, (b.top + b.bottom) / 2, side, s, w, h, "confirm"))
        live = {tr.id for tr in self.tracker.tracks}
        self._confirm_looked &= live
        return tuple(out)

    def skip_boxes(self) -> tuple[Box, ...]:
        """Faces the detector will find here need no classifying: their tracks' labels are settled."""
        return self.tracker.settled_boxes()

    def on_detections(self, d: Detections) -> None:
        with self._lock:  # called on the event loop while ``process`` may run in a render thread
            if self._pending is None or d.frame_index >= self._pending.frame_index:
                self._pending = d

    def process(self, frame: Frame, draw: bool = True, plan: bool = False) -> Processed:
        """Both halves: the plan (if asked) comes back with the drawn frame."""
        regions = self.prepare(frame, plan)
        out = self.finish(frame, draw)
        return Processed(out.image, out.faces, out.events, regions)

    def prepare(self, frame: Frame, plan: bool = False) -> tuple[Region, ...]:
        """Move the tracks to this frame; with ``plan``, where the detector should look on it."""
        t0 = time.perf_counter()
        self.tracker.follow(frame.image, frame.index, frame.captured_at, keep=plan)
        if plan:  # an answer that came meanwhile first: the plan looks at the faces it found
            self._apply(frame)
        regions: tuple[Region, ...] = ()
        h, w = frame.image.shape[:2]
        self._size = (w, h)
        gray = self.tracker.gray
        if self.revealed is not None and gray is not None:
            self.revealed.update(gray, (w, h))
        if (
            self.motion is not None
            and self.planner is not None
            and gray is not None
            and not self.planner.fits_whole(w, h)  # (a frame detected whole every round needs no motion)
        ):
            self.motion.update(gray, (w, h), [tr.xyxy for tr in self.tracker.tracks if tr.confirmed])
        if plan:
            regions = self._plan(w, h)
        self._track_s = time.perf_counter() - t0
        return regions

    def _apply(self, frame: Frame) -> None:
        """The newest detections (of this frame or an earlier one), if not applied yet."""
        with self._lock:
            d, self._pending = self._pending, None
        if d is not None and d.frame_index > self._applied and d.frame_index <= frame.index:
            faces = self.people.label(d.faces) if self.people is not None else d.faces
            self.tracker.update(faces, d.frame_index, frame.captured_at, d.regions)
            self._applied = d.frame_index
        elif d is not None and d.frame_index > frame.index:  # not this frame's yet: keep it
            self.on_detections(d)

    def plan_last(self, frame: Frame) -> tuple[Region, ...]:
        """``prepare``'s plan for ``frame``, the last one prepared and finished without one: for a
        caller whose detector came free before the next frame (it need not wait for that frame).
        The detections that just came are applied first (on this frame: the tracks they correct and
        start are where the plan looks; the next ``finish`` shows them)."""
        self._apply(frame)
        self.tracker.keep_last()
        h, w = frame.image.shape[:2]
        return self._plan(w, h)

    def _plan(self, w: int, h: int) -> tuple[Region, ...]:
        regions = self._between_plan(w, h) if self._looking_between else ()
        if self._looking_between and not regions:  # nothing left to look at: the round, early
            self._looking_between = False
            self.looks_between -= 1
            self._last_submitted = self._due_index
        if not regions and self.planner is not None and self.motion is not None:
            moved, fraction = self.motion.take()
            tr = self.tracker
            hidden = {t.id for t in tr.tracks if t.confirmed and not t.shown}
            regions = self.planner.plan(w, h, tr.predicted(), moved, fraction, tr.left_behind(), hidden)
        if self.revealed is not None:
            self.revealed.looked(regions, (w, h))
        return regions

    def finish(self, frame: Frame, draw: bool = True) -> Processed:
        """Apply the newest detections (of this frame or an earlier one) and draw the tracked faces."""
        t0 = time.perf_counter() - self._track_s
        self._track_s = 0.0
        tr = self.tracker
        self._apply(frame)
        self.faces = tr.faces()
        events = tuple(tr.drain_events())
        seen = frame.image
        if self.people is not None:
            self.people.observe(tr.tracks, events, frame.image)
            # (privacy: snapshots and video alike; the whole frame until this scene's first detections)
            seen = self.people.blur(seen, tr.tracks, looked=self._applied >= max(0, tr.scene_from))
        if self.looks is not None:
            self.looks.observe(seen, frame.captured_at, tr.tracks, events)
        t1 = time.perf_counter()
        image = draw_faces(seen, self.faces) if draw else seen
        if self.metrics is not None:
            self._count(events)
            self.metrics.stage_seconds.labels("track").observe(t1 - t0)
            self.metrics.stage_seconds.labels("overlay").observe(time.perf_counter() - t1)
        return Processed(image, self.faces, events)

    def _count(self, events: tuple[TrackEvent, ...]) -> None:
        m = self.metrics
        assert m is not None
        m.tracks_active.labels(self.stream).set(sum(1 for t in self.tracker.tracks if t.shown))
        for name, counter in (
            ("switches", m.track_switches),
            ("resumed", m.tracks_resumed),
            ("cuts", m.scene_cuts),
        ):
            series = counter.labels(self.stream)  # (a 0 series from the start: rate() works)
            now = getattr(self.tracker, name)
            if now > self._reported[name]:
                series.inc(now - self._reported[name])
                self._reported[name] = now
        # a new track may yet turn out to be someone who left (recognised at one of its first
        # looks, it merges into their remembered track): it counts in tracks_total, and its labels
        # in faces_total, once past that (its recognise_hits-th detection) or when it ends as itself
        rule = self.tracker.rule
        due: list[tuple[int, tuple[Label, ...], bool]] = []  # (track, labels, ended) to count by
        for e in events:
            if e.kind == "start" and e.resumed:  # that person's settled labels were counted before
                self._counted |= {(e.track, lab.classifier) for lab in e.labels if lab.label != UNCERTAIN}
            elif e.kind == "start":
                self._young.add(e.track)
        for tr in self.tracker.tracks if self._young else ():
            if tr.id in self._young and (rule.remember_s <= 0 or tr.hits > rule.recognise_hits):
                self._young.discard(tr.id)
                m.tracks.labels(self.stream).inc()
                due.append((tr.id, tr.labels(), False))
        for e in events:
            if e.merged_into is not None:  # (its face is counted as the track it became)
                self._young.discard(e.track)
                self._counted = {k for k in self._counted if k[0] != e.track}
                continue
            if e.kind == "end" and e.track in self._young:
                self._young.discard(e.track)
                m.tracks.labels(self.stream).inc()
            if e.track not in self._young:
                due.append((e.track, e.labels, e.kind == "end"))
        # each track counts once per classifier, by the first label it settles on; a track that
        # ends without one counts as "<classifier>:?"; with no classifiers, as "face"
        for track, labels, ended in due:
            if ended and not labels and (track, "") not in self._counted:
                self._counted.add((track, ""))
                m.faces.labels(self.stream, "face").inc()
            for lab in labels:
                if (lab.label != UNCERTAIN or ended) and (track, lab.classifier) not in self._counted:
                    self._counted.add((track, lab.classifier))
                    m.faces.labels(self.stream, f"{lab.classifier}:{lab.label}").inc()
            if ended:
                self._counted = {k for k in self._counted if k[0] != track}

    def close(self, t: float) -> tuple[TrackEvent, ...]:
        """End every track (the stream is over)."""
        self.tracker.end_all(t)
        events = tuple(self.tracker.drain_events())
        if self.people is not None:
            self.people.observe((), events)
        if self.looks is not None:
            self.looks.observe(None, t, (), events)
        if self.metrics is not None:
            self._count(events)
        return events
