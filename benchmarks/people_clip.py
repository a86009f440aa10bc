"""Recognition and grouping on a real clip (issue #33).

``python -m benchmarks people-clip --clip ../shared/media/real/mfarayola-faces.mp4 --enroll-at 1.0
--from 5.0 --out DIR``: the faces of the frame at ``--enroll-at`` s are enrolled (one photo each,
named ``p1``, ``p2``... left to right), then the live face stage (tracker, evidence, the service's
classifiers and their descriptors; the detector on every ``--every``-th frame, in-process) runs
over the clip from ``--from`` s on, another part of it: for every track, how long after it started
its name showed, and which. Then the unknown clusters: the whole clip again with an empty library
(every track unknown), each ended track's mean descriptor grouped as the service does; each
cluster's tracks are compared with the names the first run gave them (the reference).

Writes ``people_clip.json`` and ``.md`` (figures only; no frames: the clips' licences are unknown).
"""

from __future__ import annotations

import argparse
import json
from collections import Counter, defaultdict
from pathlib import Path

import cv2
import numpy as np

from streamer.classify import UNCERTAIN
from streamer.config import load_config
from streamer.inference.engine import Engine, engine_spec
from streamer.people.clusters import Clusters
from streamer.people.faces import FaceFinder
from streamer.people.match import UNKNOWN, Gallery, MatchRule
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
            d["x"].append(float(tr.box[0] + tr.box[2]) / 2)
            if crops is not None and len(d["x"]) == 8:  # (for labelling by eye; never saved with results)
                b = tr.as_box()
                crops[tr.id] = rgb[max(0, b.top) : b.bottom + 1, max(0, b.left) : b.right + 1].copy()
            lab = next((lb.label for lb in tr.labels() if lb.classifier == PERSON), UNCERTAIN)
            d["names"][lab] += 1
            if lab not in (UNKNOWN, UNCERTAIN) and d["named_at"] is None:
                d["named_at"] = t
        del done
    stage.close(t)
    return tracks


def clusters_only(config, clip: Path, every: int, sheet: str, out: Path) -> int:
    """The unknown run alone: which cluster each track joined, the tracks' mean descriptors' distances,
    and (``sheet``, a path outside the repository) a contact sheet of one crop per track, to label
    the people by eye."""
    cfg = config.people
    engine = Engine(engine_spec(config))
    clusters = Clusters(None, cfg.cluster_distance, cfg.cluster_min_looks)
    joined: dict[int, int] = {}
    means: dict[int, np.ndarray] = {}

    def on_unknown(track: int, d: np.ndarray, looks: int) -> None:
        means[track] = d
        cid = clusters.add("clip", track, d, looks)
        if cid is not None:
            joined[track] = cid

    crops: dict[int, np.ndarray] = {}
    empty = Gallery()
    rec = StageRecognizer(lambda: empty, MatchRule(), on_unknown=on_unknown)
    tracks = run(config, engine, clip, 0.0, every, rec, crops=crops)
    ids = sorted(means)
    res = {
        "clip": clip.name,
        "every": every,
        "cluster_distance": cfg.cluster_distance,
        "tracks": {
            t: {"first_seen": round(d["first_seen"], 2), "frames": len(d["x"])} for t, d in tracks.items()
        },
        "cluster_of_track": joined,
        "distances": {a: {b: round(float(np.linalg.norm(means[a] - means[b])), 3) for b in ids} for a in ids},
    }
    if sheet:
        tiles = []
        for t, cid in sorted(joined.items(), key=lambda x: (x[1], x[0])):
            c = crops.get(t)
            if c is None or not c.size:
                continue
            im = cv2.copyMakeBorder(
                cv2.resize(cv2.cvtColor(c, cv2.COLOR_RGB2BGR), (96, 96)),
                18,
                0,
                0,
                0,
                cv2.BORDER_CONSTANT,
                value=(255, 255, 255),
            )
            cv2.putText(im, f"t{t} c{cid}", (2, 14), 0, 0.45, (0, 0, 255), 1)
            tiles.append(im)
        if tiles:
            tiles += [np.full_like(tiles[0], 255)] * (-len(tiles) % 8)
            cv2.imwrite(sheet, np.vstack([np.hstack(tiles[i : i + 8]) for i in range(0, len(tiles), 8)]))
    out.mkdir(parents=True, exist_ok=True)
    (out / f"people_clusters_{clip.stem}.json").write_text(json.dumps(res, indent=1))
    print(json.dumps({k: v for k, v in res.items() if k != "distances"}, indent=1))
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks people-clip", description=__doc__.splitlines()[0])
    ap.add_argument("--clip", required=True)
    ap.add_argument("--enroll-at", type=float, default=1.0)
    ap.add_argument("--from", dest="start", type=float, default=5.0)
    ap.add_argument("--every", type=int, default=2, help="detect on every Nth frame")
    ap.add_argument("--out", default="benchmarks/results/people-clips", help="results folder")
    ap.add_argument(
        "--truth",
        choices=("position", "recognition"),
        default="recognition",
        help="who a track is: 'position', the enrolled face nearest its mean centre (people who stay "
        "put, as in mfarayola-faces: checked by looking at frames), or the library run's names",
    )
    ap.add_argument("--clusters-only", action="store_true", help="only the unknown clusters (see --sheet)")
    ap.add_argument(
        "--sheet",
        default="",
        help="with --clusters-only: a PNG of one crop per track (keep it "
        "out of the repository: the clips' licences are unknown)",
    )
    a = ap.parse_args(argv)
    config = load_config(None, {"demo": {"enabled": False}}, environ={}, shipped_models=True)
    if a.clusters_only:
        return clusters_only(config, Path(a.clip), a.every, a.sheet, Path(a.out))
    cfg = config.people
    rule = MatchRule(cfg.known_distance, cfg.unknown_distance, cfg.margin)
    clip = Path(a.clip)
    finder = FaceFinder.from_config(config)
    enrolled = enroll(clip, a.enroll_at, finder)
    gallery = Gallery([(n, d) for n, d, _ in enrolled])
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
    clusters = Clusters(None, cfg.cluster_distance, cfg.cluster_min_looks)
    joined: dict[int, int] = {}

    def on_unknown(track: int, d: np.ndarray, looks: int) -> None:
        cid = clusters.add("clip", track, d, looks)
        if cid is not None:
            joined[track] = cid

    empty = Gallery()
    ref_rec = StageRecognizer(lambda: gallery, rule)
    ref = run(config, engine, clip, 0.0, a.every, ref_rec)  # reference names for the whole clip
    unk = run(config, engine, clip, 0.0, a.every, StageRecognizer(lambda: empty, rule, on_unknown=on_unknown))
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
