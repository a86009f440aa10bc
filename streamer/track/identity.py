"""Is the face a detection matched to a track the same person the track was following? And is a
new face someone whose track ended in the last seconds (``recognised``)?

Overlap and the flow cannot tell: when someone walks in front of a face, the flow moves the box
with the passer-by, and the next detection, of the passer-by, overlaps the box as well as the face
did. A 16-pixel grey template cannot either: faces are alike at that size (different people on the
1080p clips score 0.9 and more against each other's). dlib's face descriptor (``Face.identity``,
computed where a face is classified on the face backbone) can: on the street and group clips
(planned runs, one detection every 12 frames), descriptors of one person at consecutive detections
lie 0.11 apart at the median and 0.42 at the 99th percentile, and a track that had moved onto
someone else lay 0.45-1.04 from that person's descriptor (9 of 10 such switches over 0.6; the
ones the rule splits on the street clips 0.76-1.04). A track keeps its last few identities and a
face is someone else only if it is far from all of them: one face's descriptor drifts as it turns
and speaks (the demo clip's singer, 0.2-0.65 from himself 3-48 frames later).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# descriptors further apart than this are two people: dlib's own same-person threshold is 0.6, on
# faces of 80 px and more; here faces are often 40-60 px (one lay 0.600 from itself 24 frames later
# on street2, turning), and the demo clip's singer, mouth open and head tilted, lay up to 0.653 from
# himself 48 frames later (and 0.653, 0.659 from his last classified look, live)
OTHER_PERSON = 0.7


def nearest(known: np.ndarray | Sequence[np.ndarray], b: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
    """For each identity of ``b`` (one, or several), how far the nearest of ``known`` lies (inf
    where ``known`` is empty)."""
    v = np.asarray(b, np.float32)
    v = v.reshape(-1, v.shape[-1])
    k = np.asarray(known, np.float32)
    if k.size == 0:
        return np.full(len(v), np.inf, np.float32)
    k = k.reshape(-1, v.shape[-1])
    return np.linalg.norm(v[:, None, :] - k[None, :, :], axis=2).min(axis=1)


def other_person(
    known: np.ndarray | Sequence[np.ndarray] | None, b: np.ndarray | None, limit: float = OTHER_PERSON
) -> bool | np.ndarray:
    """Whether ``b`` is someone else than the person of ``known`` (one identity, or several of one
    person: ``b`` is compared with the nearest); False where either is unknown (or ``limit`` is 0).
    ``b`` may hold several faces' identities (n x 128): then one answer each."""
    if known is None or b is None or limit <= 0:
        return False
    d = nearest(known, b)
    out = np.isfinite(d) & (d > limit)
    return bool(out[0]) if np.asarray(b).ndim == 1 else out


# a new face this near a remembered (ended) track's identities is that person come back. Well under
# ``OTHER_PERSON``: a wrong "same" gives a stranger someone's id and labels. On the street and group
# clips (``python -m benchmarks reidentify``: planned runs, detection every 12th frame; every track
# born against every track ended in the 30 s before it, by the truth), a face whose own ended track
# was remembered was recognised as it 55 times in 59, and no face came within 0.25 of a stranger's:
# the nearest 0.27, on group2's small alike faces; at 0.3, two faces would have taken a stranger's
# track had their own not been remembered, at 0.35 nine
SAME_PERSON = 0.25
# ... and every other remembered track lies at least this much further, unless it is that person's
# too (one person can have left two tracks)
CLEARLY_NEARER = 0.1


def recognised(
    b: np.ndarray | None,
    remembered: Sequence[Sequence[np.ndarray]],
    limit: float = SAME_PERSON,
    margin: float = CLEARLY_NEARER,
) -> int | None:
    """Which of ``remembered`` (each the identities of one ended track) ``b`` is, if clearly one:
    within ``limit`` of its nearest, and every other within ``margin`` of that distance is of the same
    person as the nearest (within ``limit`` of it). None: nobody, or not clearly (or ``limit`` 0)."""
    if b is None or limit <= 0 or not remembered:
        return None
    refs = [np.asarray(r, np.float32) for r in remembered]
    d = np.array([nearest(r, b)[0] for r in refs])
    k = int(np.argmin(d))
    if d[k] > limit:
        return None
    for j in np.nonzero(d < d[k] + margin)[0]:
        if j != k and apart(refs[j], refs[k]) > limit:
            return None
    return k


def apart(a: np.ndarray | Sequence[np.ndarray], b: np.ndarray | Sequence[np.ndarray]) -> float:
    """The nearest two of two sets of identities lie this far apart (inf where one is empty)."""
    if np.asarray(b).size == 0:
        return float("inf")
    return float(nearest(a, b).min())
