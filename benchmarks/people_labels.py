"""Who each track of a real clip is, by time and place, not by track id (issue #33).

``benchmarks/people_clip_labels/CLIP.json`` holds, per person, anchors ``[time_s, cx, cy]``: one
per track labelled by eye, a moment the detector found that track (its middle detection) and the
centre of its box then, in the clip's pixels. Track ids depend on the tracker (a change to it
renumbers a long clip's tracks from the first track it splits or joins differently), a time and a
place do not: a run's track is a person's when one of its detections lies within ``DT`` seconds of
one of that person's anchors and its box's centre within ``NEAR`` of its face's height of the
anchor (``people-clip --clusters-only --tracks`` saves each detection's box, ``hit_box``). A track
no anchor matches is unlabelled (counted, not scored, and listed); a track matching two people's
anchors is an error (the labels or the tolerances need a look); an anchor no track matches is
listed (that track was lost, or the labels are from another clip).
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

DT = 0.25  # (s: a detection's time within this of an anchor's; one or two detections at 8-12 a second)
NEAR = 0.5  # (of the face's height: the box's centre within this of the anchor's place)


@dataclass
class Labels:
    """Each matched track's person, the tracks no anchor matched, the anchors no track matched."""

    truth: dict[int, str] = field(default_factory=dict)
    unlabelled: list[int] = field(default_factory=list)
    unmatched: list[tuple[str, list[float]]] = field(default_factory=list)


class LabelError(ValueError):
    """Labels that cannot be read as time and place, or a track two people's anchors match."""


def load(path: str | Path) -> dict[str, np.ndarray]:
    """Person -> anchors, an (n, 3) array of ``time_s, cx, cy``."""
    raw = json.loads(Path(path).read_text())
    out = {}
    for who, anchors in raw.items():
        a = np.asarray(anchors, np.float64)
        if a.ndim != 2 or a.shape[1] != 3:
            raise LabelError(f"{path}: {who!r} needs anchors [time_s, cx, cy] (track ids are not labels)")
        out[who] = a
    return out


def places(z) -> dict[int, np.ndarray]:
    """Track id -> its detections, an (n, 4) array of ``time_s, cx, cy, face height``, from a saved
    tracks file (or a dict with its arrays ``hit_track``, ``hit``, ``hit_box``)."""
    if "hit_box" not in z:
        raise LabelError("the tracks file has no boxes (hit_box): save the tracks again with people-clip")
    box = np.asarray(z["hit_box"], np.float64).reshape(-1, 4)
    rows = np.column_stack(
        [
            np.asarray(z["hit"], np.float64),
            (box[:, 0] + box[:, 2]) / 2,
            (box[:, 1] + box[:, 3]) / 2,
            box[:, 3] - box[:, 1],
        ]
    )
    out: dict[int, list] = defaultdict(list)
    for t, r in zip(np.asarray(z["hit_track"]), rows, strict=True):
        out[int(t)].append(r)
    return {t: np.array(r) for t, r in out.items()}


def hits_anchor(p: np.ndarray, a: np.ndarray) -> bool:
    """Whether the detections ``p`` (time, cx, cy, height) hold one near the anchor ``a``."""
    near_t = np.abs(p[:, 0] - a[0]) <= DT
    far = np.hypot(p[:, 1] - a[1], p[:, 2] - a[2])
    return bool((near_t & (far <= NEAR * p[:, 3])).any())  # (NaN boxes match nothing)


def match(tracks: dict[int, np.ndarray], anchors: dict[str, np.ndarray]) -> Labels:
    """Each track's person by the anchors (see the module's docstring); ``tracks``: ``places``."""
    who: dict[int, set[str]] = defaultdict(set)
    out = Labels()
    for person, rows in anchors.items():
        for a in rows:
            found = [t for t, p in tracks.items() if hits_anchor(p, a)]
            for t in found:
                who[t].add(person)
            if not found:
                out.unmatched.append((person, [float(v) for v in a]))
    two = {t: sorted(ps) for t, ps in who.items() if len(ps) > 1}
    if two:
        raise LabelError(f"tracks matching two people's anchors (track: people): {dict(sorted(two.items()))}")
    out.truth = {t: next(iter(ps)) for t, ps in sorted(who.items())}
    out.unlabelled = sorted(t for t in tracks if t not in out.truth)
    return out


def labels_of(path: str | Path, z) -> Labels:
    """The labels at ``path`` matched with the saved tracks ``z``."""
    return match(places(z), load(path))
