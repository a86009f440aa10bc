"""The random draws behind ``train/real_men_beard_lfw2.csv`` and ``train/real_men_beard_aaf2.csv``:
LFW men whose person no earlier real men's CSV names (one image a person, drawn with the same
generator), and All-Age-Faces men aged 25+ whose image none labels, each in an order drawn with
a fixed seed. Each CSV labels a prefix of its order by looking, so which men it holds depends on
the seed alone, never on a head's score (a held-out set judged fairly);
``tests/test_train_real_men_lfw2.py`` checks the prefixes."""

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


AAF2_SEED = 31
AAF2_MIN_AGE = 25  # as the CSV's All-Age-Faces men drawn at random: beards are rarer still below


def aaf_men_draw(shared: Path, seed: int = AAF2_SEED, min_age: int = AAF2_MIN_AGE) -> list[dict[str, str]]:
    """Every All-Age-Faces man aged ``min_age``+ whose image no earlier CSV (nor
    ``real_men_beard_lfw2.csv``) labels, as a CSV row (``beard`` empty), in an order drawn with
    ``seed`` (the source names no people: one image, one man)."""
    here = Path(__file__).resolve().parent
    done: set[str] = set()
    for name in (*EARLIER, "real_men_beard_lfw2.csv"):
        with open(here / name, newline="") as fh:
            done |= {r["path"] for r in csv.DictReader(fh) if r["source"] == "aaf"}
    with open(Path(shared) / "data" / "faces" / "aaf" / "labels.csv", newline="") as fh:
        men = sorted(
            (r for r in csv.DictReader(fh) if r["gender"] == "male" and r["path"] not in done),
            key=lambda r: r["path"],
        )
    men = [r for r in men if r["age"] and int(r["age"]) >= min_age]
    order = np.random.default_rng(seed).permutation(len(men))
    return [
        {
            "source": "aaf",
            "path": men[int(i)]["path"],
            "person": "",
            "age": men[int(i)]["age"],
            "race": men[int(i)]["race"],
            "beard": "",
        }
        for i in order
    ]
