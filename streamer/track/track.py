"""One face's track: its box and how it moves, what the detector and the classifiers said of it.

A track's box moves with the image on every frame (``move``: the optical flow's shift and scale,
or its recent velocity where the flow fails) and is corrected when the detector finds the face
again (``detected``). The detection is of a frame a few frames back, so the correction (the
detection against where the track was *on that frame*, from ``history``) is applied to where
the track is now. The track also keeps what the other rules judge it by: its template (the
face as the detector last saw it, appearance.py), its identities (face descriptors,
identity.py) and its classifier evidence with the schedule of when its face needs classifying
again (evidence.py).
"""

from __future__ import annotations

import copy
import math
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from streamer.classify.conditions import gate
from streamer.track.evidence import LabelEvidence, look_weight
from streamer.track.matching import XYXY
from streamer.track.rule import TrackerRule
from streamer.types import Box, Face, Label

if TYPE_CHECKING:
    from streamer.track.remembered import Departed

IDENTITIES = 4  # identities a track keeps (see Track.identities)


class Track:
    """A face followed from frame to frame; it shows once confirmed (lifecycle.py)."""

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
        # the least log width less ``log(flow_growth) * time`` the box had since the detector saw the
        # face, that width then included (``outgrown``)
        self.growth_floor = self._growth_mark(self.seen_at, t)
        # the face as the detector last saw it (appearance.template; None: the box is not judged)
        self.template: tuple[np.ndarray, ...] | None = None
        self.likeness: float | None = None  # the box's content to the template, at its last look
        self.unlike_run = 0  # looks in a row the likeness was under the rule's ``unlike``
        # the box may have left its face (the flow lost it or grew it faster than a face grows, or
        # a look or a miss found it unlike the face): not drawn until the detector finds it or a
        # look finds it ``sure_like`` its face
        self.unsure = False
        # who: its face's identities at its last few classifications (a face's drifts as it turns,
        # speaks, is lit otherwise; the nearest of them is compared)
        self.identities: deque[np.ndarray] = deque(
            [] if face.identity is None else [face.identity], IDENTITIES
        )
        self.doubted = False  # its face may be someone else's: classify it at the next detection
        self.resumed = False  # it had ended and its face was recognised: it goes on where it left off

    @property
    def xyxy(self) -> XYXY:
        return tuple(self.box)  # type: ignore[return-value]

    @property
    def shown(self) -> bool:
        """Confirmed, and its box still shows the face (see ``TrackerRule.unlike``, ``sure_like``)."""
        rule = self.rule
        gone = self.misses > 0 and self.likeness is not None and self.likeness < self.missed_unlike
        unlike = rule.unlike_looks and self.unlike_run >= rule.unlike_looks
        return self.confirmed and not gone and not unlike and not self.unsure

    @property
    def missed_unlike(self) -> float:
        """The likeness under which this track's box, once missed, is not drawn: ``faint_missed_unlike``
        where the detector last found the face faintly (under ``faint``), else ``missed_unlike``."""
        rule = self.rule
        faint = self.confidence < rule.faint
        return max(rule.missed_unlike, rule.faint_missed_unlike) if faint else rule.missed_unlike

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
        """The shown labels, less those whose condition (``when``) the track's labels do not meet."""
        labels = tuple(e.label() for e in self.evidence.values())
        if not self.rule.conditions:
            return labels
        return gate(labels, {n: (d, v) for n, d, v in self.rule.conditions})

    def face(self) -> Face:
        return Face(self.as_box(), self.labels(), track=self.id)

    # -- moving ---------------------------------------------------------------------------------
    def move(self, mv: tuple[float, float, float] | None, t: float | None = None) -> None:
        """One frame's flow: shift and scale (``None``: the flow lost the box; it goes on at its
        velocity, the mean of its recent shifts). A lost box is unsure, and so is one the flow
        grew faster than a face grows (``outgrown``; ``t``: this frame's time)."""
        rule = self.rule
        # (judged by the looks: a box without a template, or with the looks off, is not)
        judged = rule.sure_like > 0 and rule.unlike_looks > 0 and self.template is not None
        if mv is None:
            self.flow_failures += 1
            self.unsure |= judged
            self.box[[0, 2]] += self.velocity[0]
            self.box[[1, 3]] += self.velocity[1]
            return
        self.box[:] = moved(self.box, mv)
        self.velocity = 0.5 * self.velocity + 0.5 * np.array(mv[:2])
        if judged and t is not None:
            self.unsure |= self.outgrown(t)

    def outgrown(self, t: float) -> bool:
        """The box grew faster than a face does since the detector last saw the face: between
        some frame since (or the detector's own box) and now (``t``), by more than ``flow_slack *
        flow_growth ** seconds`` (``TrackerRule``). The flow's points spread over the face and
        something moving away from it; a face walking at the camera grows slower."""
        rule = self.rule
        if not rule.flow_growth:
            return False
        mark = self._growth_mark(self.box, t)
        out = mark - self.growth_floor > math.log(rule.flow_slack)
        self.growth_floor = min(self.growth_floor, mark)
        return bool(out)

    def _growth_mark(self, box: np.ndarray, t: float) -> float:
        g = self.rule.flow_growth
        return math.log(max(1.0, box[2] - box[0])) - (math.log(g) * t if g else 0.0)

    def scale(self, sx: float, sy: float) -> None:
        """The frames changed size by (sx, sy): the track, its history and what it was classified
        at, in the new size's pixels."""
        k = np.array([sx, sy, sx, sy])
        self.box *= k
        self.seen_at = self.seen_at * k
        self.growth_floor += math.log(sx)
        self.velocity *= k[:2]
        self.history = deque(((i, b * k) for i, b in self.history), maxlen=self.history.maxlen)
        self.classified_height *= sy

    def detected(
        self, then: np.ndarray, box: Box, now: int, t: float, weak: bool = False, seen_t: float | None = None
    ) -> None:
        """The detector found the face at ``box`` on a frame where the track was at ``then``: the
        box moves by that correction (shift of the centre, ratio of the widths) from where it is on
        frame ``now``, the last followed one. ``weak``: a weak detection (association.py): the
        face is still there (no miss) and the box goes where it is, but it is no hit (a track is
        confirmed and classified by faces) and the track keeps its score. ``seen_t``: the time of
        the frame the detector saw (``t``, now's, if not given)."""
        det = np.array([box.left, box.top, box.right, box.bottom], dtype=np.float64)
        sc = (det[2] - det[0] + 1) / max(1.0, then[2] - then[0] + 1)
        dc = (det[:2] + det[2:]) / 2 - (then[:2] + then[2:]) / 2
        c = (self.box[:2] + self.box[2:]) / 2 + dc
        half = (self.box[2:] - self.box[:2]) / 2 * sc
        self.box[:] = (*(c - half), *(c + half))
        if self.history and self.history[-1][0] == now:
            # where the track is on this frame now: a later detection of this frame (the one just
            # planned, say) is matched against it and corrects from it, not from the box before
            self.history[-1] = (now, self.box.copy())
        self.seen_at = det
        self.growth_floor = self._growth_mark(det, t if seen_t is None else seen_t)
        self.misses = 0
        self.unsure = False
        self.last_hit = t
        if weak:
            return
        self.confidence = float(box.confidence)
        self.hits += 1
        self.detections_since_classified += 1

    # -- classifying and identity ----------------------------------------------------------------
    def needs_classifying(self) -> bool:
        """Its face is classified at the next detection: never classified yet, ``reclassify_every``
        detections since, in doubt (appearance_checks.py), a label still "?" or contested (the newest
        look voted against it: looked at until the looks agree or it changes), or the box grown by
        ``reclassify_growth`` (a bigger face is a better look). A settled track is left out: the
        classifiers' work goes to faces whose labels can still change."""
        if self.classified_height <= 0 or self.detections_since_classified >= self.rule.reclassify_every:
            return True
        if self.doubted:
            return True
        shown = {lab.classifier for lab in self.labels()}  # a label off by its condition is not awaited
        if not self.evidence or any(
            e.shown == "?" or e.contested for k, e in self.evidence.items() if k in shown
        ):
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

    def resume(self, old: Departed) -> None:
        """Take ``old``'s id, labels, first sighting and identities (this face is that person)."""
        self.id, self.first_seen, self.resumed = old.id, old.first_seen, True
        self.evidence = copy.deepcopy(old.evidence)  # (remembered as it was, should this one not show)
        self.identities = deque([*old.identities, *self.identities], IDENTITIES)


def moved(box: np.ndarray, mv: tuple[float, float, float]) -> np.ndarray:
    """``box`` (x0, y0, x1, y1) shifted by (dx, dy) and scaled about its centre by the third value."""
    dx, dy, sc = mv
    cx, cy = (box[0] + box[2]) / 2 + dx, (box[1] + box[3]) / 2 + dy
    hw, hh = (box[2] - box[0]) / 2 * sc, (box[3] - box[1]) / 2 * sc
    return np.array([cx - hw, cy - hh, cx + hw, cy + hh])


def xyxy_box(b: XYXY) -> Box:
    """(x0, y0, x1, y1) floats as a whole-pixel Box (no detector score)."""
    return Box(round(b[0]), round(b[1]), round(b[2]), round(b[3]), 0.0)
