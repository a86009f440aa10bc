"""People named on a real clip, each enrolled from one frame of another part of it (issue #33).

``python -m benchmarks people-named --clip ../shared/media/real/CLIP.mp4 --labels
benchmarks/people_clip_labels/CLIP.json --out DIR``: who each track is comes from the labels by
eye (time and place, :mod:`benchmarks.people_labels`). A first run with nobody enrolled gives each
person's tracks; each person is enrolled from one frame, as a photo upload is (the face found on
the whole frame, its descriptor and its mirror image's averaged): their biggest face at least 3 s
into its track. Then the live face stage (tracker, evidence, the service's classifiers and
descriptors, the library's rule; the detector on every ``--every``-th frame, in-process) runs over
the whole clip with everyone enrolled. Every labelled track of a second or more is scored (the
photo's own track only when the photo is 3 s or more into it: its first second is then another
part of the clip): named right within 1 s of the track's start, right later, wrong (another
enrolled person's name shown on it at any time), or never named. The goal (#33): named within 1 s.

``--strangers``: every second person is left out of the library; their tracks must stay unnamed.
Writes ``people_named_CLIP.json`` and ``.md`` (``people_named_CLIP_strangers.*``; figures only, no
frames: the clips' licences are unknown).
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

import cv2
import numpy as np

from benchmarks.people_clip import frames, run
from benchmarks.people_labels import load, match, places
from benchmarks.report import input_file, results_dir
from streamer.classify import UNCERTAIN
from streamer.config import load_config
from streamer.history.pose import frontalness
from streamer.inference.engine import Engine, engine_spec
from streamer.people.faces import ENROL_MIRRORED, FaceFinder
from streamer.people.match import UNKNOWN, Gallery, load_backend, load_cohort
from streamer.people.recognize import StageRecognizer
from streamer.track.matching import iou

WITHIN_S = 1.0  # (the goal: named within this of the track's start)
# (the photo's own track is scored when the photo was cut this long after the track started: its
# first second is then another part of the clip; one-track people are scored so)
OWN_TRACK_AFTER_S = 3.0
PHOTO_CANDIDATES = 12  # (the biggest faces of a person's detections looked at for their photo)
PHOTO_SIZE = 0.8  # (of the biggest one's height: a candidate at least this big)


def photo(clip: Path, tracks: dict[int, dict], mine: list[int], finder: FaceFinder) -> dict | None:
    """The person's enrolment photo, from a run with nobody enrolled: among the detections of
    their tracks ``mine`` at least ``OWN_TRACK_AFTER_S`` into their track (else all of them), the
    most frontal of the biggest faces (the ``PHOTO_CANDIDATES`` biggest, each at least
    ``PHOTO_SIZE`` of the biggest one's height), as a user picks a clear photo: the biggest alone
    can be a zoom or a wipe between shots with half the face covered (the meeting's young man at
    28.2 s). Cut from its frame as an upload would be (the face the detector finds there on the
    whole frame, its descriptor and its mirror image's averaged)."""
    seen = [(t, when, box) for t in mine for when, box in tracks[t].get("at", {}).items()]
    later = [x for x in seen if x[1] - tracks[x[0]]["first_seen"] >= OWN_TRACK_AFTER_S]
    pool = sorted(later or seen, key=lambda x: x[2][1] - x[2][3])  # (biggest first)
    if not pool:
        return None
    top = pool[0][2][3] - pool[0][2][1]
    out = []
    for k, (t, when, box) in enumerate(pool):  # (down the list until one is found, if need be)
        if out and (k >= PHOTO_CANDIDATES or box[3] - box[1] < PHOTO_SIZE * top):
            break
        _, im = next(frames(clip, when))
        found = [(iou(box, (b.left, b.top, b.right, b.bottom)), b) for b in finder.boxes(im)]
        best = max(found, key=lambda x: x[0], default=(0.0, None))
        if best[0] >= 0.5:
            b = best[1]
            f = frontalness(im, (b.left, b.top, b.right, b.bottom))
            out.append((f, t, when, b, im))
    if not out:
        return None
    f, t, when, b, im = max(out, key=lambda x: x[0])
    d = finder.describe(im, [b], mirrored=ENROL_MIRRORED)[0]
    return {
        "track": t,
        "at_s": round(when, 3),
        "face_px": int(b.height),
        "frontal": round(f, 2),
        "descriptor": d,
    }


def labelled(tracks: dict[int, dict], anchors: dict[str, np.ndarray]):
    """Who each of a run's tracks is, by the labels' times and places."""
    z = {"hit_track": [], "hit": [], "hit_box": []}
    for t, d in tracks.items():
        for when, box in sorted(d.get("at", {}).items()):
            z["hit_track"].append(t)
            z["hit"].append(when)
            z["hit_box"].append(box)
    return match(places(z), anchors)


def outcome(d: dict, person: str) -> str:
    """A track's outcome: ``within`` (its first name is the person's, within 1 s), ``later``,
    ``wrong`` (another name shown on it at some time) or ``never``."""
    names = {n for n in d["names"] if n not in (UNKNOWN, UNCERTAIN)}
    if names - {person}:
        return "wrong"
    if d["named_at"] is None:
        return "never"
    return "within" if d["named_at"] - d["first_seen"] <= WITHIN_S else "later"


def score(
    tracks: dict[int, dict], anchors: dict[str, np.ndarray], enrolled: dict[str, dict], strangers=frozenset()
) -> dict:
    """Per person and in all: the labelled tracks of a second or more, by outcome (the photo's own
    track too when the photo is ``OWN_TRACK_AFTER_S`` or more into it)."""
    found = labelled(tracks, anchors)
    per: dict[str, Counter] = {p: Counter() for p in anchors}
    rows = []
    for t, person in found.truth.items():
        d = tracks[t]
        e = enrolled.get(person)
        if d["last"] - d["first_seen"] < WITHIN_S:
            continue
        if person in strangers:  # (never enrolled: any name shown on them is wrong)
            named = {n for n in d["names"] if n not in (UNKNOWN, UNCERTAIN)}
            per[person]["stranger_named" if named else "stranger_not_named"] += 1
            rows.append({"track": t, "person": person, "stranger": True, "names": dict(d["names"])})
            continue
        if e is None:
            continue
        own = d["first_seen"] - 1e-6 <= e["at_s"] <= d["last"] + 1e-6
        if own and e["at_s"] - d["first_seen"] < OWN_TRACK_AFTER_S:
            per[person]["photo_track_not_scored"] += 1  # (the photo is from its first seconds)
            continue
        o = outcome(d, person)
        per[person][o] += 1
        if own:
            per[person][f"own_{o}"] += 1
        rows.append(
            {
                "track": t,
                "person": person,
                "first_seen": round(d["first_seen"], 2),
                "seconds": round(d["last"] - d["first_seen"], 2),
                "outcome": o,
                "photo_from_this_track": own,
                "named_after_s": None if d["named_at"] is None else round(d["named_at"] - d["first_seen"], 2),
                "names": {k: v for k, v in d["names"].items()},
            }
        )
    total = Counter()
    for c in per.values():
        total.update(c)
    scored = sum(total[k] for k in ("within", "later", "wrong", "never"))
    return {
        "tracks_scored": scored,
        "named_within_1s": total["within"],
        "share_named_within_1s": round(total["within"] / max(1, scored), 3),
        "of_them_photo_tracks": sum(total[f"own_{k}"] for k in ("within", "later", "wrong", "never")),
        "photo_tracks_named_within_1s": total["own_within"],
        "named_later": total["later"],
        "named_wrongly": total["wrong"],
        "stranger_tracks": total["stranger_named"] + total["stranger_not_named"],
        "stranger_tracks_named": total["stranger_named"],
        "never_named": total["never"],
        "per_person": {p: dict(c) for p, c in per.items()},
        "tracks": rows,
        "unlabelled_tracks": len(found.unlabelled),
        "anchors_matching_no_track": found.unmatched,
    }


def table(res: dict) -> str:
    out = [
        f"# People named on {res['clip']} (each enrolled from one frame)",
        "",
        f"`python -m benchmarks people-named --clip CLIP --labels {res['labels']} --every {res['every']}"
        f"{' --strangers' if res['strangers'] else ''}`; "
        f"labelled tracks of {WITHIN_S:g} s or more; the track each photo was cut from is scored only "
        f"when the photo is {OWN_TRACK_AFTER_S:g} s or more after its start "
        f"({res['of_them_photo_tracks']} such tracks, "
        f"{res['photo_tracks_named_within_1s']} named within 1 s).",
        "",
        "| person | photo at (s) | face px | tracks | named within 1 s | later | wrongly | never |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for p, c in res["per_person"].items():
        e = res["enrolled"].get(p)
        n = sum(c.get(k, 0) for k in ("within", "later", "wrong", "never"))
        at, px = (f"{e['at_s']:.1f}", e["face_px"]) if e else ("not enrolled", "")
        if p in res["strangers"]:
            k = c.get("stranger_named", 0) + c.get("stranger_not_named", 0)
            out.append(f"| {p} | not enrolled | | {k} | stranger: {c.get('stranger_named', 0)} named | | | |")
            continue
        out.append(
            f"| {p} | {at} | {px} | {n} | {c.get('within', 0)} | {c.get('later', 0)} | "
            f"{c.get('wrong', 0)} | {c.get('never', 0)} |"
        )
    out.append(
        f"| **all** | | | {res['tracks_scored']} | {res['named_within_1s']} "
        f"({100 * res['share_named_within_1s']:.0f} %) | {res['named_later']} | {res['named_wrongly']} | "
        f"{res['never_named']} |"
    )
    if res["strangers"]:
        out.append(
            f"| **strangers** | | | {res['stranger_tracks']} | {res['stranger_tracks_named']} named "
            "as someone | | | |"
        )
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks people-named", description=__doc__.splitlines()[0]
    )
    ap.add_argument("--clip", type=input_file, required=True)
    ap.add_argument(
        "--labels",
        type=input_file,
        required=True,
        help="JSON, person -> anchors [time_s, cx, cy] (people_labels)",
    )
    ap.add_argument("--every", type=int, default=3, help="detect on every Nth frame")
    ap.add_argument(
        "--strangers",
        action="store_true",
        help="leave every second person (in the labels' order) out of the library: their tracks must "
        "stay unnamed",
    )
    ap.add_argument(
        "--out", type=results_dir, default="benchmarks/results/people-clips", help="results folder"
    )
    a = ap.parse_args(argv)
    config = load_config(None, {"demo": {"enabled": False}}, environ={}, shipped_models=True)
    cfg = config.people
    clip = Path(a.clip)
    anchors = load(a.labels)
    finder = FaceFinder.from_config(config)
    engine = Engine(engine_spec(config))
    rule = cfg.match_rule()
    # (a first run with nobody enrolled: each person's tracks, to cut their photo from)
    empty = Gallery()
    first = run(config, engine, clip, 0.0, a.every, StageRecognizer(lambda: empty, rule))
    theirs: dict[str, list[int]] = {p: [] for p in anchors}
    for t, person in labelled(first, anchors).truth.items():
        theirs[person].append(t)
    strangers = set(list(anchors)[1::2]) if a.strangers else set()
    enrolled = {
        p: e
        for p, mine in theirs.items()
        if p not in strangers and (e := photo(clip, first, mine, finder)) is not None
    }
    gallery = Gallery(
        [(p, e["descriptor"]) for p, e in enrolled.items()],
        cohort=load_cohort(cfg.cohort, cfg.cohort_k),
        backend=load_backend(cfg.backend),
    )
    rec = StageRecognizer(
        lambda: gallery, rule, cfg.min_face_px, min_frontal=cfg.cluster_min_frontal, learned=cfg.learned()
    )
    tracks = run(config, engine, clip, 0.0, a.every, rec)
    res = {
        "clip": clip.name,
        "labels": a.labels,
        "every": a.every,
        "fps": cv2.VideoCapture(str(clip)).get(cv2.CAP_PROP_FPS),
        "enrolled": {p: {k: v for k, v in e.items() if k != "descriptor"} for p, e in enrolled.items()},
        "strangers": sorted(strangers),
        **score(tracks, anchors, enrolled, strangers),
    }
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    name = f"people_named_{clip.stem}{'_strangers' if a.strangers else ''}"
    (out / f"{name}.json").write_text(json.dumps(res, indent=1))
    (out / f"{name}.md").write_text(table(res))
    print(table(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
