"""The random draw behind ``train/real_men_beard_lfw2.csv``: LFW men whose person no real men's
CSV (``train/real_men_beard*.csv`` before it) names, in an order drawn with a fixed seed, one
image a person drawn with the same generator. The CSV labels a prefix of this order by looking,
so which men it holds depends on the seed alone, never on a head's score (a held-out set judged
fairly); ``tests/test_train_real_men.py`` checks the prefix."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

LFW2_SEED = 30  # issue #30
# the CSVs whose LFW persons the draw leaves out (those labelled before it)
EARLIER = ("real_men_beard.csv", "real_men_beard_utk25.csv")


def lfw_men_draw(shared: Path, seed: int = LFW2_SEED) -> list[dict[str, str]]:
    """Every LFW man not in the earlier CSVs, as a CSV row (``beard`` empty), in drawn order."""
    here = Path(__file__).resolve().parent
    done: set[str] = set()
    for name in EARLIER:
        with open(here / name, newline="") as fh:
            done |= {r["person"] for r in csv.DictReader(fh) if r["source"] == "lfw"}
    with open(Path(shared) / "data" / "faces" / "lfw" / "labels.csv", newline="") as fh:
        men = [r for r in csv.DictReader(fh) if r["gender"] == "male" and r["person"] not in done]
    images: dict[str, list[str]] = {}
    for r in men:
        images.setdefault(r["person"], []).append(r["path"])
    rng = np.random.default_rng(seed)
    people = sorted(images)
    order = rng.permutation(len(people))
    rows = []
    for i in order:
        who = people[int(i)]
        paths = sorted(images[who])
        rows.append(
            {
                "source": "lfw",
                "path": paths[int(rng.integers(len(paths)))],
                "person": who,
                "age": "",
                "race": "",
                "beard": "",
            }
        )
    return rows
