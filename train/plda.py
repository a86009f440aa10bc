"""The face library's learned back-end (``streamer.people.match.Backend``): PLDA on dlib's descriptors.

``python -m train.plda [--seed 0] [--out models/people_plda.npz]`` fits PLDA's two-covariance
model (``benchmarks.people_backend.Plda``: between- and within-person covariances, the within one
shrunk by ``--shrink``) on the LFW people of the tune half of ``people-lfw``'s split with that
seed (2+ images each), never on its held-out half, and the weight its log-likelihood ratio is
added to the cohort distance with (the cohort distance's spread over the ratio's, on pairs of
different tune-half people). Descriptors come from ``.cache/people_lfw.npz`` (made by
``python -m benchmarks people-lfw``, as an upload is described). See ``models/people_plda.md``.
"""

from __future__ import annotations

import argparse

import numpy as np


def build(seed: int = 0, shrink: float = 0.2) -> dict[str, np.ndarray]:
    from benchmarks.people_backend import Scorer
    from benchmarks.people_lfw import descriptors, split
    from streamer.people.match import load_cohort
    from streamer.people.settings import PeopleConfig

    people, d, ok = descriptors()
    d = np.nan_to_num(d).astype(np.float64)
    part = split(people, ok, seed)["tune"]
    names = set(part["enrolled"]) | {people[i] for i in part["strangers"]}
    cfg = PeopleConfig()
    cohort = load_cohort(cfg.cohort, cfg.cohort_k)
    assert cohort is not None, f"no cohort at {cfg.cohort}"
    sc = Scorer(people, d, ok, cohort, names, seed, shrink)
    m = sc.full
    n = sum(1 for p in names if sum(1 for i, q in enumerate(people) if q == p and ok[i]) >= 2)
    return {
        "mu": m.mu.astype(np.float32),
        "t": m.t.astype(np.float32),
        "b": m.b.astype(np.float32),
        "scale": np.float32(sc.scale),
        "people": np.int32(n),
        "seed": np.int32(seed),
        "shrink": np.float32(shrink),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m train.plda", description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0, help="people-lfw's split (its tune half is fitted on)")
    ap.add_argument("--shrink", type=float, default=0.2, help="within-person covariance shrinkage")
    ap.add_argument("--out", default="models/people_plda.npz")
    a = ap.parse_args(argv)
    z = build(a.seed, a.shrink)
    np.savez(a.out, **z)
    print(f"{a.out}: fitted on {int(z['people'])} people, scale {float(z['scale']):.5f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
