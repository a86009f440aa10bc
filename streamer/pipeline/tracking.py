"""The per-stream stage that live streams and ``streamer annotate`` share.

Detect when due, track always, labels per track, draw: ``due`` says when a frame should go to
the detector, ``on_detections`` hands its answer over (from the event loop or the caller's
thread), and ``process`` (run in the render pool, never on the event loop) moves the tracks to
the frame, plans where the detector should look on a due frame (with a planner: tracks, motion,
sweep; without one: the whole frame), applies the newest detections, and draws the tracked faces.
``prepare`` and ``finish`` are its two halves, for a caller that detects in between;
``plan_last`` plans on the frame finished last, for a caller whose detector came free before the
next frame.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np

from streamer.classify import UNCERTAIN
from streamer.config import PipelineConfig
from streamer.metrics import Metrics
from streamer.overlay import draw_faces
from streamer.pipeline.motion import MotionDetector
from streamer.pipeline.planner import RegionPlanner
from streamer.track.tracker import Tracker, TrackerRule, TrackEvent
from streamer.types import Box, Detections, Face, Frame, Region


def rule_for(p: PipelineConfig) -> TrackerRule:
    """The tracker's rule under ``pipeline`` settings."""
    return TrackerRule(remember_s=p.reidentify_s)


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
    ) -> None:
        self.stream = stream
        self.planner = planner
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
        # the tracker's switches and resumed tracks already in their counters
        self._reported = {"switches": 0, "resumed": 0}
        self.faces: tuple[Face, ...] = ()
        self._track_s = 0.0  # time prepare() took, counted with finish() in the "track" stage

    def due(self, index: int) -> bool:
        """Whether frame ``index`` should go to the detector (and, if so, marks it sent)."""
        if (
            self.tracker.cut
            or index - self._last_submitted >= self.detect_every
            or index < self._last_submitted
        ):
            self.tracker.cut = False
            self.detections_due += 1
            self._last_submitted = index
            return True
        return False

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
        regions: tuple[Region, ...] = ()
        h, w = frame.image.shape[:2]
        gray = self.tracker.gray
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
            self.tracker.update(d.faces, d.frame_index, frame.captured_at, d.regions)
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
        if self.planner is None or self.motion is None:
            return ()
        moved, fraction = self.motion.take()
        tr = self.tracker
        return self.planner.plan(w, h, tr.predicted(), moved, fraction, tr.left_behind())

    def finish(self, frame: Frame, draw: bool = True) -> Processed:
        """Apply the newest detections (of this frame or an earlier one) and draw the tracked faces."""
        t0 = time.perf_counter() - self._track_s
        self._track_s = 0.0
        tr = self.tracker
        self._apply(frame)
        self.faces = tr.faces()
        events = tuple(tr.drain_events())
        t1 = time.perf_counter()
        image = draw_faces(frame.image, self.faces) if draw else frame.image
        if self.metrics is not None:
            self._count(events)
            self.metrics.stage_seconds.labels("track").observe(t1 - t0)
            self.metrics.stage_seconds.labels("overlay").observe(time.perf_counter() - t1)
        return Processed(image, self.faces, events)

    def _count(self, events: tuple[TrackEvent, ...]) -> None:
        m = self.metrics
        assert m is not None
        m.tracks_active.labels(self.stream).set(sum(1 for t in self.tracker.tracks if t.shown))
        for name, counter in (("switches", m.track_switches), ("resumed", m.tracks_resumed)):
            series = counter.labels(self.stream)  # (a 0 series from the start: rate() works)
            now = getattr(self.tracker, name)
            if now > self._reported[name]:
                series.inc(now - self._reported[name])
                self._reported[name] = now
        for e in events:
            if e.kind == "start" and not e.resumed:
                m.tracks.labels(self.stream).inc()
            elif e.kind == "start":  # that person's settled labels were counted when first settled
                self._counted |= {(e.track, lab.classifier) for lab in e.labels if lab.label != UNCERTAIN}
        # each track counts once per classifier, by the first label it settles on; a track that
        # ends without one counts as "<classifier>:?"; with no classifiers, as "face"
        for e in events:
            if e.merged_into is not None:  # (its face is counted as the track it became)
                self._counted = {k for k in self._counted if k[0] != e.track}
                continue
            labels = [lab for lab in e.labels if lab.label != UNCERTAIN or e.kind == "end"]
            if e.kind == "end" and not e.labels and (e.track, "") not in self._counted:
                self._counted.add((e.track, ""))
                m.faces.labels(self.stream, "face").inc()
            for lab in labels:
                if (e.track, lab.classifier) not in self._counted:
                    self._counted.add((e.track, lab.classifier))
                    m.faces.labels(self.stream, f"{lab.classifier}:{lab.label}").inc()
            if e.kind == "end":
                self._counted = {k for k in self._counted if k[0] != e.track}

    def close(self, t: float) -> tuple[TrackEvent, ...]:
        """End every track (the stream is over)."""
        self.tracker.end_all(t)
        events = tuple(self.tracker.drain_events())
        if self.metrics is not None:
            self._count(events)
        return events
