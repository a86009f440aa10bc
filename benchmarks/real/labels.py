"""Labels per person on the real clips: the label a drawn track settles on, against labels by looking.

``labels.csv`` holds, per person seen on a real clip's reference (one reference track, or the part
of one between ``from_s`` and ``to_s`` where the reference links two people across a cut or a
crossing), the gender (female / male / unsure) and, for men, the beard (shaved / unshaved /
unsure), given by looking at the track's largest crops. Rows are keyed by time and place, not by a
track index (which changes when the reference is rebuilt): the person is the reference box nearest
(``cx``, ``cy``) on the reference frame nearest ``at_s`` (the largest look), centre within half
``width``, and the boxes of its reference track from ``from_s`` to ``to_s``. Unsure: not scored.

Per labelled person: the drawn track on most of its reference boxes (IoU >= 0.5), and the label
that track settled on while on this person (the last label shown that is not "?", from the person's
first reference box until the track is on another reference box, or ends): right,
wrong, or "?" (never settled, or the beard not shown because the track is labelled female); a
person no drawn track covered is "not boxed". What a viewer sees along the way is counted too: on
each reference frame where that track is on the person, the label it shows then is right, wrong
or "?" (``<classifier>_frames_<outcome>``).
"""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path
from typing import Any

from benchmarks.scoring import MIN_IOU, iou_matrix, link_tracks, xyxy
from streamer.types import Box

LABELS = Path(__file__).with_name("labels.csv")
CLASSIFIERS = {"gender": ("female", "male"), "beard": ("shaved", "unshaved")}
OUTCOMES = ("right", "wrong", "unsettled")
FRAME_OUTCOMES = ("frames_right", "frames_wrong", "frames_unsure")
SHOWN_ON = {"beard": ("gender", "male")}  # config.toml's ``when``: the beard is shown on men only


def load_truth(clip: str, path: Path = LABELS) -> list[dict[str, Any]]:
    """The rows of ``labels.csv`` for ``clip``."""
    with path.open(newline="") as f:
        return [r for r in csv.DictReader(f) if r["clip"] == clip]


def person_boxes(
    row: dict[str, Any], ref: dict[int, list[Box]], tracks: dict[int, list[int]], fps: float
) -> dict[int, tuple[int, int, int, int]]:
    """The reference boxes (frame -> box) of the person ``row`` describes; empty where the
    reference has no box there any more."""
    if not ref:
        return {}
    at = min(ref, key=lambda n: abs(n - float(row["at_s"]) * fps))
    cx, cy, half = float(row["cx"]), float(row["cy"]), float(row["width"]) / 2
    best, track = half, None
    for b, t in zip(ref[at], tracks[at], strict=True):
        x = xyxy(b)
        d = max(abs((x[0] + x[2]) / 2 - cx), abs((x[1] + x[3]) / 2 - cy))
        if d <= best:
            best, track = d, t
    if track is None:
        return {}
    step = (sorted(ref)[1] - sorted(ref)[0]) if len(ref) > 1 else 1
    lo, hi = float(row["from_s"]) * fps - step / 2, float(row["to_s"]) * fps + step / 2
    return {
        n: xyxy(b) for n in ref if lo <= n <= hi for b, t in zip(ref[n], tracks[n], strict=True) if t == track
    }


def settled(lines: list[dict[str, Any]], track: int, frames: range) -> dict[str, str]:
    """The last label of each classifier shown on drawn ``track`` over ``frames`` that is not "?"
    ("?" where there is none)."""
    out = {name: "?" for name in CLASSIFIERS}
    for d in lines:
        if d["frame"] not in frames:
            continue
        for f in d["faces"]:
            if f.get("track") is None or int(f["track"]) != track:
                continue
            for name, lab in (f.get("labels") or {}).items():
                v = lab["label"] if isinstance(lab, dict) else str(lab)
                if name in out and not v.endswith("?"):
                    out[name] = v
    return out


def _shown_now(face: dict[str, Any]) -> dict[str, str]:
    """The labels a drawn face shows ("?" for none; the beard only on a face shown male)."""
    out = {name: "?" for name in CLASSIFIERS}
    for name, lab in (face.get("labels") or {}).items():
        v = lab["label"] if isinstance(lab, dict) else str(lab)
        if name in out and not v.endswith("?"):
            out[name] = v
    for c, (other, value) in SHOWN_ON.items():
        if out[other] != value:
            out[c] = "?"
    return out


def score_labels(
    lines: list[dict[str, Any]],
    ref: dict[int, list[Box]],
    every: int,
    fps: float,
    truth: list[dict[str, Any]],
) -> dict[str, Any]:
    """Per classifier, how many labelled people's drawn tracks settled right, wrong or not at all
    ("unsettled"), people no drawn track covered ("not_boxed"), and one record per person."""
    tracks = link_tracks(ref, 2 * every)
    shown = {int(d["frame"]): d["faces"] for d in lines}
    counts = {f"{c}_{o}": 0 for c in CLASSIFIERS for o in OUTCOMES + FRAME_OUTCOMES}
    people: list[dict[str, Any]] = []
    not_boxed = unmatched = 0
    for row in truth:
        want = {c: row[c] for c in CLASSIFIERS if row.get(c) in CLASSIFIERS[c]}
        if not want:
            continue
        boxes = person_boxes(row, ref, tracks, fps)
        if not boxes:
            unmatched += 1
            continue
        on: Counter[int] = Counter()
        drawn: dict[int, dict[str, Any]] = {}  # frame -> the drawn face on the person there
        for n, b in boxes.items():
            got = [f for f in shown.get(n, []) if f.get("track") is not None]
            if got:
                m = iou_matrix([b], [xyxy(f) for f in got])[0]
                k = int(m.argmax())
                if m[k] >= MIN_IOU:
                    on[int(got[k]["track"])] += 1
                    drawn[n] = got[k]
        rec = {"at_s": float(row["at_s"]), "truth": want, "drawn_track": None, "shown": {}}
        people.append(rec)
        if not on:
            not_boxed += 1
            continue
        track = on.most_common(1)[0][0]
        got = settled(lines, track, range(min(boxes), _until(track, max(boxes), ref, shown)))
        for c, (other, value) in SHOWN_ON.items():
            if got[other] != value:  # not shown on the track as it ends
                got[c] = "?"
        rec["drawn_track"], rec["shown"] = track, {c: got[c] for c in want}
        for c, v in want.items():
            outcome = "unsettled" if got[c] == "?" else "right" if got[c] == v else "wrong"
            counts[f"{c}_{outcome}"] += 1
        for f in (f for f in drawn.values() if int(f["track"]) == track):
            now = _shown_now(f)
            for c, v in want.items():
                outcome = "unsure" if now[c] == "?" else "right" if now[c] == v else "wrong"
                counts[f"{c}_frames_{outcome}"] += 1
    return {**counts, "not_boxed": not_boxed, "truth_unmatched": unmatched, "people": people}


def _until(track: int, last: int, ref: dict[int, list[Box]], shown: dict[int, list[dict[str, Any]]]) -> int:
    """The frame where drawn ``track`` is first on another reference box after the person's last
    reference box ``last`` (the end of the clip if never): its label counts up to there (a label
    settles a detection's latency after the look, often after the person's last reference box)."""
    for n in sorted(k for k in ref if k > last):
        mine = [xyxy(f) for f in shown.get(n, []) if f.get("track") is not None and int(f["track"]) == track]
        if mine and ref[n] and iou_matrix(mine, [xyxy(b) for b in ref[n]]).max() >= MIN_IOU:
            return n
    return max(shown, default=last) + 1


def add_up(scores: list[dict[str, Any]]) -> dict[str, int]:
    """The counts of several ``score_labels`` results added up."""
    keys = [f"{c}_{o}" for c in CLASSIFIERS for o in OUTCOMES + FRAME_OUTCOMES]
    keys += ["not_boxed", "truth_unmatched"]
    return {k: sum(int(s.get(k, 0)) for s in scores) for k in keys}
