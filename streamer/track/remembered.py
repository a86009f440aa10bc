"""Tracks that ended, remembered for a while by who their face was, so a face that comes back
gets its track back.

A person leaves the view and returns, is hidden behind someone, or their track is lost (a box
pulled off its face): without memory they come back as a new track, a new id, their labels
settled again from nothing. A confirmed track that ends is remembered for ``remember_s`` by its
identities (face descriptors, identity.py; in memory only, never written anywhere), its labels
and its first sighting. A new face whose descriptor is clearly one remembered person's
(``identity.recognised``) takes that track's id, labels and first sighting back (lifecycle.py,
``Lifecycle.take_back``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from streamer.track.evidence import LabelEvidence
from streamer.track.identity import apart, recognised
from streamer.track.rule import TrackerRule

if TYPE_CHECKING:
    from streamer.track.track import Track

REMEMBERED = 64  # ended tracks a stream remembers at most (the oldest are forgotten first)


@dataclass(frozen=True)
class Departed:
    """A confirmed track that ended, remembered for a while by who its face was."""

    id: int
    ended: float
    first_seen: float
    identities: tuple[np.ndarray, ...]
    evidence: dict[str, LabelEvidence]


class RememberedTracks:
    """The ended tracks of one stream, oldest first (at most ``REMEMBERED``, none older than the
    rule's ``remember_s``)."""

    def __init__(self, rule: TrackerRule) -> None:
        self.rule = rule
        self._departed: deque[Departed] = deque(maxlen=REMEMBERED)

    def __iter__(self) -> Iterator[Departed]:
        return iter(self._departed)

    def remember(self, tr: Track, t: float) -> None:
        """``tr`` (confirmed) ended at ``t``: kept if its face has an identity and memory is on."""
        if tr.identities and self.rule.remember_s > 0:
            self._departed.append(Departed(tr.id, t, tr.first_seen, tuple(tr.identities), tr.evidence))

    def recognise(self, identity: np.ndarray, t: float, live: set[int]) -> Departed | None:
        """The remembered track whose face ``identity`` clearly is, if any, of those whose id no live
        track holds (``live``). A remembered track is forgotten once the track that resumes it shows
        (``forget_person``); one not yet shown, say a low score awaiting a second detection, holds
        its id meanwhile."""
        while self._departed and t - self._departed[0].ended > self.rule.remember_s:
            self._departed.popleft()
        if not self._departed:
            return None
        free = [d for d in self._departed if d.id not in live]
        k = recognised(identity, [d.identities for d in free], self.rule.same_person)
        if k is None:
            return None
        # one person can have left several tracks (a brief one, not recognised when it came): the
        # one first seen is theirs, so the person keeps the id they were first known by
        same = [d for d in free if apart(d.identities, free[k].identities) <= self.rule.same_person]
        return min(same, key=lambda d: d.first_seen)

    def forget_person(self, tr: Track) -> None:
        """``tr`` resumed a remembered track and shows: that track, and any other of the same person,
        is this one now."""
        self._departed = deque(
            (
                d
                for d in self._departed
                if d.id != tr.id and apart(d.identities, tr.identities) > self.rule.same_person
            ),
            REMEMBERED,
        )
