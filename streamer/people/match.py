"""Who a face descriptor is: the nearest enrolled person, by the library's rule.

A person's distance is the nearest of their enrolled descriptors (Euclidean, dlib's 128-D). A
face is *known* as the nearest person when that distance is at most ``known`` and every other
person lies ``margin`` further (open-set identification: a stranger tends to fall between two
people); *unknown* when the nearest person lies beyond ``unknown``; *uncertain* in between. A
person with negatives ("not this person") is vetoed for a face whose nearest negative of theirs is
nearer than their nearest positive: the face is matched against the others as if they were not
enrolled.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

UNKNOWN = "unknown"
KNOWN, UNKNOWN_OUTCOME, UNCERTAIN_OUTCOME = "known", "unknown", "uncertain"


@dataclass(frozen=True)
class MatchRule:
    known: float = 0.5  # nearest person at most this far: that person
    unknown: float = 0.6  # nearest person further than this: unknown
    margin: float = 0.0  # the second nearest person at least this much further (else uncertain)


@dataclass(frozen=True)
class Match:
    outcome: str  # "known", "unknown", "uncertain"
    name: str | None  # the nearest person (known: who it is)
    distance: float  # to the nearest person (inf: empty library)
    second: float  # to the second nearest person

    @property
    def p(self) -> float:
        """How sure, as a probability for the label evidence (track/evidence.py)."""
        return 0.9 if self.outcome != UNCERTAIN_OUTCOME else 0.0


class Gallery:
    """An immutable snapshot of the library's descriptors (swapped whole when the library changes)."""

    def __init__(
        self,
        faces: Iterable[tuple[str, np.ndarray]] = (),
        negatives: Iterable[tuple[str, np.ndarray]] = (),
    ) -> None:
        pos = list(faces)
        neg = list(negatives)
        self.names: list[str] = sorted({n for n, _ in pos})
        index = {n: i for i, n in enumerate(self.names)}
        self._d = np.array([np.asarray(d, np.float32) for _, d in pos], np.float32).reshape(-1, 128)
        self._who = np.array([index[n] for n, _ in pos], np.int64)
        neg = [(n, d) for n, d in neg if n in index]
        self._nd = np.array([np.asarray(d, np.float32) for _, d in neg], np.float32).reshape(-1, 128)
        self._nwho = np.array([index[n] for n, _ in neg], np.int64)

    def __len__(self) -> int:
        return len(self.names)

    def distances(self, q: np.ndarray) -> np.ndarray:
        """(n_queries, n_people): each person's nearest enrolled descriptor, vetoed people at inf."""
        q = np.asarray(q, np.float32).reshape(-1, 128)
        out = np.full((len(q), len(self.names)), np.inf, np.float32)
        if not len(self.names):
            return out
        d = np.sqrt(np.maximum(0, (q * q).sum(1)[:, None] - 2 * q @ self._d.T + (self._d**2).sum(1)[None]))
        np.minimum.at(out.T, self._who, d.T)  # (per person: the nearest of theirs)
        if len(self._nd):
            dn = np.sqrt(
                np.maximum(0, (q * q).sum(1)[:, None] - 2 * q @ self._nd.T + (self._nd**2).sum(1)[None])
            )
            neg = np.full_like(out, np.inf)
            np.minimum.at(neg.T, self._nwho, dn.T)
            out[neg < out] = np.inf
        return out

    def match(self, q: np.ndarray, rule: MatchRule) -> list[Match]:
        """One Match per query descriptor."""
        d = self.distances(q)
        out = []
        for row in d:
            if not len(row) or not np.isfinite(row).any():
                out.append(Match(UNKNOWN_OUTCOME, None, float("inf"), float("inf")))
                continue
            order = np.argsort(row)
            k = int(order[0])
            first = float(row[k])
            second = float(row[order[1]]) if len(row) > 1 else float("inf")
            if first <= rule.known and second - first >= rule.margin:
                outcome = KNOWN
            elif first > rule.unknown:
                outcome = UNKNOWN_OUTCOME
            else:
                outcome = UNCERTAIN_OUTCOME
            out.append(Match(outcome, self.names[k], first, second))
        return out
