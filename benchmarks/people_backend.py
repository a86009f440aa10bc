"""A learned back-end on dlib's descriptors for the face library, on LFW (issue #33).

``python -m benchmarks people-backend --out DIR [--seed 0]`` writes ``people_backend.json`` and ``.md``.

The same split and draws as ``people-lfw`` (``benchmarks.people_lfw``: people halved by name,
rules tuned on the tune half, figures on the held-out half). The back-end is PLDA's
two-covariance model: between-person and within-person covariances of dlib's descriptors,
estimated on the tune half's people with 2+ images only (the within one shrunk towards a
multiple of the identity), and a face is scored against a person by the log-likelihood ratio
of "same person" to "two people", the person's enrolled descriptors taken together (their mean
and count). Three scores are compared on the same draws, each tuned on the tune half:

- ``cohort``: today's rule (``streamer.people.match``: nearest enrolled descriptor, adjusted by
  the cohort of background faces);
- ``plda``: minus the log-likelihood ratio;
- ``cohort+plda``: the two added, the ratio scaled to the cohort distance's spread over the
  tune half's pairs of different people (fixed a priori, not tuned);
- ``cohort+plda per face``: as ``cohort+plda``, but each enrolled face scored alone and the best
  taken (what a person model from the faces together, PLDA's multi-enrollment score, is against).

Each row also says how many of the queries were named correctly by the number of the person's
photos enrolled (1, 2 or 3).

Every score is run twice: the enrolled photos described as an upload is (``mirrored``: the chip's
and the mirrored chip's descriptors averaged, ``streamer.people.faces.ENROL_MIRRORED``) and in
``one pass`` as a live face; queries always in one pass. The back-end is fitted, and the scale set,
on one-pass descriptors either way.

Tuning on the people the back-end was fitted on would judge it on faces it has seen, so the
tune half's scores are cross-fitted: its people fall in ``FOLDS`` folds, and a face is scored
against a person by a back-end fitted on the other folds' people (neither the face's nor the
person's). The held-out half is scored by one back-end fitted on the whole tune half.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from benchmarks.people_lfw import by_enrolled, descriptors, score, split, trials
from benchmarks.report import results_dir, write
from streamer.people.match import MatchRule, load_cohort

FOLDS = 5


class Plda:
    """Two-covariance PLDA, in the space where the within-person covariance is I and the
    between-person one diagonal (``b``)."""

    def __init__(self, x: np.ndarray, groups: list[list[int]], shrink: float = 0.2) -> None:
        mu = x[np.concatenate(groups)].mean(0)
        w = np.zeros((x.shape[1],) * 2)
        b = np.zeros_like(w)
        dof = 0
        for g in groups:
            m = x[g].mean(0)
            w += (x[g] - m).T @ (x[g] - m)
            b += np.outer(m - mu, m - mu)
            dof += len(g) - 1
        w, b = w / dof, b / len(groups)
        w = (1 - shrink) * w + shrink * np.trace(w) / len(w) * np.eye(len(w))
        ev, vec = np.linalg.eigh(w)
        white = vec @ np.diag(ev**-0.5) @ vec.T
        bb, rot = np.linalg.eigh(white @ b @ white)
        self.mu, self.t, self.b = mu, rot.T @ white, np.maximum(bb, 1e-6)

    def project(self, x: np.ndarray) -> np.ndarray:
        return (x - self.mu) @ self.t.T

    def llr(self, e: np.ndarray, n: np.ndarray, q: np.ndarray) -> np.ndarray:
        """(queries, people): log p(same) / p(different) of projected queries ``q`` against people
        whose ``n`` projected descriptors have the mean ``e``."""
        b = self.b[None]
        ve, vq = b + 1.0 / n[:, None], b + 1.0
        det = ve * vq - b * b
        s = (vq / det - 1 / ve) * e**2
        out = s.sum(1)[None] + (q**2) @ (ve / det - 1 / vq).T - 2 * q @ (b / det * e).T
        return -0.5 * (out + (np.log(det) - np.log(ve) - np.log(vq)).sum(1)[None])


def people_of(people: list[str], ok: np.ndarray, names: set[str]) -> dict[str, list[int]]:
    by: dict[str, list[int]] = {}
    for i, p in enumerate(people):
        if ok[i] and p in names:
            by.setdefault(p, []).append(i)
    return by


class Scorer:
    """Distances (lower: more alike) of faces to enrolled people by one of the three scores."""

    def __init__(self, people, d, ok, cohort, tune_names: set[str], seed: int, shrink: float) -> None:
        self.people, self.d, self.cohort = people, d, cohort
        self._proj: dict[tuple[int, bool], np.ndarray] = {}
        self.off = cohort.offset(d)  # (as streamer.people.match.Gallery adjusts every distance)
        self.e, self.eoff = d, self.off  # the enrolled photos' descriptors (``enrol``)
        by = people_of(people, ok, tune_names)
        order = sorted(by)
        np.random.default_rng(seed).shuffle(order)
        self.fold = {n: i % FOLDS for i, n in enumerate(order)}
        multi = {n: v for n, v in by.items() if len(v) >= 2}
        self.full = Plda(d, list(multi.values()), shrink)
        self.crossed = {
            (a, b): Plda(d, [v for n, v in multi.items() if self.fold[n] not in (a, b)], shrink)
            for a in range(FOLDS)
            for b in range(a, FOLDS)
        }
        self.scale = 1.0
        self.scale = self._spread(multi)  # (on one-pass descriptors, whatever the enrolment)

    def enrol(self, e: np.ndarray) -> None:
        """Score against enrolled photos described as ``e`` (the queries stay ``d``)."""
        self.e, self.eoff = e, self.cohort.offset(e)
        self._proj = {k: v for k, v in self._proj.items() if not k[1]}

    def query(self, q: np.ndarray) -> None:
        """Score queries described as ``q`` (default ``d``; the back-end stays fitted on ``d``)."""
        self.d, self.off = q, self.cohort.offset(q)
        self._proj = {k: v for k, v in self._proj.items() if k[1]}

    def _spread(self, multi: dict[str, list[int]]) -> float:
        """Cohort distance's spread over the LLR's, on pairs of different tune-half people."""
        names = sorted(multi)
        first = {n: [multi[n][0]] for n in names}
        q = [multi[n][1] for n in names]
        dc = self.cohort_distances(first, names, q)
        dl = -self.plda_llr(first, names, q)
        off = ~np.eye(len(names), dtype=bool)
        return float(np.std(dc[off]) / np.std(dl[off]))

    def cohort_distances(self, enrolled, names, ix) -> np.ndarray:
        idx = [i for p in names for i in enrolled[p]]
        who = np.repeat(np.arange(len(names)), [len(enrolled[p]) for p in names])
        e, eoff = self.e[idx], self.eoff[idx]
        out = np.full((len(ix), len(names)), np.inf)
        for c in range(0, len(ix), 2048):
            q = self.d[ix[c : c + 2048]]
            dist = np.sqrt(np.maximum(0, (q * q).sum(1)[:, None] - 2 * q @ e.T + (e * e).sum(1)[None]))
            dist -= 0.5 * (self.off[ix[c : c + 2048]][:, None] + eoff[None])
            np.minimum.at(out[c : c + 2048].T, who, dist.T)
        return out

    def plda_llr(self, enrolled, names, ix) -> np.ndarray:
        n = np.array([len(enrolled[p]) for p in names], float)
        if names[0] not in self.fold:  # held-out people: the back-end fitted on the whole tune half
            return self._llr(self.full, enrolled, names, n, ix)
        out = np.empty((len(ix), len(names)))
        fq = np.array([self.fold[self.people[i]] for i in ix])
        fp = np.array([self.fold[p] for p in names])
        for (a, b), m in self.crossed.items():
            pick = (fq[:, None] == a) & (fp[None] == b) | (fq[:, None] == b) & (fp[None] == a)
            if pick.any():
                out[pick] = self._llr(m, enrolled, names, n, ix)[pick]
        return out

    def _llr(self, m: Plda, enrolled, names, n, ix) -> np.ndarray:
        for k, v in ((False, self.d), (True, self.e)):  # (every descriptor projected once per back-end)
            if (id(m), k) not in self._proj:
                self._proj[(id(m), k)] = m.project(v)
        x, xe = self._proj[(id(m), False)], self._proj[(id(m), True)]
        e = np.stack([xe[enrolled[p]].mean(0) for p in names])
        return m.llr(e, n, x[ix])

    def per_face_llr(self, enrolled, names, ix) -> np.ndarray:
        """As ``plda_llr`` with each enrolled face scored alone (one enrolled), the best per person."""
        out = np.full((len(ix), len(names)), -np.inf)
        for j, p in enumerate(names):
            for i in enrolled[p]:
                out[:, j] = np.maximum(out[:, j], self.plda_llr({p: [i]}, [p], ix)[:, 0])
        return out

    def __call__(self, how: str):
        if how == "cohort+plda per face":
            return lambda e, names, ix: (
                self.cohort_distances(e, names, ix) - self.scale * self.per_face_llr(e, names, ix)
            )
        if how == "cohort":
            return self.cohort_distances
        if how == "plda":
            return lambda e, names, ix: -self.scale * self.plda_llr(e, names, ix)
        return lambda e, names, ix: (
            self.cohort_distances(e, names, ix) - self.scale * self.plda_llr(e, names, ix)
        )


def tune(ts: list[tuple], max_far: float) -> MatchRule:
    """As ``people_lfw.tune``, over a grid spanning the score's own range (``known``: the 20th to
    the 100th percentile of the queries' nearest; ``margin``: 0 to 0.8 of the gap between the
    strangers' and the queries' median nearest)."""
    q1 = np.concatenate([t[0] for t in ts])
    gap = float(np.median(np.concatenate([t[3] for t in ts])) - np.median(q1))
    best = None
    for known in np.linspace(np.percentile(q1, 20), q1.max(), 60):
        for margin in np.linspace(0, 0.8 * max(gap, 1e-9), 11):
            r = MatchRule(round(float(known), 4), round(float(known), 4), round(float(margin), 4))
            sc = score(ts, r)
            if sc["strangers_named"] <= max_far and (best is None or sc["named_correctly"] > best[0] + 1e-12):
                best = (sc["named_correctly"], r)
    assert best is not None
    return best[1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks people-backend", description=__doc__.splitlines()[0]
    )
    ap.add_argument(
        "--out", type=results_dir, default="benchmarks/results/people-backend", help="results folder"
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-far", type=float, default=0.01, help="strangers named at most (tuning)")
    ap.add_argument("--reps", type=int, default=20, help="libraries drawn per small-library size")
    ap.add_argument("--shrink", type=float, default=0.2, help="within-person covariance shrinkage")
    a = ap.parse_args(argv)
    from streamer.people.settings import PeopleConfig

    people, d, ok = descriptors()
    d = np.nan_to_num(d).astype(np.float64)
    parts = split(people, ok, a.seed)
    cfg = PeopleConfig()
    cohort = load_cohort(cfg.cohort, cfg.cohort_k)
    assert cohort is not None, f"no cohort at {cfg.cohort}"
    tune_names = set(parts["tune"]["enrolled"]) | {people[i] for i in parts["tune"]["strangers"]}
    sc = Scorer(people, d, ok, cohort, tune_names, a.seed, a.shrink)
    enrolments = {"mirrored": np.nan_to_num(descriptors(mirrored=True)[1]).astype(np.float64), "one pass": d}
    res: dict = {"seed": a.seed, "shrink": a.shrink, "folds": FOLDS, "scale": sc.scale, "scenarios": []}
    md = [
        "# Face library: a learned back-end (PLDA) on LFW (issue #33)",
        "",
        f"`python -m benchmarks people-backend --out {a.out} --seed {a.seed}`; the split and draws of "
        "`people-lfw`. PLDA fitted on the tune half's people with 2+ images "
        f"({sum(len(v) >= 2 for v in people_of(people, ok, tune_names).values())} people, within-person "
        f"covariance shrunk by {a.shrink}); tune-half scores cross-fitted over {FOLDS} folds of people. "
        f"Rules tuned on the tune half (at most {a.max_far:.0%} of strangers named), figures on the "
        f"held-out half. `cohort+plda` adds {sc.scale:.4f} x minus the log-likelihood ratio to the "
        "cohort distance. Enrolled photos `mirrored` (the chip's and the mirrored chip's descriptors "
        "averaged, as an upload is enrolled) or described in `one pass`; queries in one pass.",
        "",
        "| library | enrolled | score | rule (known, margin) | queries | named correctly | named wrongly "
        "| strangers | strangers named | named correctly, 1 / 2 / 3 photos enrolled (queries) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for size, enrolled in ((n, e) for n in (20, 100, 0) for e in enrolments):
        sc.enrol(enrolments[enrolled])
        what = "all enrolled" if not size else f"{size} people x {a.reps} draws"
        if not size:
            what = f"{len(parts['held_out']['enrolled'])} people"
        for how in ("cohort", "plda", "cohort+plda", "cohort+plda per face"):
            t = trials(people, d, parts["tune"], size, a.reps, a.seed, distances=sc(how))
            rule = tune(t, a.max_far)
            held = trials(people, d, parts["held_out"], size, a.reps, a.seed + 1, distances=sc(how))
            s = score(held, rule)
            res["scenarios"].append(
                {"library": size, "enrolled": enrolled, "score": how, **rule.__dict__, **s}
            )
            md.append(
                f"| {what} | {enrolled} | {how} | tuned ({rule.known:.4g}, {rule.margin:.3g}) "
                f"| {s['queries']} | "
                f"{s['named_correctly']:.2%} | {s['named_wrongly']:.2%} | {s['strangers']} | "
                f"{s['strangers_named']:.2%} | {by_enrolled(s)} |"
            )
            print(md[-1], flush=True)
    write("people_backend", res, "\n".join(md) + "\n", Path(a.out))
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
