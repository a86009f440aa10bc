"""Recognition and grouping on a real clip (issue #33).

``python -m benchmarks people-clip --clip ../shared/media/real/mfarayola-faces.mp4 --enroll-at 1.0
--from 5.0 --out DIR``: the faces of the frame at ``--enroll-at`` s are enrolled (one photo each,
named ``p1``, ``p2``... left to right), then the live face stage (tracker, evidence, the service's
classifiers and their descriptors; the detector on every ``--every``-th frame, in-process) runs
over the clip from ``--from`` s on, another part of it: for every track, how long after it started
its name showed, and which. Then the unknown clusters: the whole clip again with an empty library
(every track unknown), each ended track's mean descriptor grouped as the service does; each
cluster's tracks are compared with the names the first run gave them (the reference).

``--clusters-only``: the unknown run alone, scored against who each track is by eye (``--labels``,
files in ``benchmarks/people_clip_labels/``, written from the ``--sheet`` of crops, by time and
place: ``benchmarks.people_labels``; tracks no label matches are listed): tracks left
out, clusters, clusters mixing people, each person's share of tracks in their biggest cluster, and
the pairs of tracks labelled one person that the detector found on the same frames (a label to
check again).

Writes ``people_clip.json`` and ``.md`` (figures only; no frames: the clips' licences are unknown).
"""

from __future__ import annotations

import argparse
import json
from collections import Counter, defaultdict
from pathlib import Path

import cv2
import numpy as np

from benchmarks.people_cluster_variants import LooksRecorder
from benchmarks.people_labels import Labels, labels_of
from benchmarks.report import input_file, results_dir
from streamer.classify import UNCERTAIN
from streamer.config import load_config
from streamer.inference.engine import Engine, engine_spec
from streamer.people.clusters import APART, Clusters
from streamer.people.faces import FaceFinder
from streamer.people.match import UNKNOWN, Gallery, MatchRule, load_backend, load_cohort
from streamer.people.recognize import PERSON, StageRecognizer
from streamer.pipeline.planner import planner_for
from streamer.pipeline.tracking import FaceStage, between_for, rule_for
from streamer.types import Detections, Frame


def frames(clip: Path, start_s: float = 0.0):
    cap = cv2.VideoCapture(str(clip))
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    cap.set(cv2.CAP_PROP_POS_MSEC, start_s * 1000)
    i = 0
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        yield start_s + i / fps, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        i += 1
    cap.release()


def enroll(clip: Path, at: float, finder: FaceFinder) -> list[tuple[str, np.ndarray, list[int]]]:
    _, im = next(frames(clip, at))
    boxes = sorted(finder.boxes(im), key=lambda b: b.left)
    ds = finder.describe(im, boxes)
    return [
        (f"p{k + 1}", d, [b.left, b.top, b.right, b.bottom])
        for k, (b, d) in enumerate(zip(boxes, ds, strict=True))
    ]


def run(
    config,
    engine,
    clip: Path,
    start: float,
    every: int,
    rec: StageRecognizer,
    end: float = 1e9,
    crops: dict | None = None,
):
    """Per track: first seen, when its name first showed, the names shown (frame counts)."""
    p = config.pipeline
    stage = FaceStage("clip", every, rule=rule_for(p), planner=planner_for(p), between=between_for(p))
    stage.people = rec
    tracks: dict[int, dict] = {}
    for n, (t, rgb) in enumerate(frames(clip, start)):
        if t > end:
            break
        frame = Frame("clip", n, rgb, t)
        due = stage.due(n)
        regions = stage.prepare(frame, due)
        if due:
            (res,), _ = engine.run([rgb], [stage.skip_boxes()], [regions])
            stage.on_detections(Detections("clip", n, t, res.faces, regions))
        done = stage.finish(frame, draw=False)
        for tr in stage.tracker.tracks:
            d = tracks.setdefault(
                tr.id, {"first_seen": tr.first_seen, "named_at": None, "names": Counter(), "x": []}
            )
            d["last"] = t
            d["x"].append(float(tr.box[0] + tr.box[2]) / 2)
            if tr.last_hit == t:  # (where the detector found it: the labels' anchors are time and place)
                d.setdefault("at", {})[t] = [float(v) for v in tr.box]
            if crops is not None and len(d["x"]) in (8, 20, 40):  # (for labelling by eye; never saved)
                b = tr.as_box()
                crop = rgb[max(0, b.top) : b.bottom + 1, max(0, b.left) : b.right + 1]
                if crop.size:
                    crops.setdefault(tr.id, []).append(cv2.resize(crop, (96, 96)))
            lab = next((lb.label for lb in tr.labels() if lb.classifier == PERSON), UNCERTAIN)
            d["names"][lab] += 1
            if lab not in (UNKNOWN, UNCERTAIN) and d["named_at"] is None:
                d["named_at"], d["first_name"] = t, lab
        del done
    stage.close(t)
    return tracks


def score(seq: list[tuple[int, np.ndarray, int, float, frozenset]], cfg, labels: dict[int, str]) -> dict:
    """Group the unknown tracks ``seq`` (track, mean descriptor, looks, median face height, detection
    times; in the order they ended) as the service does, and score the grouping against ``labels`` (track ->
    person, by eye; tracks not labelled count as tracks but not as anyone)."""
    clusters = Clusters(None, cfg.cluster_distance, cfg.cluster_min_looks, cfg.cluster_min_face_px)
    joined: dict[int, int] = {}
    out = 0
    for t, d, looks, h, hits in seq:
        cid = clusters.add("clip", t, d, looks, h, hits)
        if cid is None:
            out += 1
        else:
            joined[t] = cid  # (a track id the tracker gave twice counts once, its last)
    by_cluster: dict[int, list[str]] = defaultdict(list)
    named: dict[int, list[str]] = defaultdict(list)
    by_person: dict[str, Counter] = defaultdict(Counter)
    for t, cid in joined.items():
        by_cluster[cid].append(labels.get(t, "?"))
        named[cid].append(f"t{t}: {labels.get(t, '?')}")
        if t in labels:
            by_person[labels[t]][cid] += 1
    mixed = sorted(k for k, v in by_cluster.items() if len(set(v) - {"?"}) > 1)
    # (two tracks found on the same frames are two people: labelled one person, a label is wrong)
    hits = {t: h for t, _, _, _, h in seq}
    pairs = [(a, b) for a in hits for b in hits if a < b and a in labels and b in labels]
    together = {(a, b) for a, b in pairs if len(hits[a] & hits[b]) >= APART}
    doubt = sorted([a, b] for a, b in together if labels[a] == labels[b])
    apart = [(a, b) for a, b in pairs if labels[a] != labels[b]]
    people = Counter(labels[t] for t in {t for t, *_ in seq} if t in labels)
    return {
        "unknown_tracks": len(seq),
        "left_out": out,
        "clusters": len(by_cluster),
        "clusters_mixing_people": len(mixed),
        "share_of_clusters_mixing": round(len(mixed) / max(1, len(by_cluster)), 3),
        # (of each person's tracks that were grouped: the share in their biggest cluster)
        "share_in_largest_cluster": {
            p: round(max(c.values()) / sum(c.values()), 3) for p, c in sorted(by_person.items())
        },
        "tracks_of_person": dict(sorted(people.items())),
        "left_out_of_person": {p: n - sum(by_person[p].values()) for p, n in sorted(people.items())},
        "labelled_one_person_but_seen_together": doubt,
        # (pairs of tracks of two people: all, and those found on the same frames: cannot-link)
        "pairs_of_two_people": len(apart),
        "pairs_of_two_people_seen_together": sum(1 for p in apart if p in together),
        "cluster_of_track": joined,
        "members": dict(sorted(named.items())),
    }


def clusters_only(config, clip: Path, every: int, sheet: str, out: Path, labels: str, tracks_npz: str) -> int:
    """The unknown run alone: which cluster each track joined, the tracks' mean descriptors' distances,
    and (``sheet``, a path outside the repository) a contact sheet of crops per track, to label the
    people by eye (``labels``: a JSON file, person -> anchors, ``benchmarks.people_labels``).
    ``tracks_npz`` (outside the repository): where the unknown tracks are saved, or read from when
    it exists (no video run)."""
    cfg = config.people
    crops: dict[int, list[np.ndarray]] = {}
    if tracks_npz and Path(tracks_npz).exists():
        z = np.load(tracks_npz)
        hit_of = defaultdict(set)  # (files written before the detection times were kept: none)
        for t, hit in zip(z.get("hit_track", []), z.get("hit", []), strict=True):
            hit_of[int(t)].add(float(hit))
        seq = [
            (int(t), d, int(n), float(h), frozenset(hit_of[int(t)]))
            for t, d, n, h in zip(z["ids"], z["d"], z["looks"], z["h"], strict=True)
        ]
        frames_of = {int(t): int(f) for t, f in zip(z["ids"], z["frames"], strict=True)}
        saved = z
    else:
        engine = Engine(engine_spec(config))
        seq: list[tuple[int, np.ndarray, int, float, frozenset]] = []
        empty = Gallery()
        rec = LooksRecorder(  # (the service's recognizer, keeping each track's looks too)
            lambda: empty,
            MatchRule(),
            on_unknown=lambda *a: seq.append(a),
            min_frontal=cfg.cluster_min_frontal,
        )
        tracks = run(config, engine, clip, 0.0, every, rec, crops=crops)
        frames_of = {t: len(tracks[t]["x"]) for t, *_ in seq}
        assert len(rec.looks) == len(seq)
        saved = dict(
            ids=np.array([s[0] for s in seq]),
            d=np.stack([s[1] for s in seq]),
            looks=np.array([s[2] for s in seq]),
            h=np.array([s[3] for s in seq]),
            frames=np.array([frames_of[s[0]] for s in seq]),
            hit_track=np.array([s[0] for s in seq for _ in s[4]], dtype=np.int64),
            hit=np.array([x for s in seq for x in sorted(s[4])], dtype=np.float64),
            # (the track's box at each of those times, x0, y0, x1, y1: the labels' places)
            hit_box=np.array(
                [tracks[s[0]].get("at", {}).get(x, [np.nan] * 4) for s in seq for x in sorted(s[4])],
                dtype=np.float64,
            ).reshape(-1, 4),
            # (every look kept: its track's place in ``ids``, descriptor, face height, frontalness)
            look_seq=np.concatenate([np.full(len(lk[0]), k) for k, lk in enumerate(rec.looks)]),
            **{f"look_{n}": np.concatenate([lk[i] for lk in rec.looks]) for i, n in enumerate("dhf")},
        )
        if tracks_npz:
            np.savez(tracks_npz, **saved)
    found = labels_of(labels, saved) if labels else Labels()  # (who each track is: time and place)
    truth = found.truth
    res = {
        "clip": clip.name,
        "every": every,
        "cluster_distance": cfg.cluster_distance,
        "cluster_min_looks": cfg.cluster_min_looks,
        "cluster_min_face_px": cfg.cluster_min_face_px,
        "cluster_min_frontal": cfg.cluster_min_frontal,
        "labelled_by_eye": bool(truth),
        "tracks": {t: {"frames": frames_of[t], "looks": n, "face_px": round(h)} for t, _, n, h, _ in seq},
        **score(seq, cfg, truth),
        "unlabelled_tracks": [t for t, *_ in seq if t not in truth] if labels else [],
        "anchors_matching_no_track": found.unmatched,
    }
    if sheet and crops:
        tiles = []
        for t, cid in sorted(res["cluster_of_track"].items(), key=lambda x: (x[1], x[0])):
            for c in crops.get(t, [])[:3]:
                im = cv2.copyMakeBorder(
                    cv2.cvtColor(c, cv2.COLOR_RGB2BGR),
                    18,
                    0,
                    0,
                    2,
                    cv2.BORDER_CONSTANT,
                    value=(255, 255, 255),
                )
                cv2.putText(im, f"t{t} c{cid}", (2, 14), 0, 0.45, (0, 0, 255), 1)
                tiles.append(im)
        if tiles:
            tiles += [np.full_like(tiles[0], 255)] * (-len(tiles) % 9)
            cv2.imwrite(sheet, np.vstack([np.hstack(tiles[i : i + 9]) for i in range(0, len(tiles), 9)]))
    out.mkdir(parents=True, exist_ok=True)
    (out / f"people_clusters_{clip.stem}.json").write_text(json.dumps(res, indent=1))
    print(json.dumps({k: v for k, v in res.items() if k not in ("tracks", "cluster_of_track")}, indent=1))
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks people-clip", description=__doc__.splitlines()[0])
    ap.add_argument("--clip", type=input_file, required=True)
    ap.add_argument("--enroll-at", type=float, default=1.0)
    ap.add_argument("--from", dest="start", type=float, default=5.0)
    ap.add_argument("--every", type=int, default=2, help="detect on every Nth frame")
    ap.add_argument(
        "--out", type=results_dir, default="benchmarks/results/people-clips", help="results folder"
    )
    ap.add_argument(
        "--truth",
        choices=("position", "recognition"),
        default="recognition",
        help="who a track is: 'position', the enrolled face nearest its mean centre (people who stay "
        "put, as in mfarayola-faces: checked by looking at frames), or the library run's names",
    )
    ap.add_argument("--clusters-only", action="store_true", help="only the unknown clusters (see --sheet)")
    ap.add_argument(
        "--labels",
        type=input_file,
        default="",
        help="with --clusters-only: JSON, person -> anchors [time_s, cx, cy], one a track labelled by "
        "eye (benchmarks/people_labels.py)",
    )
    ap.add_argument(
        "--tracks",
        default="",
        help="with --clusters-only: an .npz of the unknown tracks, written by the video run, or read "
        "(when it exists) to group them again without the video",
    )
    ap.add_argument(
        "--sheet",
        default="",
        help="with --clusters-only: a PNG of one crop per track (keep it "
        "out of the repository: the clips' licences are unknown)",
    )
    a = ap.parse_args(argv)
    config = load_config(None, {"demo": {"enabled": False}}, environ={}, shipped_models=True)
    if a.clusters_only:
        return clusters_only(config, Path(a.clip), a.every, a.sheet, Path(a.out), a.labels, a.tracks)
    cfg = config.people
    rule = cfg.match_rule()
    clip = Path(a.clip)
    finder = FaceFinder.from_config(config)
    enrolled = enroll(clip, a.enroll_at, finder)
    gallery = Gallery(
        [(n, d) for n, d, _ in enrolled],
        cohort=load_cohort(cfg.cohort, cfg.cohort_k),
        backend=load_backend(cfg.backend),
    )
    engine = Engine(engine_spec(config))
    tracks = run(config, engine, clip, a.start, a.every, StageRecognizer(lambda: gallery, rule))
    centres = [((b[0] + b[2]) / 2, n) for n, _, b in enrolled]

    def truth(d: dict) -> str:
        x = float(np.mean(d["x"]))
        return min(centres, key=lambda c: abs(c[0] - x))[1]

    rows = []
    for tid, d in sorted(tracks.items()):
        named = [(n, c) for n, c in d["names"].most_common() if n not in (UNKNOWN, UNCERTAIN)]
        frames_seen = sum(d["names"].values())
        rows.append(
            {
                "track": tid,
                "first_seen": round(d["first_seen"], 2),
                "frames": frames_seen,
                "name": named[0][0] if named else None,
                "names": dict(d["names"]),
                "named_after_s": None if d["named_at"] is None else round(d["named_at"] - d["first_seen"], 2),
                "truth": truth(d) if a.truth == "position" else None,
            }
        )
    # clustering: the whole clip, nobody enrolled
    clusters = Clusters(None, cfg.cluster_distance, cfg.cluster_min_looks, cfg.cluster_min_face_px)
    joined: dict[int, int] = {}

    def on_unknown(track: int, d: np.ndarray, looks: int, face_px: float, hits: frozenset) -> None:
        cid = clusters.add("clip", track, d, looks, face_px, hits)
        if cid is not None:
            joined[track] = cid

    empty = Gallery()
    ref_rec = StageRecognizer(lambda: gallery, rule)
    ref = run(config, engine, clip, 0.0, a.every, ref_rec)  # reference names for the whole clip
    unk = run(
        config,
        engine,
        clip,
        0.0,
        a.every,
        StageRecognizer(lambda: empty, rule, on_unknown=on_unknown, min_frontal=cfg.cluster_min_frontal),
    )
    del unk
    ref_name = {}
    for tid, d in ref.items():
        named = [n for n, _ in d["names"].most_common() if n not in (UNKNOWN, UNCERTAIN)]
        ref_name[tid] = truth(d) if a.truth == "position" else (named[0] if named else None)
    by_cluster: dict[int, list[str]] = defaultdict(list)
    by_person: dict[str, Counter] = defaultdict(Counter)
    for tid, cid in joined.items():
        who = ref_name.get(tid)
        if who is None:
            continue
        by_cluster[cid].append(who)
        by_person[who][cid] += 1
    mixed = sum(1 for v in by_cluster.values() if len(set(v)) > 1)
    long = [r for r in rows if r["frames"] >= 30]  # (tracks of a second or more)
    res = {
        "clip": clip.name,
        "tracks_1s": len(long),
        "named_within_1s": sum(
            1 for r in long if r["named_after_s"] is not None and r["named_after_s"] <= 1.0
        ),
        "named_correctly": sum(1 for r in long if r["truth"] and r["name"] == r["truth"]),
        "enroll_at": a.enroll_at,
        "from": a.start,
        "every": a.every,
        "enrolled": [{"name": n, "box": b} for n, _, b in enrolled],
        "tracks": rows,
        "clusters": {str(k): v for k, v in by_cluster.items()},
        "unknown_tracks_clustered": len(joined),
        "clusters_mixing_people": mixed,
        "clusters_with_reference": len(by_cluster),
        "share_in_largest_cluster": {p: max(c.values()) / sum(c.values()) for p, c in by_person.items()},
    }
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"people_clip_{clip.stem}.json").write_text(json.dumps(res, indent=2))
    print(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
