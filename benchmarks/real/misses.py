"""Why a planned run missed the reference faces it missed (``python -m benchmarks real --misses``).

Every reference face of 40 px and more, from FROM_S on, that no drawn box matched (IoU >= 0.5, as
``scoring.score_real`` counts recall) gets one cause, the first of these that holds:

- ``box_off``: a drawn box lies on it, at an IoU of 0.1 to 0.5 (its size or place is off);
- ``hidden``: a track's box lies on it (IoU >= 0.3) but is not drawn: not confirmed yet, unsure
  (the flow lost or outgrew it, a look found it unlike its face: ``Track.unsure``), or missed
  and unlike its face (``Track.shown``);
- ``lost``: a round since the face came into the reference found it (IoU >= 0.3), and no track
  holds it now (the track ended, or its box left the face);
- ``after_cut``: no round of this scene had answered by then (the answer of the cut's first
  rounds was still on its way);
- ``new``: the face's first reference frame (nothing on the reference frame before), and none
  of the above: the rounds whose answers were in by then looked before it was there, as a rule;
- ``not_found``: a round looked at it at a scale where MMOD sees it (``regions.looked_at``)
  and did not find it (blur, a turned head, MMOD's own misses);
- ``not_proposed``: only HOG's scan covered it (a propose region), and HOG proposed nothing there
  (HOG misses blurred, turned and profile faces);
- ``not_looked``: no round looked there at a scale that sees it (the plan went elsewhere).

The rounds counted are those since the face came into the reference (the reference frame before
its track's first, on) whose answers had landed by the frame. A face's place on a round's frame
is its reference box on the nearest reference frame of its reference track.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from benchmarks.scoring import FROM_S, MIN_IOU, iou_matrix, link_tracks, match, xyxy
from streamer.detect.regions import looked_at
from streamer.types import Box, Region

CAUSES = ("box_off", "hidden", "lost", "after_cut", "new", "not_found", "not_proposed", "not_looked")
NEAR_IOU = 0.3  # a track's box or a detection this much on a reference face is on it
LOOSE_IOU = 0.1  # a drawn box at least this much on a missed face is a box off it


def track_states(tracks: Sequence[Any]) -> list[dict[str, Any]]:
    """What ``classify`` needs of a frame's tracks (``Tracker.tracks``), for the ``on_frame`` hook."""
    return [
        {
            "box": tuple(float(v) for v in tr.box),
            "shown": tr.shown,
            "confirmed": tr.confirmed,
            "unsure": tr.unsure,
        }
        for tr in tracks
    ]


def keep_states(states: dict[int, list[dict[str, Any]]], frames: set[int]) -> Callable[[Any, int], None]:
    """An ``on_frame`` hook (planned.planned_lines): ``track_states`` of ``frames`` into ``states``."""

    def on_frame(stage: Any, n: int) -> None:
        if n in frames:
            states[n] = track_states(stage.tracker.tracks)

    return on_frame


def classify(
    lines: list[dict[str, Any]],
    rounds: list[dict[str, Any]],
    states: dict[int, list[dict[str, Any]]],
    ref: dict[int, list[Box]],
    every: int,
    fps: float,
    latency: int,
    size: tuple[int, int],
    cuts: Sequence[int] = (),
) -> list[dict[str, Any]]:
    """Each missed reference face (frame, box, width, cause) of a planned run: its ``--detections``
    ``lines``, its detection ``rounds`` (planned.planned_lines) and each reference frame's track
    ``states`` (``track_states``), against the reference boxes ``ref`` on every ``every``-th frame;
    each answer landed ``latency`` frames after its frame."""
    shown = {int(d["frame"]): d["faces"] for d in lines}
    tracks = link_tracks(ref, 2 * every, cuts)
    place: dict[int, dict[int, tuple[int, int, int, int]]] = {}  # reference track -> frame -> box
    for n in sorted(ref):
        for t, b in zip(tracks[n], ref[n], strict=True):
            place.setdefault(t, {})[n] = xyxy(b)
    out = []
    for n in sorted(ref):
        if n / fps < FROM_S or n not in shown:
            continue
        truth = [xyxy(b) for b in ref[n]]
        drawn = [xyxy(d) for d in shown[n]]
        m = iou_matrix(truth, drawn)
        hit = dict(match(m, MIN_IOU)[0])
        scene = max((c for c in cuts if c <= n), default=0)
        for i, (t, b) in enumerate(zip(tracks[n], truth, strict=True)):
            if b[2] - b[0] + 1 < 40 or i in hit:
                continue
            came = min(place[t])
            best = float(m[i].max()) if drawn else 0.0
            cause = _cause(b, best, states.get(n, []), came, n, scene, every, latency, rounds, place[t], size)
            out.append({"frame": n, "box": b, "width": b[2] - b[0] + 1, "cause": cause})
    return out


def _cause(
    b: tuple[int, int, int, int],
    drawn_iou: float,
    states: list[dict[str, Any]],
    came: int,
    n: int,
    scene: int,
    every: int,
    latency: int,
    rounds: list[dict[str, Any]],
    place: dict[int, tuple[int, int, int, int]],
    size: tuple[int, int],
) -> str:
    if drawn_iou >= LOOSE_IOU:
        return "box_off"
    if any(iou_matrix([b], [s["box"]])[0, 0] >= NEAR_IOU for s in states):
        return "hidden"
    lo = max(scene, came - every + 1)  # (from the reference frame before the face came)
    looks = []
    for r in (r for r in rounds if lo <= r["frame"] and r["frame"] + latency <= n):
        at = place[min(place, key=lambda f: abs(f - r["frame"]))]
        found = any(iou_matrix([at], [xyxy(f.box)])[0, 0] >= NEAR_IOU for f in r["faces"])
        mmod = [x for x in r["looked"] if x.why != "propose"]
        # (no plan: the whole frame; a plan of HOG's scan alone that proposed nothing: nothing)
        seen = not r["planned"] or (bool(mmod) and looked_at(Box(*at, 0.0), mmod, size))
        hog = any(_holds(x, at) for x in r["planned"] if x.why == "propose")
        looks.append((found, seen, hog))
    if any(f for f, _, _ in looks):
        return "lost"
    if not any(r["frame"] >= scene and r["frame"] + latency <= n for r in rounds):
        return "after_cut"
    if came == n:
        return "new"
    if any(s for _, s, _ in looks):
        return "not_found"
    if any(h for _, _, h in looks):
        return "not_proposed"
    return "not_looked"


def _holds(r: Region, b: tuple[int, int, int, int]) -> bool:
    return r.left <= b[0] and b[2] <= r.right and r.top <= b[1] and b[3] <= r.bottom


def count(misses: list[dict[str, Any]]) -> dict[str, int]:
    """Missed faces per cause (every cause, 0 where none)."""
    c = Counter(m["cause"] for m in misses)
    return {k: c.get(k, 0) for k in CAUSES}
