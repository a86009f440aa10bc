"""More changes to the unknown clusters' rule, measured by ``people-clusters`` (issue #33).

The service groups each ended unknown track by the mean of its frontal looks' descriptors
(``streamer.people.recognize``) and joins it to the cluster whose newest tracks lie within
``people.cluster_distance`` on average, half of them within it, none seen with it
(``streamer.people.clusters.assign``). Measured here on the same tracks (values read, not chosen
from):

- ``looks f*h L``: a track's descriptor is the mean of its frontal looks weighted by how frontal
  and how tall each face is, not a plain mean (a turned or small face counts for less);
- ``set k3 L`` / ``set avg L``: two tracks compared by their looks' pairwise distances (the mean of
  the 3 smallest, or of all) instead of one mean each;
- ``single L`` / ``complete L``: all the tracks grouped at once (agglomerative, nearest pair of
  clusters first, cannot-link kept) with single or complete linkage instead of the service's
  average over a cluster's tracks as they come;
- ``cohort-merge 0.4+M``: the rule at 0.40, then any two clusters merged whose tracks lie within
  ``M`` on average on cohort-adjusted distances (``streamer.people.match.Cohort``: half of each
  track's offset taken off), half of the pairs within it, none seen together;
- ``size 0.4/L>=P``: the rule at 0.40, but at ``L`` between two tracks whose faces (median height)
  are both at least ``P`` px (a small face's descriptor lies nearer to everyone's).

The per-look rows need the looks (``LooksRecorder``: ``people-clip --clusters-only --tracks``
saves them); on LFW a track is one photo, so they equal the rule there and are not repeated.
"""

from __future__ import annotations

import numpy as np

from streamer.people.clusters import APART, KEPT
from streamer.people.match import UNKNOWN
from streamer.people.recognize import PERSON, StageRecognizer

LINKS = {"single": np.min, "complete": np.max}
MERGES = (0.42, 0.45)
SIZES = ((64, 0.42), (100, 0.45))  # (face px, limit between two tracks both at least that tall)


class LooksRecorder(StageRecognizer):
    """The service's recognizer that also keeps, for every unknown track it hands to the clusters
    (in the same order), the looks the mean came from: (descriptors, face heights, frontalness)."""

    def __init__(self, *a, **k) -> None:
        super().__init__(*a, **k)
        self.looks: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def observe(self, tracks, events, image=None) -> None:
        before = dict(self._seen)
        super().observe(tracks, events, image)
        for e in events:  # (as ``observe`` picks the looks of a track that ended)
            if e.kind != "end" or e.merged_into is not None:
                continue
            _, kept, _ = before.get(e.track) or self._seen.get(e.track) or (0, [], [])
            shown = next((lab.label for lab in e.labels if lab.classifier == PERSON), None)
            if shown in (None, UNKNOWN) and kept:
                self.looks.append(tuple(np.array([k[i] for k in kept], np.float64) for i in range(3)))


def weighted(d: np.ndarray, h: np.ndarray, front: np.ndarray, min_frontal: float) -> np.ndarray:
    """The mean of the looks at least ``min_frontal`` frontal (all, when none is), each weighted by
    its frontalness times its face height."""
    use = front >= min_frontal
    use = use if use.any() else np.ones(len(d), bool)
    w = front[use] * h[use] + 1e-9
    return (w[:, None] * d[use]).sum(0) / w.sum()


def set_distance(a: np.ndarray, b: np.ndarray, how: str) -> float:
    """Two tracks' looks ``a``, ``b`` compared: the mean of the 3 smallest pairwise distances
    (``k3``) or of all of them (``avg``); for one look each, their distance."""
    p = np.sort(np.linalg.norm(a[:, None] - b[None], axis=2).ravel())
    return float(p[:3].mean() if how == "k3" else p.mean())


def apart_of(at: list[np.ndarray]):
    def apart(a: list[int], b: list[int]) -> bool:
        return any(len(np.intersect1d(at[i], at[j], assume_unique=True)) >= APART for i in a for j in b)

    return apart


def online(dist: np.ndarray, at: list[np.ndarray], limit: np.ndarray | float, merge: float = 0.0, mdist=None):
    """The service's rule on a distance matrix (``limit``: one value or one a pair of tracks, the
    average compared with the pairs' average limit), then, when ``merge``, any two clusters whose
    tracks lie within it on ``mdist`` (average, half the pairs, none seen together) merged, nearest
    first, after every track. Each track's cluster."""
    lim = np.broadcast_to(np.asarray(limit, np.float64), dist.shape)
    mdist = dist if mdist is None else mdist
    apart = apart_of(at)

    def near(m: np.ndarray, lm: np.ndarray, a: list[int], b: list[int]) -> float:
        a, b = a[-KEPT:], b[-KEPT:]
        d, cap = m[np.ix_(a, b)], lm[np.ix_(a, b)]
        ok = d.mean() <= cap.mean() and 2 * int((d <= cap).sum()) >= d.size and not apart(a, b)
        return float(d.mean() - cap.mean()) if ok else np.inf

    groups: list[list[int]] = []
    mlim = np.full(dist.shape, merge)
    for k in range(len(dist)):
        score = [near(dist, lim, g, [k]) for g in groups]
        j = int(np.argmin(score)) if groups else -1
        if j < 0 or not np.isfinite(score[j]):
            groups.append([])
            j = len(groups) - 1
        groups[j].append(k)
        while merge > 0 and len(groups) > 1:
            best = min(
                (near(mdist, mlim, a, b), i, j)
                for i, a in enumerate(groups)
                for j, b in enumerate(groups)
                if i < j
            )
            if not np.isfinite(best[0]):
                break
            _, i, j = best
            groups[i] = sorted(groups[i] + groups.pop(j))
    return labels_of(groups, len(dist))


def agglomerative(dist: np.ndarray, at: list[np.ndarray], limit: float, link: str) -> list[int]:
    """All tracks at once: the two clusters nearest by ``link`` merged while within ``limit`` and
    none of their tracks seen together. Each track's cluster."""
    apart, f = apart_of(at), LINKS[link]
    groups = [[i] for i in range(len(dist))]
    while len(groups) > 1:
        pairs = [
            (float(f(dist[np.ix_(a, b)])), i, j)
            for i, a in enumerate(groups)
            for j, b in enumerate(groups)
            if i < j and not apart(a, b)
        ]
        if not pairs or min(pairs)[0] > limit:
            break
        _, i, j = min(pairs)
        groups[i] += groups.pop(j)
    return labels_of(groups, len(dist))


def labels_of(groups: list[list[int]], n: int) -> list[int]:
    out = [0] * n
    for c, g in enumerate(groups):
        for k in g:
            out[k] = c
    return out


def measured(x, at, off, limit: float, looks=None, px=None, min_frontal: float = 0.5) -> dict[str, list[int]]:
    """Each variant's clusters for tracks ``x`` (means), detection times ``at``, cohort offsets
    ``off``; ``looks`` (each track's descriptors, heights, frontalness) and ``px`` (median face
    heights) where known."""
    x = np.asarray(x, np.float64)
    dist = np.linalg.norm(x[:, None] - x[None], axis=2)
    adjusted = dist - 0.5 * (off[:, None] + off[None])
    out = {f"{k} {lim:g}": agglomerative(dist, at, lim, k) for k in LINKS for lim in (limit, 0.45)}
    out.update({f"cohort-merge {limit:g}+{m:g}": online(dist, at, limit, m, adjusted) for m in MERGES})
    if px is not None:
        h = np.minimum(px[:, None], px[None])
        for p, big in SIZES:
            out[f"size {limit:g}/{big:g}>={p}"] = online(dist, at, np.where(h >= p, big, limit))
    if looks is not None:
        w = np.stack([weighted(d, hh, f, min_frontal) for d, hh, f in looks])
        wd = np.linalg.norm(w[:, None] - w[None], axis=2)
        out.update({f"looks f*h {lim:g}": online(wd, at, lim) for lim in (limit, 0.45)})
        front = [d[f >= min_frontal] if (f >= min_frontal).any() else d for d, _, f in looks]
        for how in ("k3", "avg"):
            sd = np.array([[set_distance(a, b, how) for b in front] for a in front])
            out.update({f"set {how} {lim:g}": online(sd, at, lim) for lim in (limit, 0.45)})
    return out
