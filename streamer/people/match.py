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
*uncertain* in between. ``known`` holds for a library of up to ``people`` people and tightens by
``per_doubling`` for every doubling beyond (``MatchRule.known_for``): each enrolled person is one
more chance for a stranger to lie near someone. A person with negatives ("not this person") is
vetoed for a face whose nearest negative of theirs is nearer than their nearest positive: the face
is matched against the others as if they were not enrolled.

With a learned back-end (``Backend``: PLDA's two-covariance model fitted on LFW people, see
``models/people_plda.md``), a person's distance has added to it ``scale`` times minus the
log-likelihood ratio of "the face is this person" to "two people", the person's enrolled faces
taken together: the directions in which one person's photos vary count less than those in which
people differ. The descriptors themselves stay dlib's (tracking and the clusters use them raw).
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
    known: float = 0.5  # nearest person at most this far: that person (a library of ``people`` or fewer)
    unknown: float = 0.6  # nearest person further than this: unknown
    margin: float = 0.0  # the second nearest person at least this much further (else uncertain)
    per_doubling: float = 0.0  # ``known`` this much lower for every doubling of the library beyond...
    people: int = 20  # ...this many people

    def known_for(self, n: int) -> float:
        """The known threshold for a library of ``n`` people: ``known`` up to ``people``, then
        ``per_doubling`` lower for every doubling (open-set identification: every enrolled person is
        one more chance for a stranger to lie near someone, so a larger library needs a nearer
        match for the same share of strangers named)."""
        return self.known - self.per_doubling * max(0.0, float(np.log2(max(n, 1) / max(self.people, 1))))


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


class Backend:
    """PLDA's two-covariance model in the space where the within-person covariance is I and the
    between-person one is ``diag(b)``: ``mu`` (128,), ``t`` (k, 128), ``b`` (k,), ``scale``."""

    def __init__(self, mu: np.ndarray, t: np.ndarray, b: np.ndarray, scale: float) -> None:
        self.mu = np.asarray(mu, np.float64).reshape(128)
        self.t = np.asarray(t, np.float64).reshape(-1, 128)
        self.b = np.asarray(b, np.float64).reshape(len(self.t))
        self.scale = float(scale)
        if not (np.isfinite(self.t).all() and np.isfinite(self.mu).all() and (self.b > 0).all()):
            raise ValueError("a back-end needs finite mu and t and positive b")
        if not (np.isfinite(self.scale) and self.scale > 0):
            raise ValueError("a back-end needs a positive scale")

    def project(self, x: np.ndarray) -> np.ndarray:
        return (np.asarray(x, np.float64).reshape(-1, 128) - self.mu) @ self.t.T

    def distances(self, e: np.ndarray, n: np.ndarray, q: np.ndarray) -> np.ndarray:
        """(queries, people): ``scale`` times minus the log-likelihood ratio of projected queries
        ``q`` against people whose ``n`` projected enrolled faces have the mean ``e``."""
        b = self.b[None]
        ve, vq = b + 1.0 / np.asarray(n, np.float64)[:, None], b + 1.0
        det = ve * vq - b * b
        s = ((vq / det - 1 / ve) * e**2).sum(1)[None] + (q**2) @ (ve / det - 1 / vq).T
        s = s - 2 * q @ (b / det * e).T + (np.log(det) - np.log(ve) - np.log(vq)).sum(1)[None]
        return (0.5 * self.scale * s).astype(np.float32)


def load_backend(path: str) -> Backend | None:
    """The back-end file (``mu``, ``t``, ``b``, ``scale``; relative paths from the repository root),
    or None for an empty path. A missing or bad file is an error: the rule's thresholds are set
    for distances with the back-end, and without it they would name other faces."""
    if not path:
        return None
    p = Path(path) if Path(path).is_absolute() or Path(path).exists() else REPO / path
    try:
        with np.load(p) as z:
            return Backend(z["mu"], z["t"], z["b"], float(z["scale"]))
    except Exception as e:
        raise ValueError(
            f'people.backend: cannot load {p} ({e}); set people.backend = "" to match without one'
        ) from e


class Gallery:
    """An immutable snapshot of the library's descriptors (swapped whole when the library changes)."""

    def __init__(
        self,
        faces: Iterable[tuple[str, np.ndarray]] = (),
        negatives: Iterable[tuple[str, np.ndarray]] = (),
        cohort: Cohort | None = None,
        backend: Backend | None = None,
    ) -> None:
        pos = list(faces)
        neg = list(negatives)
        self._given = (pos, neg)
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
        self.backend = backend
        if backend is not None and len(self.names):
            n = np.bincount(self._who, minlength=len(self.names))
            self._n = n.astype(np.float64)
            self._mean = np.zeros((len(self.names), len(backend.t)))
            np.add.at(self._mean, self._who, backend.project(self._d))
            self._mean /= n[:, None]

    def __len__(self) -> int:
        return len(self.names)

    def with_faces(self, faces: Iterable[tuple[str, np.ndarray]]) -> Gallery:
        """This gallery with more faces of its people (the same cohort, back-end and negatives)."""
        pos, neg = self._given
        more = [(n, d) for n, d in faces if n in self.names]
        return Gallery([*pos, *more], neg, self.cohort, self.backend)

    def distances(self, q: np.ndarray) -> np.ndarray:
        """(n_queries, n_people): each person's nearest enrolled descriptor (cohort-adjusted when
        the gallery has a cohort), plus the back-end's distance when it has one; vetoed people
        (nearest negative nearer than nearest positive, by the cohort-adjusted distance) at inf."""
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
            vetoed = neg < out
        if self.backend is not None:
            out += self.backend.distances(self._mean, self._n, self.backend.project(q))
        if len(self._nd):
            out[vetoed] = np.inf
        return out

    def match(self, q: np.ndarray, rule: MatchRule) -> list[Match]:
        """One Match per query descriptor."""
        d = self.distances(q)
        known = rule.known_for(len(self.names))
        out = []
        for row in d:
            if not len(row) or not np.isfinite(row).any():
                out.append(Match(UNKNOWN_OUTCOME, None, float("inf"), float("inf")))
                continue
            order = np.argsort(row)
            k = int(order[0])
            first = float(row[k])
            second = float(row[order[1]]) if len(row) > 1 else float("inf")
            if first <= known and second - first >= rule.margin:
                outcome = KNOWN
            elif first > rule.unknown:
                outcome = UNKNOWN_OUTCOME
            else:
                outcome = UNCERTAIN_OUTCOME
            out.append(Match(outcome, self.names[k], first, second))
        return out
