"""Unknown clusters by PLDA's set-against-set score, against the service's rule (issue #33).

``python -m benchmarks people-clusters --out DIR [--tracks DIR]`` writes ``people_clusters.json``
and ``.md``.

The service groups each ended unknown track by distances (``streamer.people.clusters.assign``:
average linkage over a cluster's tracks within ``people.cluster_distance``, half of them within it,
cannot-link). The alternative scored here takes a cluster and a track as two sets of descriptors
and asks PLDA's two-covariance model (``benchmarks.people_backend.Plda``, as the library's
back-end) how much likelier it is that the two sets share one identity than that they are two
people (``Plda.llr``, closed form: it needs each set's mean and count only). A track joins the
cluster with the highest ratio when that is at least ``theta`` and none of the cluster's tracks was
seen with it (cannot-link, as the service); else it starts one. Every track counts as one
descriptor (its mean): one track's frames are not independent looks, and a store keeps one mean a
track.

On LFW (``people-lfw``'s split, seed 0), each photo is a track of one descriptor; groups of
``--group`` people with 2+ photos each are clustered, photos in random order: ``random`` groups
(any people) and ``look-alike`` groups (a person and the ``group``-1 people whose mean descriptors
lie nearest, as relatives at one table). Both halves' people are dealt into 5 folds and a group is
drawn within one fold. ``theta`` is tuned on the tune half's look-alike groups (the most of each
person's photos in their biggest cluster with at most ``--max-mixing`` of clusters mixing people),
its scores cross-fitted (a fold's groups scored by PLDA fitted on the other folds' people); the
held-out half is scored by PLDA fitted on the whole tune half. The service's rule is run on the
same draws at a few distances.

``--tracks DIR``: the real clips' unknown tracks saved by ``python -m benchmarks people-clip
--clusters-only --tracks DIR/CLIP.npz`` (outside the repository), each scored against
``benchmarks/people_clip_labels/CLIP.json`` (who each track is by time and place:
``benchmarks.people_labels``; tracks no anchor matches are listed as ``unlabelled``) by the
service's rule and by PLDA at the tuned ``theta`` (and a few others: the figures at those are
read, not chosen from).

Two changes to the rule are measured on the same draws and tracks (``regroup_clusters``; their
values read, not chosen from): ``regroup 0.4+M``, clusters merged whenever their tracks lie within
``M`` of each other on average (half the pairs within it, none seen together), as tracks come, not
only when one ends; ``cohort L``, the rule at ``L`` on distances adjusted by the library's cohort
of background faces (half of each track's offset taken off, ``streamer.people.match.Cohort``).
More are measured the same way (``benchmarks.people_cluster_variants``: linkage, merging on
cohort-adjusted distances, face size, a track's looks weighted or compared as a set).
``--labels DIR``: who each clip's track is (default ``benchmarks/people_clip_labels``).
"""

from __future__ import annotations

import argparse
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from benchmarks.people_backend import FOLDS, Plda, people_of
from benchmarks.people_cluster_variants import measured, online
from benchmarks.people_labels import labels_of
from benchmarks.people_lfw import descriptors, split
from benchmarks.report import results_dir, write
from streamer.people.clusters import APART, Cluster, assign, times

LABELS = Path(__file__).resolve().parent / "people_clip_labels"
THETAS = (-10.0, -5.0, 0.0, 5.0, 10.0, 15.0, 20.0, 25.0)
LIMITS = (0.40, 0.45, 0.50, 0.55, 0.60)
MERGES = (0.42, 0.45)  # re-grouping (``regroup_clusters``) at the rule's 0.40, read not chosen
ADJUSTED = (0.45, 0.50, 0.55)  # the rule on cohort-adjusted distances, read not chosen


def variants(x: np.ndarray, limit: float, hits: list | None, off: np.ndarray) -> dict[str, list[int]]:
    """The measured changes to the rule: re-grouping as tracks come (``regroup L+M``) and
    cohort-adjusted distances (``cohort L``)."""
    out = {f"regroup {limit:g}+{m:g}": regroup_clusters(x, limit, hits, m) for m in MERGES}
    out.update({f"cohort {a:g}": regroup_clusters(x, a, hits, 0.0, off) for a in ADJUSTED})
    return out


KINDS = ("random", "look-alike")


def plda_clusters(m: Plda, x: np.ndarray, theta: float, hits: list | None = None) -> list[int]:
    """Cluster of each of the descriptors ``x`` (one a track, in the order the tracks ended): the
    cluster with the highest set-against-set ratio when at least ``theta`` and not seen with it
    (``hits``: each track's detection times, cannot-link as ``streamer.people.clusters``)."""
    p = m.project(np.asarray(x, np.float64))
    sums: list[np.ndarray] = []
    ns: list[float] = []
    seen: list[list[np.ndarray]] = []
    out = []
    for k in range(len(p)):
        at = times(hits[k]) if hits else np.zeros(0)
        best = -1
        if sums:
            s = m.llr(np.array(sums) / np.array(ns)[:, None], np.array(ns), p[k][None])[0]
            for j in range(len(seen)):
                if len(at) and any(len(np.intersect1d(at, a, assume_unique=True)) >= APART for a in seen[j]):
                    s[j] = -np.inf
            j = int(np.argmax(s))
            best = j if s[j] >= theta else -1
        if best < 0:
            sums.append(p[k].copy())
            ns.append(1.0)
            seen.append([at])
            best = len(sums) - 1
        else:
            sums[best] = sums[best] + p[k]
            ns[best] += 1
            seen[best].append(at)
        out.append(best)
    return out


def rule_clusters(x: np.ndarray, limit: float, hits: list | None = None) -> list[int]:
    """The service's rule (``streamer.people.clusters.assign``) on the same tracks."""
    clusters: list[Cluster] = []
    out = []
    for k, d in enumerate(np.asarray(x, np.float32)):
        h = hits[k] if hits else frozenset()
        c = assign(clusters, d, limit, "clip", h)
        if c is None:
            c = Cluster(len(clusters), d.copy(), 1, seen=[("clip", times(h))])
            clusters.append(c)
        out.append(c.id)
    return out


def regroup_clusters(
    x: np.ndarray, limit: float, hits: list | None = None, merge: float = 0.0, off: np.ndarray | None = None
) -> list[int]:
    """The service's rule with two changes measured against it (each track's final cluster):
    ``merge``: after each track, any two clusters whose newest ``KEPT`` tracks lie within ``merge``
    of each other's on average (and half of the pairs within it), none seen with the other's, are
    merged, nearest first (re-grouping as the store grows, not only when a track ends); ``off``:
    each track's cohort offset (``Cohort.offset``), half of both taken off every distance between
    two tracks as the library's match does. With neither it groups as ``rule_clusters``."""
    x = np.asarray(x, np.float64)
    dist = np.linalg.norm(x[:, None] - x[None], axis=2)
    if off is not None:
        dist = dist - 0.5 * (off[:, None] + off[None])
    return online(dist, [times(hits[k]) if hits else np.zeros(0) for k in range(len(x))], limit, merge)


def grouping(who: list[str], cluster: list[int]) -> dict:
    """Clusters, those mixing people, and each person's share of tracks in their biggest cluster."""
    by_c: dict[int, set[str]] = defaultdict(set)
    by_p: dict[str, Counter] = defaultdict(Counter)
    for w, c in zip(who, cluster, strict=True):
        if w != "?":
            by_c[c].add(w)
            by_p[w][c] += 1
    return {
        "clusters": len(set(cluster)),
        "mixing": sum(len(v) > 1 for v in by_c.values()),
        "share": {p: max(c.values()) / sum(c.values()) for p, c in sorted(by_p.items())},
    }


def deal(by: dict[str, list[int]], seed: int = 0) -> list[list[str]]:
    """The people dealt into ``FOLDS`` folds at random."""
    names = sorted(by)
    np.random.default_rng(seed).shuffle(names)
    return [names[f::FOLDS] for f in range(FOLDS)]


def lfw_groups(by, folds: list[list[str]], d: np.ndarray, group: int, draws: int, hard: bool, seed: int):
    """(fold, people) per draw: ``group`` people of one fold, at random or a look-alike group."""
    rng = np.random.default_rng(seed)
    means = {n: d[by[n]].mean(0) for n in by}
    out = []
    for k in range(draws):
        f = k % FOLDS
        pick = list(rng.choice(folds[f], group, replace=False))
        if hard:
            m = np.stack([means[n] for n in folds[f]])
            near = np.argsort(np.linalg.norm(m - means[pick[0]], axis=1))[:group]
            pick = [folds[f][j] for j in near]
        out.append((f, pick))
    return out


def lfw(d, by, groups, model_of, seed: int, off: np.ndarray) -> dict:
    """Per way (``plda θ``, ``rule L``, ``variants``; ``off``: each photo's cohort offset): mixing
    clusters' share, mean share in the biggest cluster, people with at least 90 % of their photos
    in one cluster."""
    rng = np.random.default_rng(seed)
    acc: dict[str, list] = defaultdict(lambda: [0, 0, []])
    for f, pick in groups:
        order = [i for n in pick for i in by[n]]
        rng.shuffle(order)
        owner = {i: n for n in pick for i in by[n]}
        who = [owner[i] for i in order]
        x, m = d[order], model_of(f)
        ways = {f"plda {t:g}": plda_clusters(m, x, t) for t in THETAS}
        ways.update({f"rule {lim:g}": rule_clusters(x, lim) for lim in LIMITS})
        ways.update(variants(x, LIMITS[0], None, off[order]))
        ways.update(measured(x, [np.zeros(0)] * len(x), off[order], LIMITS[0]))
        for way, cl in ways.items():
            g = grouping(who, cl)
            a = acc[way]
            a[0], a[1] = a[0] + g["clusters"], a[1] + g["mixing"]
            a[2] += list(g["share"].values())
    return {
        w: {
            "mixing": a[1] / a[0],
            "mean_share_in_biggest": float(np.mean(a[2])),
            "people_90": float(np.mean(np.array(a[2]) >= 0.9)),
        }
        for w, a in acc.items()
    }


def clip(path: Path, m: Plda, theta: float, limits: tuple[float, ...], cohort, labels: Path = LABELS) -> dict:
    z = np.load(path)
    hit_of: dict[int, set] = defaultdict(set)
    for t, h in zip(z["hit_track"], z["hit"], strict=True):
        hit_of[int(t)].add(float(h))
    found = labels_of(labels / f"{path.stem}.json", z)  # (by time and place: people_labels)
    truth = found.truth
    from streamer.people.settings import PeopleConfig

    cfg = PeopleConfig()
    keep = [
        k
        for k, n in enumerate(z["looks"])
        if n >= cfg.cluster_min_looks and z["h"][k] >= cfg.cluster_min_face_px
    ]
    ids = [int(z["ids"][k]) for k in keep]
    x, hits = z["d"][keep], [frozenset(hit_of[t]) for t in ids]
    who = [truth.get(t, "?") for t in ids]
    out: dict = {"tracks": len(ids), "unlabelled": [t for t in ids if t not in truth]}
    if found.unmatched:
        out["anchors_matching_no_track"] = found.unmatched
    for lim in sorted(set(limits)):
        out[f"rule {lim:g}"] = grouping(who, rule_clusters(x, lim, hits))
    for way, cl in variants(x, cfg.cluster_distance, hits, cohort.offset(x)).items():
        out[way] = grouping(who, cl)
    looks = None  # (each kept track's looks, where the file has them)
    if "look_d" in z.files:
        looks = [tuple(z[f"look_{n}"][z["look_seq"] == k] for n in "dhf") for k in keep]
    at, px = [times(h) for h in hits], z["h"][keep].astype(np.float64)
    for way, cl in measured(x, at, cohort.offset(x), cfg.cluster_distance, looks, px).items():
        out[way] = grouping(who, cl)
    for t in sorted({theta, *THETAS}):
        out[f"plda {t:g}"] = grouping(who, plda_clusters(m, x, t, hits))
    return out


def tuned(t: dict, way: str, values, max_mixing: float) -> float:
    """The value of ``way`` with the most of each person in one cluster at most ``max_mixing``."""
    ok = [x for x in values if t[f"{way} {x:g}"]["mixing"] <= max_mixing] or [max(values)]
    return max(ok, key=lambda x: t[f"{way} {x:g}"]["mean_share_in_biggest"])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks people-clusters", description=__doc__.splitlines()[0]
    )
    ap.add_argument(
        "--out", type=results_dir, default="benchmarks/results/people-clusters", help="results folder"
    )
    ap.add_argument("--tracks", default="", help="folder of the clips' saved unknown tracks (CLIP.npz)")
    ap.add_argument("--labels", default="", help="who each clip's track is (CLIP.json; default: LABELS)")
    ap.add_argument("--group", type=int, default=6, help="people a group")
    ap.add_argument("--draws", type=int, default=500, help="groups drawn per half and kind")
    ap.add_argument("--max-mixing", type=float, default=0.05, help="clusters mixing people at most (tuning)")
    ap.add_argument("--shrink", type=float, default=0.2, help="within-person covariance shrinkage")
    a = ap.parse_args(argv)
    from streamer.people.match import load_cohort
    from streamer.people.settings import PeopleConfig

    cfg = PeopleConfig()
    limit, cohort = cfg.cluster_distance, load_cohort(cfg.cohort, cfg.cohort_k)
    assert cohort is not None, f"no cohort at {cfg.cohort}"
    people, d, ok = descriptors()
    d = np.nan_to_num(d).astype(np.float64)
    off = cohort.offset(d)
    parts = split(people, ok, 0)
    halves = {}
    for h in ("tune", "held_out"):
        names = set(parts[h]["enrolled"]) | {people[i] for i in parts[h]["strangers"]}
        halves[h] = {n: v for n, v in people_of(people, ok, names).items() if len(v) >= 2}
    tune = halves["tune"]
    folds = {h: deal(halves[h]) for h in halves}
    groups = {
        h: {k: lfw_groups(halves[h], folds[h], d, a.group, a.draws, k == "look-alike", 0) for k in KINDS}
        for h in halves
    }
    without = {  # (a tune-half fold's groups are scored by PLDA fitted on the other folds' people)
        f: Plda(d, [tune[n] for g, ns in enumerate(folds["tune"]) if g != f for n in ns], a.shrink)
        for f in range(FOLDS)
    }
    full = Plda(d, list(tune.values()), a.shrink)
    res: dict = {"group": a.group, "draws": a.draws, "cluster_distance": limit, "lfw": {}, "clips": {}}
    for h in halves:
        for kind in KINDS:
            model_of = (lambda f: without[f]) if h == "tune" else (lambda f: full)
            res["lfw"][f"{h} {kind}"] = lfw(d, halves[h], groups[h][kind], model_of, 1, off)
    t = res["lfw"]["tune look-alike"]
    theta = tuned(t, "plda", THETAS, a.max_mixing)
    res["theta"], res["limit"] = theta, tuned(t, "rule", LIMITS, a.max_mixing)
    labels = Path(a.labels) if a.labels else LABELS
    for p in sorted(Path(a.tracks).glob("*.npz")) if a.tracks else []:
        if (labels / f"{p.stem}.json").is_file():
            res["clips"][p.stem] = clip(p, full, theta, (limit, res["limit"]), cohort, labels)
    md = report(res, a)
    write("people_clusters", res, "\n".join(md) + "\n", Path(a.out))
    print("\n".join(md))
    return 0


def report(res: dict, a) -> list[str]:
    md = [
        "# Unknown clusters: PLDA's set-against-set score against the service's rule (issue #33)",
        "",
        f"`python -m benchmarks people-clusters --out {a.out}{' --tracks ' + a.tracks if a.tracks else ''}`. "
        f"LFW: groups of {a.group} people (2-6 photos each, one photo a track), {a.draws} draws per "
        "half and kind; PLDA's threshold tuned on the tune half's look-alike groups (cross-fitted) "
        f"at most {a.max_mixing:.0%} of clusters mixing people: **theta = {res['theta']:g}** (the "
        f"service's rule tuned alike: {res['limit']:g}; `regroup 0.4+M` and `cohort L`: the rule "
        "re-grouped as tracks come and on cohort-adjusted distances; `single`, `complete`, `cohort-merge`: "
        "`benchmarks/people_cluster_variants.py`). Columns: clusters mixing people, each "
        "person's mean share of tracks in their biggest cluster, people with at least 90 % there.",
        "",
        "| LFW half, groups | way | clusters mixing | share in biggest | people >= 90 % |",
        "|---|---|---|---|---|",
    ]
    for key, ways in res["lfw"].items():
        for way, v in ways.items():
            md.append(
                f"| {key} | {way} | {v['mixing']:.1%} | {v['mean_share_in_biggest']:.1%} "
                f"| {v['people_90']:.1%} |"
            )
    if res["clips"]:
        md += [
            "",
            f"Real clips' saved unknown tracks (`--tracks`): the rule at `cluster_distance` "
            f"{res['cluster_distance']:g} and at {res['limit']:g} (tuned on LFW), PLDA at theta "
            f"{res['theta']:g} (tuned on LFW; the others read, not chosen from), and the two changes "
            "to the rule (`regroup 0.4+M`: clusters merged within M as tracks come; `cohort L`: "
            "cohort-adjusted distances; read, not chosen from), and those of "
            "`benchmarks/people_cluster_variants.py` (linkage, `cohort-merge`, `size`, and where the "
            "tracks' looks are saved `looks` and `set`; read, not chosen from; labels: "
            f"`{a.labels or 'benchmarks/people_clip_labels'}`), "
            "cannot-link kept:",
            "",
            "| clip | way | clusters | mixing people | each person's share in their biggest |",
            "|---|---|---|---|---|",
        ]
        for c, r in res["clips"].items():
            for way, g in r.items():
                if isinstance(g, dict):
                    share = ", ".join(f"{p} {v:.0%}" for p, v in g["share"].items())
                    md.append(f"| {c} | {way} | {g['clusters']} | {g['mixing']} | {share} |")
        md += ["", "Tracks no label's anchor matched (counted, not scored):"]
        md += [
            f"- {c}: {', '.join(f't{t}' for t in r['unlabelled']) or 'none'}" for c, r in res["clips"].items()
        ]
    return md


if __name__ == "__main__":
    raise SystemExit(main())
