"""Scoring boxes: the boxes drawn on output frames against the true (or reference) boxes.

One definition for every scenario: per frame, drawn boxes and true boxes are matched one to one
(Hungarian assignment on IoU, ``streamer.track.matching``); a true face counts as found when its
match has IoU >= 0.5. Recall = found / true faces; mean IoU is over all true faces, 0 where missed.

- ``compare``: one frame; ``BoxScore`` / ``score_looped``: a stream playing a clip in a loop
  (the service's streams sweep, the tracking scenario);
- ``score_small_faces``: what a viewer of a 1080p clip with exact truth saw (small-faces);
- ``score_against_reference``: a real clip against detection on its every frame (live-clip).
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.clips.truth import MIN_FACE, Clip
from streamer.track.matching import iou_matrix, match, near_matrix
from streamer.types import Box

MIN_IOU = 0.5
# small faces (score_small_faces)
BIG_FACE = 80
WARMUP_S = 2.0  # recall counts once a stream has run this long
OFF_FACE_IOU = 0.3  # a drawn box overlapping no true face by this much is on no face
SWITCH_FRAMES = 5  # a track counts as on a person once its box was on them this many frames


def xyxy(b: Box | dict[str, Any]) -> tuple[int, int, int, int]:
    """A box (or a box as a ``--detections`` line writes it) as (left, top, right, bottom)."""
    if isinstance(b, dict):
        return (b["left"], b["top"], b["right"], b["bottom"])
    return (b.left, b.top, b.right, b.bottom)


def compare(ref: Sequence[Box], got: Sequence[Box]) -> tuple[int, float, list[tuple[int, int]]]:
    """(found, sum of IoU over ``ref``, pairs ref -> got with IoU >= 0.5)."""
    m = iou_matrix([xyxy(b) for b in ref], [xyxy(b) for b in got])
    pairs, _, _ = match(m, MIN_IOU)
    return len(pairs), float(sum(m[i, j] for i, j in pairs)), pairs


@dataclass
class BoxScore:
    frames: int = 0
    true_faces: int = 0
    found: int = 0
    iou_sum: float = 0.0
    frames_all_found: int = 0  # frames on which every true face had a box

    def add(self, truth: Sequence[Box], drawn: Sequence[Box]) -> None:
        k, s, _ = compare(truth, drawn)
        self.frames += 1
        self.true_faces += len(truth)
        self.found += k
        self.iou_sum += s
        self.frames_all_found += int(k == len(truth))

    def merge(self, other: BoxScore) -> None:
        self.frames += other.frames
        self.true_faces += other.true_faces
        self.found += other.found
        self.iou_sum += other.iou_sum
        self.frames_all_found += other.frames_all_found

    def as_dict(self) -> dict[str, Any]:
        return {
            "box_recall": round(self.found / self.true_faces, 4) if self.true_faces else None,
            "box_mean_iou": round(self.iou_sum / self.true_faces, 4) if self.true_faces else None,
            "frames_all_boxed": round(self.frames_all_found / self.frames, 4) if self.frames else None,
            "frames_scored": self.frames,
            "true_faces_scored": self.true_faces,
        }


def score_looped(records: Iterable[tuple[int, Sequence[Box]]], truth: Sequence[Sequence[Box]]) -> BoxScore:
    """Score (frame index, boxes drawn) records of a stream that plays a clip of ``len(truth)``
    frames in a loop: frame index ``i`` shows clip frame ``i % len(truth)``."""
    s = BoxScore()
    for index, drawn in records:
        s.add(truth[index % len(truth)], drawn)
    return s


# ------------------------------------------------------------------------ small faces (1080p truth)


def read_detection_lines(path: Path) -> list[dict[str, Any]]:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def score_small_faces(clip: Clip, lines: list[dict[str, Any]], warmup_s: float = WARMUP_S) -> dict[str, Any]:
    """What the viewer of ``clip`` saw (its ``--detections`` lines) against the truth."""
    fps = clip.fps
    shown = {int(line["frame"]): line["faces"] for line in lines}
    n_truth = len(clip.truth)
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])  # bucket -> [found, of]
    appear: dict[int, int] = {}  # person -> first frame as a scored face
    first_box: dict[int, int] = {}  # person -> first frame with a matching box, at or after appearing
    drawn = off_face = 0  # boxes drawn after the warm-up, and those on no face (IoU < 0.3 with every one)
    on: dict[int, dict[int, int]] = defaultdict(lambda: defaultdict(int))  # track -> person -> frames
    for n in range(n_truth):
        for f in clip.scored(n):
            appear.setdefault(f.person, n)
        if n not in shown:
            continue
        faces = [f for f in clip.truth[n] if f.visible]
        got = [xyxy(d) for d in shown[n]]
        m = iou_matrix([xyxy(f.box) for f in faces], got)
        pairs, _, _ = match(m, 0.5)
        hit = {i for i, _ in pairs}
        for i, j in pairs:
            if shown[n][j].get("track") is not None:
                tid = int(shown[n][j]["track"])
                on[tid][faces[i].person] += 1
        if n / fps >= warmup_s and got:  # any truth face counts here: hidden, small or partly out
            near = iou_matrix([xyxy(f.box) for f in clip.truth[n]], got)
            drawn += len(got)
            off_face += int((near.max(axis=0) < OFF_FACE_IOU).sum()) if near.size else len(got)
        for i, f in enumerate(faces):
            if i in hit and f.person in appear and f.person not in first_box:
                first_box[f.person] = n
            if n / fps < warmup_s or f.width < MIN_FACE:
                continue
            buckets = ["ge40"] + (["ge80"] if f.width >= BIG_FACE else ["40to80"])
            for b in buckets:
                counts[b][0] += i in hit
                counts[b][1] += 1
    late = {p: a for p, a in appear.items() if a / fps >= warmup_s}  # appeared once the stream ran
    waits = [(first_box[p] - a) / fps for p, a in late.items() if p in first_box]
    frames_shown = sorted(shown)
    times = [float(line.get("time_s", 0.0)) for line in lines]
    span = (max(times) - min(times)) if len(times) > 1 else 0.0
    ids: dict[int, set[int]] = defaultdict(set)  # person -> the tracks whose box was on them
    for tid, people in on.items():
        for person in people:
            ids[person].add(tid)
    return {
        "clip": clip.name,
        "recall_ge40": _ratio(counts["ge40"]),
        "recall_ge80": _ratio(counts["ge80"]),
        "recall_40to80": _ratio(counts["40to80"]),
        "boxes_off_face": round(off_face / drawn, 4) if drawn else None,
        "boxes_drawn": drawn,
        # tracks: distinct ids per person boxed, and tracks whose box was on two people or more
        # (SWITCH_FRAMES frames each): a label shown on someone it was not settled on
        "ids_per_person": round(sum(len(v) for v in ids.values()) / len(ids), 3) if ids else None,
        # of the boxes on a person, the share carrying that person's most shown id (1: one id
        # throughout; a brief second id costs little here, a person shown under two ids half each)
        "main_id_share": _main_id_share(on),
        "tracks_on_two_people": sum(
            1 for people in on.values() if sum(1 for k in people.values() if k >= SWITCH_FRAMES) > 1
        ),
        # boxes (one per frame) of a track on someone other than the person its box was on most:
        # what they show is that person's label (counted from the person it began on instead, a
        # track whose box lay on a neighbour for its first frames counted all its frames after)
        "boxes_on_another_person": sum(sum(p.values()) - max(p.values()) for p in on.values()),
        "truth_faces_ge40": counts["ge40"][1],
        "truth_faces_ge80": counts["ge80"][1],
        "people": len(appear),
        "people_found": sum(1 for p in appear if p in first_box),
        "first_box_s": _pcts(waits),
        "people_appearing_after_warmup": len(late),
        "never_found_after_appearing_late": sum(1 for p in late if p not in first_box),
        "frames_published": len(frames_shown),
        "frames_in_clip": n_truth,
        "output_fps": round((len(times) - 1) / span, 2) if span > 0 else None,
        "clip_fps": fps,
    }


def _main_id_share(on: dict[int, dict[int, int]]) -> float | None:
    per: dict[int, dict[int, int]] = defaultdict(dict)  # person -> track -> frames
    for tid, people in on.items():
        for person, k in people.items():
            per[person][tid] = k
    total = sum(sum(v.values()) for v in per.values())
    return round(sum(max(v.values()) for v in per.values()) / total, 4) if total else None


def _ratio(fo: list[int]) -> float | None:
    return round(fo[0] / fo[1], 4) if fo[1] else None


def _pcts(v: list[float]) -> dict[str, float | None]:
    if not v:
        return {"p50": None, "p90": None, "max": None, "n": 0}
    a = np.asarray(v)
    p50, p90 = (round(float(np.percentile(a, q)), 3) for q in (50, 90))
    return {"p50": p50, "p90": p90, "max": round(float(a.max()), 3), "n": len(v)}


# ------------------------------------------------------------------------ a real clip (live-clip)


def score_against_reference(
    lines: list[dict], ref: list[list[Box]], scene_cuts: list[int]
) -> dict[str, object]:
    """A clip's ``--detections`` lines against the detector on every frame (``ref``): recall, boxes
    on no detected face (IoU under 0.2 with all of them), and per scene cut the frames until every
    face of the new scene has a box."""
    found = total = ghosts = drawn = 0
    boxed_from: dict[int, int | None] = {c: None for c in scene_cuts}
    for d in lines:
        n = d["frame"]
        if n >= len(ref):
            continue
        got = [Box(f["left"], f["top"], f["right"], f["bottom"], f["confidence"]) for f in d["faces"]]
        k, _, _ = compare(ref[n], got)
        found += k
        total += len(ref[n])
        drawn += len(got)
        if got:
            m = iou_matrix(
                [(b.left, b.top, b.right, b.bottom) for b in got],
                [(b.left, b.top, b.right, b.bottom) for b in ref[n]],
            )
            ghosts += int((m.max(axis=1) < 0.2).sum()) if ref[n] else len(got)
        for c in scene_cuts:
            if boxed_from[c] is None and n >= c and ref[n] and k == len(ref[n]):
                boxed_from[c] = n
    return {
        "recall_vs_every_frame": round(found / max(1, total), 4),
        "boxes_drawn": drawn,
        "boxes_on_no_detected_face": ghosts,
        "frames_after_cut_until_all_boxed": {
            str(c): (b - c if b is not None else None) for c, b in boxed_from.items()
        },
    }


# ------------------------------------------------------------------------ real clips (real)

LINK_REACH = 1.5  # reference boxes on consecutive reference frames this near are one person (near_matrix)
FROM_S = 1.0  # real: recall and boxes off face count from this second of the clip on
NEARER = 1.3  # real: a reference track whose box grows this much is someone coming nearer


def link_tracks(ref: dict[int, list[Box]], gap: int, cuts: Sequence[int] = ()) -> dict[int, list[int]]:
    """Reference tracks: each reference frame's boxes matched (Hungarian) to the tracks seen on the
    reference frames up to ``gap`` frames before: by IoU or, where higher, by nearness (centres
    within LINK_REACH of the larger width, widths within 1.5x: people walk a face width and
    MMOD's box steps a size between reference frames), never across a scene cut (``cuts``: each
    shot's first frame; shot and reverse shot put two people in one place). Frame -> track per box."""
    last: dict[int, tuple[int, tuple[int, int, int, int]]] = {}  # track -> (frame, box)
    out: dict[int, list[int]] = {}
    prev_n = None
    for n in sorted(ref):
        boxes = [xyxy(b) for b in ref[n]]
        ids: list[int | None] = [None] * len(boxes)
        shot = max((c for c in cuts if c <= n), default=0)  # (tracks seen before it ended there)
        # the tracks on the reference frame before first, then those missed there (up to ``gap``)
        for live in (
            [t for t, (f, _) in last.items() if f == prev_n and f >= shot],
            [t for t, (f, _) in last.items() if f != prev_n and n - f <= gap and f >= shot],
        ):
            todo = [i for i, t in enumerate(ids) if t is None]
            a, b = [boxes[i] for i in todo], [last[t][1] for t in live]
            score = np.maximum(iou_matrix(a, b), near_matrix(a, b, LINK_REACH))
            for i, j in match(score, 0.05)[0]:
                ids[todo[i]] = live[j]
        for i, t in enumerate(ids):
            if t is None:
                ids[i] = t = len(last)
            last[t] = (n, boxes[i])
        prev_n = n
        out[n] = ids
    return out


def score_real(
    lines: list[dict[str, Any]],
    ref: dict[int, list[Box]],
    every: int,
    fps: float,
    size: tuple[int, int],
    closer: dict[int, list[Box]] | None = None,
    cuts: Sequence[int] = (),
) -> dict[str, Any]:
    """What a viewer of a real clip saw (its ``--detections`` lines) against the reference boxes on
    every ``every``-th frame (``ref``): recall of reference faces >= 40 and >= 24 px wide from
    FROM_S on; drawn boxes wholly inside the frame with IoU < OFF_FACE_IOU against every reference
    box (boxes on no face, or on a face the reference missed); per reference track (reference
    boxes linked frame to frame), the seconds from its first box >= 40 px to the first drawn box on
    it (IoU >= 0.5, on reference frames: resolution every/fps), the drawn track ids on it, and the
    IoU and width ratio of the drawn box on people coming nearer (the later half of a track that
    grows NEARER times); label changes per drawn track that was on a reference face. ``closer``:
    faces the reference missed (benchmarks/real/closer.py); a drawn box on one is not off face.
    ``cuts``: the clip's scene cuts (no reference track goes across one: see link_tracks)."""
    shown = {int(d["frame"]): d["faces"] for d in lines}
    tracks = link_tracks(ref, 2 * every, cuts)
    w, h = size
    found = {"ge40": [0, 0], "ge24": [0, 0], "ge40_all": [0, 0]}
    drawn = off = unref = 0
    first40: dict[int, int] = {}  # reference track -> first frame with a box >= 40 px
    boxed: dict[int, int] = {}  # reference track -> first frame with a drawn box on it (from first40)
    ids: dict[int, set[int]] = defaultdict(set)
    widths: dict[int, list[tuple[int, int, float, float]]] = defaultdict(list)  # t -> (n, w, iou, ratio)
    for n in sorted(ref):
        got = shown.get(n)
        if got is None:
            continue
        truth = [xyxy(b) for b in ref[n]]
        boxes = [xyxy(d) for d in got]
        m = iou_matrix(truth, boxes)
        pairs, _, _ = match(m, MIN_IOU)
        hit = dict(pairs)
        loose = dict(match(m, 0.1)[0])
        late = n / fps >= FROM_S
        for i, (t, b) in enumerate(zip(tracks[n], truth, strict=True)):
            bw = b[2] - b[0] + 1
            if bw >= 40:
                first40.setdefault(t, n)
            for key, ok in (("ge40", bw >= 40 and late), ("ge24", bw >= 24 and late), ("ge40_all", bw >= 40)):
                if ok:
                    found[key][0] += i in hit
                    found[key][1] += 1
            if i in hit:
                if t in first40:
                    boxed.setdefault(t, n)
                if got[hit[i]].get("track") is not None:
                    ids[t].add(int(got[hit[i]]["track"]))
            j = loose.get(i)
            gw = (boxes[j][2] - boxes[j][0] + 1) / bw if j is not None else float("nan")
            widths[t].append((n, bw, float(m[i, j]) if j is not None else 0.0, gw))
        if late:
            inside = [k for k, b in enumerate(boxes) if b[0] >= 0 and b[1] >= 0 and b[2] <= w and b[3] <= h]
            drawn += len(inside)
            near = m.max(axis=0) if len(truth) else np.zeros(len(boxes))
            also = [xyxy(b) for b in (closer or {}).get(n, [])]
            seen = iou_matrix(also, boxes).max(axis=0) if also and boxes else np.zeros(len(boxes))
            off += sum(1 for k in inside if near[k] < OFF_FACE_IOU and seen[k] < OFF_FACE_IOU)
            unref += sum(1 for k in inside if near[k] < OFF_FACE_IOU <= seen[k])
    # tracks of one reference box (a passing false positive, or a face the reference lost) left out
    length = Counter(t for ts in tracks.values() for t in ts)
    first40 = {t: f for t, f in first40.items() if length[t] >= 2}
    ids = {t: v for t, v in ids.items() if length[t] >= 2}
    waits_start = [(boxed.get(t, -1) - f) / fps for t, f in first40.items() if f == min(ref)]
    waits_new = [(boxed[t] - f) / fps for t, f in first40.items() if f > min(ref) and t in boxed]
    nearer_iou, nearer_ratio = [], []
    for seq in widths.values():
        if len(seq) >= 4 and max(s[1] for s in seq) >= NEARER * seq[0][1] and seq[-1][1] > seq[0][1]:
            for _, _, iou, ratio in seq[len(seq) // 2 :]:
                nearer_iou.append(iou)
                if ratio == ratio:
                    nearer_ratio.append(ratio)
    return {
        "recall_ge40": _ratio(found["ge40"]),
        "recall_ge24": _ratio(found["ge24"]),
        "recall_ge40_from_0s": _ratio(found["ge40_all"]),
        "faces_ge40": found["ge40"][1],
        "boxes_off_face": round(off / drawn, 4) if drawn else None,
        "boxes_drawn": drawn,
        "boxes_on_unreferenced_faces": unref,
        "first_box_s_start": _pcts([x for x in waits_start if x >= 0]),
        "first_box_s_new": _pcts(waits_new),
        "tracks_ge40": len(first40),
        "tracks_never_boxed": sum(1 for t in first40 if t not in boxed),
        "ids_per_track": round(float(np.mean([len(v) for v in ids.values()])), 3) if ids else None,
        "nearer_iou": round(float(np.mean(nearer_iou)), 3) if nearer_iou else None,
        "nearer_width_ratio": round(float(np.median(nearer_ratio)), 3) if nearer_ratio else None,
        "label_changes_per_track": _label_changes(lines, {i for v in ids.values() for i in v}),
        "frames_published": round(len(shown) / max(1, max(shown, default=0) + 1), 3),
        "output_fps": _fps(lines),
    }


def _label_changes(lines: list[dict[str, Any]], tracks: set[int]) -> float | None:
    """Mean changes of a shown label (any classifier, '?' not counted) per drawn track in ``tracks``."""
    last: dict[tuple[int, str], str] = {}
    changes: dict[int, int] = defaultdict(int)
    for d in lines:
        for f in d["faces"]:
            t = f.get("track")
            if t is None or int(t) not in tracks:
                continue
            for name, lab in (f.get("labels") or {}).items():
                v = lab["label"] if isinstance(lab, dict) else str(lab)
                if v.endswith("?"):
                    continue
                key = (int(t), name)
                changes[int(t)] += int(key in last and last[key] != v)
                last[key] = v
    return round(sum(changes.values()) / len(tracks), 3) if tracks else None


def _fps(lines: list[dict[str, Any]]) -> float | None:
    times = [float(d["time_s"]) for d in lines if "time_s" in d]
    span = max(times) - min(times) if len(times) > 1 else 0.0
    return round((len(times) - 1) / span, 2) if span > 0 else None
