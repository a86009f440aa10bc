"""Who a face descriptor is: the nearest enrolled person, by the library's rule.

A person's distance is the nearest of their enrolled descriptors (Euclidean, dlib's 128-D),
adjusted by a cohort of background faces when the gallery has one (``Cohort``): each of the two
faces is compared with its ``k`` nearest background faces, and the distance between them is
taken relative to how near those lie (half of each face's offset from the cohort's typical one
is subtracted). A face in a crowded part of the descriptor space (near many strangers) so needs
to lie nearer to be named; a face whose strangers all lie far (an unusual face, a hard photo)
may lie further. A face is *known* as the nearest person when that distance is at most
``known`` and every other person lies ``margin`` further (open-set identification: a stranger
tends to fall between two people); *unknown* when the nearest person lies beyond ``unknown``;
*uncertain* in between. A person with negatives ("not this person") is vetoed for a face whose
nearest negative of theirs is nearer than their nearest positive: the face is matched against
the others as if they were not enrolled.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)
REPO = Path(__file__).resolve().parents[2]

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


class Cohort:
    """Descriptors of background faces, people never enrolled: how near a face's ``k`` nearest of
    them lie, against the typical face of the cohort (the median over the cohort itself)."""

    def __init__(self, descriptors: np.ndarray, k: int = 10) -> None:
        self.d = np.asarray(descriptors, np.float32).reshape(-1, 128)
        self.k = max(1, min(int(k), len(self.d) - 1))
        if len(self.d) < 2:
            raise ValueError("a cohort needs at least 2 faces")
        self._sq = (self.d**2).sum(1)
        self.ref = float(np.median(self._nearest(self.d, skip_first=True)))

    def _nearest(self, q: np.ndarray, skip_first: bool = False) -> np.ndarray:
        out = np.empty(len(q), np.float32)
        for i in range(0, len(q), 512):  # (bounded memory for a large library)
            c = q[i : i + 512]
            d2 = np.maximum(0, (c * c).sum(1)[:, None] - 2 * c @ self.d.T + self._sq[None])
            k = self.k + int(skip_first)
            near = np.sqrt(np.partition(d2, k - 1, axis=1)[:, :k])
            near = np.sort(near, axis=1)[:, int(skip_first) :] if skip_first else near
            out[i : i + 512] = near.mean(1)
        return out

    def offset(self, q: np.ndarray) -> np.ndarray:
        """(n,) how much further than for the cohort's typical face the ``k`` nearest lie
        (negative: nearer, a crowded place); half of a face's offset is subtracted from every
        distance of it."""
        q = np.asarray(q, np.float32).reshape(-1, 128)
        if not len(q):
            return np.zeros(0, np.float32)
        return (self._nearest(q) - self.ref).astype(np.float32)


def load_cohort(path: str, k: int) -> Cohort | None:
    """The cohort file (``d``: (n, 128) descriptors; relative paths from the repository root), or
    None for an empty path; a missing or bad file is logged and matching goes on without one."""
    if not path:
        return None
    p = Path(path) if Path(path).is_absolute() or Path(path).exists() else REPO / path
    try:
        with np.load(p) as z:
            return Cohort(z["d"], k)
    except Exception as e:
        log.error("face library: no cohort (%s: %s); distances are not adjusted", p, e)
        return None


class Gallery:
    """An immutable snapshot of the library's descriptors (swapped whole when the library changes)."""

    def __init__(
        self,
        faces: Iterable[tuple[str, np.ndarray]] = (),
        negatives: Iterable[tuple[str, np.ndarray]] = (),
        cohort: Cohort | None = None,
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
        self.cohort = cohort
        self._off = cohort.offset(self._d) if cohort else np.zeros(len(self._d), np.float32)
        self._noff = cohort.offset(self._nd) if cohort else np.zeros(len(self._nd), np.float32)

    def __len__(self) -> int:
        return len(self.names)

    def distances(self, q: np.ndarray) -> np.ndarray:
        """(n_queries, n_people): each person's nearest enrolled descriptor (cohort-adjusted when
        the gallery has a cohort), vetoed people at inf."""
        q = np.asarray(q, np.float32).reshape(-1, 128)
        out = np.full((len(q), len(self.names)), np.inf, np.float32)
        if not len(self.names):
            return out
        qoff = self.cohort.offset(q) if self.cohort else np.zeros(len(q), np.float32)
        d = np.sqrt(np.maximum(0, (q * q).sum(1)[:, None] - 2 * q @ self._d.T + (self._d**2).sum(1)[None]))
        d = d - 0.5 * (qoff[:, None] + self._off[None])
        np.minimum.at(out.T, self._who, d.T)  # (per person: the nearest of theirs)
        if len(self._nd):
            dn = np.sqrt(
                np.maximum(0, (q * q).sum(1)[:, None] - 2 * q @ self._nd.T + (self._nd**2).sum(1)[None])
            )
            dn = dn - 0.5 * (qoff[:, None] + self._noff[None])
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
