"""The face library's cohort of background faces (``streamer.people.match.Cohort``).

``python -m train.cohort [--n 2000] [--out models/people_cohort.npz]`` draws ``n`` faces of
UTKFace (capped per age band and gender, as training takes it) and All-Age-Faces, people who are
in no library and are not in LFW (the benchmark's people), and keeps their dlib face descriptors,
made exactly as the service makes them (``train.features``: the configured detector, dlib's
alignment, the face ResNet; cached under ``.cache/features``). Both sources are research-use
only (see ``models/people_cohort.md``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from train.data import GENDER_RULE
from train.features import features_for
from train.other_faces import shared_root
from train.sources import UPSAMPLE, load_source

SOURCES = ("utkface", "aaf")


def build(n: int, seed: int = 0, cache: Path = Path(".cache")) -> tuple[np.ndarray, dict[str, int]]:
    """(n, 128) float32 descriptors drawn from SOURCES, and how many came from each."""
    parts, names = [], []
    for src in SOURCES:
        f = load_source(src, shared_root(), GENDER_RULE)
        x = features_for(f.ds, "mmod", UPSAMPLE[src], cache, progress=False)
        d = x.x["dlib_face_descriptor"][x.found]
        parts.append(d)
        names += [src] * len(d)
    d = np.concatenate(parts)
    pick = np.sort(np.random.default_rng(seed).choice(len(d), min(n, len(d)), replace=False))
    counts = {s: int(sum(names[i] == s for i in pick)) for s in SOURCES}
    return d[pick].astype(np.float32), counts


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m train.cohort", description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000, help="faces in the cohort")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="models/people_cohort.npz")
    a = ap.parse_args(argv)
    d, counts = build(a.n, a.seed)
    np.savez_compressed(
        a.out, d=d.astype(np.float16), sources=np.array(list(counts)), counts=list(counts.values())
    )
    print(f"{a.out}: {len(d)} faces, {counts}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
