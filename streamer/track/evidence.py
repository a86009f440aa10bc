"""Classifier verdicts accumulated per track: one settled label per person, "?" until enough evidence.

Each look (one classification of the track's face) adds its winning label's log-odds,
weighted by how much the look is worth (face size, detector confidence). A label's score is
its weighted evidence minus the other labels', over the weight of all recent looks; the
track shows the label whose score clears ``min_score`` after ``min_looks`` looks. Once
shown, a label is replaced only by one that clears ``min_score + switch_margin``: the
label does not flicker when single looks disagree.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from streamer.classify import UNCERTAIN
from streamer.types import Label


@dataclass(frozen=True)
class EvidenceRule:
    looks: int = 8  # the last K looks count
    min_looks: int = 2
    # mean log-odds; 0.6 is p = 0.65 on every look. Not the classifiers' threshold (p = 0.6, 0.4):
    # on the real clips (benchmarks/real, labels.csv) a man looking down got the beard "unshaved"
    # from looks at p 0.62-0.71, all wrong; every right label there settled on looks of p 0.69 up
    min_score: float = 0.6
    switch_margin: float = 0.4


def look_weight(face_height: int, confidence: float) -> float:
    """Small or doubtful faces count less: full weight from 80 px and detector confidence 0.5 up."""
    return min(1.0, face_height / 80.0) * min(1.0, max(0.1, 0.5 + confidence))


def _logit(p: float) -> float:
    p = min(max(p, 1e-4), 1 - 1e-4)
    return math.log(p / (1 - p))


class LabelEvidence:
    """The looks of one track at one classifier."""

    def __init__(self, classifier: str, rule: EvidenceRule) -> None:
        self.classifier = classifier
        self.rule = rule
        self._looks: deque[tuple[str, float, float]] = deque(maxlen=rule.looks)  # label, log-odds, weight
        self.shown = UNCERTAIN
        self.n = 0

    def add(self, label: Label, weight: float) -> bool:
        """One look; returns True when the shown label changed."""
        self.n += 1
        if label.label == UNCERTAIN:  # below the classifier's threshold: weight without a vote
            self._looks.append((UNCERTAIN, 0.0, weight))
        else:
            self._looks.append((label.label, max(0.0, _logit(label.probability)), weight))
        before = self.shown
        best, score = self.best()
        # a first label needs min_score; replacing a shown one needs the margin on top
        needed = self.rule.min_score + (0.0 if self.shown == UNCERTAIN else self.rule.switch_margin)
        if len(self._looks) >= self.rule.min_looks and best != self.shown and score >= needed:
            self.shown = best
        return self.shown != before

    @property
    def contested(self) -> bool:
        """A shown label that the newest look voted against (a look under the classifier's
        threshold votes for nothing): the track is looked at again until the looks agree or the
        label changes, not only every ``reclassify_every`` detections."""
        if self.shown == UNCERTAIN or not self._looks:
            return False
        newest = self._looks[-1][0]
        return newest not in (UNCERTAIN, self.shown)

    def score(self, name: str) -> float:
        total = sum(w for _, _, w in self._looks)
        if total <= 0:
            return 0.0
        ev = sum(w * lo if lab == name else -w * lo for lab, lo, w in self._looks if lab != UNCERTAIN)
        return ev / total

    def best(self) -> tuple[str, float]:
        names = {lab for lab, _, _ in self._looks if lab != UNCERTAIN}
        if not names:
            return UNCERTAIN, 0.0
        return max(((n, self.score(n)) for n in names), key=lambda x: x[1])

    def label(self) -> Label:
        if self.shown == UNCERTAIN:
            return Label(self.classifier, UNCERTAIN, 0.0)
        return Label(self.classifier, self.shown, 1.0 / (1.0 + math.exp(-self.score(self.shown))))
