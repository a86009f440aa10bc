"""Which detection is which track's face: association when the detector's answer arrives.

The answer is for the frame the detector was given, often a few frames back, so each track is
placed where it was *on that frame* (``Track.box_at``), not where it is now. Then:

1. IoU of every track against every detection, and the Hungarian assignment maximising the
   total (matching.py); pairs under ``min_iou`` do not match.
2. Of the tracks and detections left, those whose centres lie near for their size
   (``near_reach`` of the larger width, widths alike) match too: the detector's box of a face
   can move and change size more than IoU allows (a head turning, a face half hidden by a
   hand), and a second track beside a stale one is worse than a loose match.
3. A track and a detection whose identities (identity.py) say two people never match, however
   they overlap. A track that overlaps such a face as a match would, and is left without one,
   *switched*: its box was pulled onto a passer-by. It ends and the face starts its own track.
4. A track the detector did not look for is not missed: outside the regions it looked at, or too
   small there (``looked``).
5. A missed track whose box lies mostly inside a detected face (``duplicate_inside``) is a
   duplicate of that face's track: it ends rather than coast beside it.

Weak detections (scored under ``types.FACE_SCORE``: a blurred, small or turned face, or no face)
take no part in 1-5. They are matched afterwards, by IoU of at least ``weak_iou`` alone, to the
confirmed tracks still without a face (ByteTrack's second association, Zhang et al. 2022): such a
track is not missed, and the weak box places it. A weak detection no track takes is dropped; it
never starts a track. A face the detector barely sees keeps its track, and a score near the
threshold alone never puts a box on the wall.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from streamer.detect.regions import looked_at, too_small_in
from streamer.track.identity import other_person
from streamer.track.matching import XYXY, iou_matrix, match, near_matrix
from streamer.track.rule import TrackerRule
from streamer.track.track import Track, xyxy_box
from streamer.types import Face, Region


@dataclass(frozen=True)
class Association:
    """Tracks and detections by index into the lists given to ``associate``."""

    then: list[XYXY]  # each track's box on the detection's frame
    boxes: list[tuple[int, int, int, int]]  # each detection's box
    pairs: list[tuple[int, int]]  # (track, detection): the same face
    weak_pairs: list[tuple[int, int]]  # (track, weak detection): the face, seen weakly
    lost: list[int]  # tracks looked for and not found (switched ones aside)
    new: list[int]  # detections no track matched: new faces
    switched: list[int]  # tracks whose box moved onto someone else's face
    duplicates: list[int]  # lost tracks lying inside a detected face
    small: list[int] = field(default_factory=list)  # not found, too small to be looked for where looked at


def associate(
    tracks: Sequence[Track],
    faces: Sequence[Face],
    index: int,
    rule: TrackerRule,
    looked: Sequence[Region] = (),
    frame: tuple[int, int] | None = None,
) -> Association:
    """Match the detector's ``faces`` on frame ``index`` to ``tracks`` (module docstring).
    ``looked``: the regions the detector looked at (empty: all of the frame) on a ``frame``
    (width, height) of that size."""
    then = [tuple(tr.box_at(index)) for tr in tracks]
    dets = [(f.box.left, f.box.top, f.box.right, f.box.bottom) for f in faces]
    ious = iou_matrix(then, dets)
    # a track and a face whose identities say two people are never the same face
    other = np.zeros(ious.shape, dtype=bool)
    known = [di for di, f in enumerate(faces) if f.identity is not None]  # (classified this round)
    if known:
        who = np.stack([faces[di].identity for di in known])
        for ti, tr in enumerate(tracks):
            other[ti, known] = other_person(tr.identities, who, rule.other_person)
    weak = np.array([f.box.weak for f in faces], dtype=bool)
    pairs, lost, new = match(np.where(other | weak[None, :], 0.0, ious), rule.min_iou)
    new = [di for di in new if not weak[di]]  # (a weak detection never starts a track)
    if lost and new and rule.near_reach > 0:
        # tracks and faces still unmatched whose centres lie close, for their size: the same face
        near = near_matrix([then[ti] for ti in lost], [dets[di] for di in new], rule.near_reach)
        near[other[np.ix_(lost, new)]] = 0.0
        more, still_lost, still_new = match(near, 1e-9)
        pairs += [(lost[i], new[j]) for i, j in more]
        lost, new = [lost[i] for i in still_lost], [new[j] for j in still_new]
    weak_pairs: list[tuple[int, int]] = []
    if lost and weak.any() and rule.weak_iou > 0:
        # the confirmed tracks still without a face, against the weak detections: by IoU alone
        cand, wi = [ti for ti in lost if tracks[ti].confirmed], np.flatnonzero(weak)
        more, _, _ = match(ious[np.ix_(cand, wi)], rule.weak_iou)
        weak_pairs = [(cand[i], int(wi[j])) for i, j in more]
        kept = {ti for ti, _ in weak_pairs}
        lost = [ti for ti in lost if ti not in kept]
    small: list[int] = []
    if looked:
        looked_for = {ti: looked_at(xyxy_box(then[ti]), looked, frame) for ti in lost}
        small = [ti for ti in lost if not looked_for[ti] and too_small_in(xyxy_box(then[ti]), looked)]
        lost = [ti for ti in lost if looked_for[ti]]
    # a track left without a face that it overlaps as a match would, but that is someone else
    switched = [ti for ti in lost if (other[ti] & (ious[ti] >= rule.min_iou)).any()]
    lost = [ti for ti in lost if ti not in switched]
    found = [d for d, w in zip(dets, weak, strict=True) if not w]
    duplicates = [ti for ti in lost if _inside_any(then[ti], found) >= rule.duplicate_inside]
    return Association(then, dets, pairs, weak_pairs, lost, new, switched, duplicates, small)


def _inside_any(box: XYXY, others: Sequence[XYXY]) -> float:
    """The largest share of ``box``'s area that lies inside one of ``others``."""
    x0, y0, x1, y1 = box
    area = max(1.0, (x1 - x0 + 1) * (y1 - y0 + 1))
    best = 0.0
    for a0, b0, a1, b1 in others:
        iw = min(x1, a1) - max(x0, a0) + 1
        ih = min(y1, b1) - max(y0, b0) + 1
        if iw > 0 and ih > 0:
            best = max(best, iw * ih / area)
    return best
