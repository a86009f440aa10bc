"""Recognition per track, in the face stage (pipeline/tracking.py), and privacy blurring.

Each detected face that carries a descriptor (``Face.identity``: classified on the face backbone)
and is at least ``people.min_face_px`` tall is matched against the library (match.py) and gets a
``person`` label: the name (known), ``unknown``, or ``?`` (uncertain: weight without a vote). The
label joins the face's other labels before the tracker sees them, so it accumulates over the
track's looks exactly as the classifiers' do (track/evidence.py): the name shows once settled, it
is in captions, ``/streams``, the track events (SSE, MQTT, webhook) and the stored record, and a
track keeps being classified until it settles. A person vetoed by a negative ("not this person")
near the look is not matched for that look.

An empty library labels nothing. When a track that showed ``unknown`` (or, the library empty,
nothing) ends, the mean of its descriptors goes to the unknown clusters (clusters.py), with how
many there were, the median height of the faces they came from, and when the detector found it
(its newest ``HITS`` detections' frame times: two tracks found on one frame are two people); only
looks at least ``people.cluster_min_frontal`` frontal count (a profile's descriptor lies near other
people's).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import replace

import cv2
import numpy as np

from streamer.classify import UNCERTAIN
from streamer.history.pose import frontalness
from streamer.people.learned import Learned
from streamer.people.match import KNOWN, UNKNOWN, UNKNOWN_OUTCOME, Gallery, MatchRule
from streamer.types import Face, Label

PERSON = "person"  # the label's classifier name
KEPT = 16  # descriptors kept per track for the clusters
HITS = 1024  # detection times kept per track for the clusters (at 10 detections a second: 100 s)


def person_of(labels: Sequence[Label]) -> str | None:
    """The settled name among ``labels`` (None: unknown, uncertain or not recognised)."""
    for lab in labels:
        if lab.classifier == PERSON and lab.label not in (UNKNOWN, UNCERTAIN):
            return lab.label
    return None


def blur_boxes(image: np.ndarray, boxes: Sequence[tuple[float, float, float, float]]) -> np.ndarray:
    """A copy of ``image`` with each box (grown by a quarter) pixelated to 6x6 blocks and smoothed:
    no face is left to see or to detect. ``image`` itself is not changed."""
    if not boxes:
        return image
    out = image.copy()
    h, w = out.shape[:2]
    for x0, y0, x1, y1 in boxes:
        m = 0.25 * max(x1 - x0, y1 - y0)
        a, b = max(0, int(x0 - m)), max(0, int(y0 - m))
        c, d = min(w, int(x1 + m) + 1), min(h, int(y1 + m) + 1)
        if c - a < 2 or d - b < 2:
            continue
        part = out[b:d, a:c]
        small = cv2.resize(part, (6, 6), interpolation=cv2.INTER_AREA)
        big = cv2.resize(small, (c - a, d - b), interpolation=cv2.INTER_LINEAR)
        k = max(3, (min(c - a, d - b) // 4) | 1)
        out[b:d, a:c] = cv2.GaussianBlur(big, (k, k), 0)
    return out


def blur_whole(image: np.ndarray, block: int = 24) -> np.ndarray:
    """``image`` pixelated to blocks of ``block`` pixels and smoothed (a new array)."""
    h, w = image.shape[:2]
    small = cv2.resize(image, (max(1, w // block), max(1, h // block)), interpolation=cv2.INTER_AREA)
    big = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    return cv2.GaussianBlur(big, (0, 0), block / 2)


class StageRecognizer:
    """One stream's recognition (``FaceStage.people``); runs in the stage's render thread."""

    def __init__(
        self,
        gallery: Callable[[], Gallery],
        rule: MatchRule,
        min_face_px: int = 40,
        privacy: str = "off",
        count: Callable[[str], None] | None = None,
        on_unknown: Callable[[int, np.ndarray, int, float, frozenset[float]], None] | None = None,
        recognise: bool = True,
        min_frontal: float = 0.0,
        learned: Learned | None = None,
    ) -> None:
        self.gallery = gallery  # the library as it is now (swapped whole on a change)
        self.rule = rule
        self.min_face_px = min_face_px
        self.privacy = privacy
        self.recognise = recognise
        self.min_frontal = min_frontal  # (looks less frontal do not count for the clusters)
        self.count = count or (lambda outcome: None)
        # (track, mean descriptor, looks, median face height, detection times) of an unknown track
        # that ended
        self.on_unknown = on_unknown
        self.learned = learned  # (faces of named people learned from this stream's tracks: learned.py)
        self._measure_pose = min_frontal > 0 or (learned is not None and learned.min_frontal > 0)
        # track -> (id of its last identity, the looks kept: descriptor, face height, frontalness;
        # the times the detector found it)
        self._seen: dict[int, tuple[int, list[tuple[np.ndarray, float, float]], list[float]]] = {}
        self._lock = threading.Lock()

    def label(self, faces: Sequence[Face]) -> tuple[Face, ...]:
        """``faces`` with a ``person`` label on each described face big enough."""
        if not self.recognise:
            return tuple(faces)
        g = self._matching()
        if not len(g):  # (an empty library names nobody: no "unknown" on every face)
            return tuple(faces)
        idx = [i for i, f in enumerate(faces) if f.identity is not None and f.labels]
        small = [i for i in idx if faces[i].box.height < self.min_face_px]
        idx = [i for i in idx if faces[i].box.height >= self.min_face_px]
        for _ in small:
            self.count("too_small")
        if not idx:
            return tuple(faces)
        out = list(faces)
        matches = g.match(np.stack([faces[i].identity for i in idx]), self.rule)
        for i, m in zip(idx, matches, strict=True):
            if m.outcome == KNOWN:
                lab = Label(PERSON, m.name or UNKNOWN, m.p)
            elif m.outcome == UNKNOWN_OUTCOME:
                lab = Label(PERSON, UNKNOWN, m.p)
            else:
                lab = Label(PERSON, UNCERTAIN, 0.0)
            self.count(m.outcome)
            out[i] = replace(faces[i], labels=(*faces[i].labels, lab))
        return tuple(out)

    def _matching(self) -> Gallery:
        """The library, with the faces this stream learned of its people."""
        g = self.gallery()
        return self.learned.gallery(g) if self.learned is not None else g

    def blur(self, image: np.ndarray, tracks, looked: bool = True) -> np.ndarray:
        """``image`` with the faces privacy hides blurred (every live track's box, shown or not,
        except those of known people under ``blur_unknown``). ``looked`` False: no detections of
        this scene have come yet (the stream's start, a scene cut), so no face is known to be
        anywhere: the whole frame is blurred."""
        if self.privacy == "off":
            return image
        if not looked:
            return blur_whole(image)
        boxes = [
            tuple(tr.box) for tr in tracks if self.privacy == "blur_all" or person_of(tr.labels()) is None
        ]
        return blur_boxes(image, boxes)

    def observe(self, tracks, events, image: np.ndarray | None = None) -> None:
        """After the detections were applied: keep each track's new descriptors, with the face's
        height and how frontal it is in ``image`` (pose.py; measured only when ``min_frontal`` is set);
        hand an unknown track that ended to the clusters: the mean of its looks at least
        ``min_frontal`` frontal (of all, when none is), how
        many those were, their median face height, and the times the detector found it."""
        if self.on_unknown is None and self.learned is None:
            return
        with self._lock:
            live = {}
            for tr in tracks:
                last, kept, hits = self._seen.get(tr.id, (0, [], []))
                if not hits or hits[-1] != tr.last_hit:
                    hits.append(tr.last_hit)
                    del hits[:-HITS]
                if tr.identities and id(tr.identities[-1]) != last:
                    box = tuple(int(v) for v in tr.box)
                    front = frontalness(image, box) if image is not None and self._measure_pose else 1.0
                    kept = [*kept, (tr.identities[-1], float(box[3] - box[1]), front)][-KEPT:]
                    last = id(tr.identities[-1])
                live[tr.id] = (last, kept, hits)
            for e in events:
                if e.kind != "end" or e.merged_into is not None:
                    continue
                _, kept, hits = self._seen.get(e.track) or live.get(e.track) or (0, [], [])
                shown = next((lab.label for lab in e.labels if lab.classifier == PERSON), None)
                if self.learned is not None and shown not in (None, UNKNOWN, UNCERTAIN) and kept:
                    self.learned.learn(shown, kept, self._matching(), self.rule)
                if self.on_unknown is None:
                    continue
                if shown in (None, UNKNOWN) and kept:  # (None: the library was empty)
                    good = [k for k in kept if k[2] >= self.min_frontal]
                    use = good or kept
                    d = np.mean([k[0] for k in use], axis=0).astype(np.float32)
                    px = float(np.median([k[1] for k in use]))
                    self.on_unknown(e.track, d, len(good), px, frozenset(hits))
            self._seen = live
