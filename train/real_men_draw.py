"""The random draws behind ``train/real_men_beard_lfw2.csv`` and ``train/real_men_beard_aaf2.csv``:
LFW men whose person no earlier real men's CSV names (one image a person, drawn with the same
generator), and All-Age-Faces men aged 25+ whose image none labels, each in an order drawn with
a fixed seed. Each CSV labels a prefix of its order by looking, so which men it holds depends on
the seed alone, never on a head's score (a held-out set judged fairly);
``tests/test_train_real_men_lfw2.py`` checks the prefixes. The later CSVs go on down the same
orders (``real_men_beard_lfw3.csv`` after lfw2's men, ``..._aaf3.csv`` after aaf2's), and
``real_men_beard_utk3.csv`` labels a prefix of ``utk_men_draw`` (UTKFace men aged 20+, its ethnic
groups and age bands taken in turn); ``tests/test_train_real_men_3.py`` checks those."""

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


UTK3_SEED = 32
UTK3_BANDS = ((20, 29), (30, 39), (40, 49), (50, 59), (60, 200))
# the CSVs whose faces the later draws leave out (every CSV labelled before them)
BEFORE3 = (*EARLIER, "real_men_beard_lfw2.csv", "real_men_beard_aaf2.csv")


def _labelled(source: str, names: tuple[str, ...]) -> set[str]:
    here = Path(__file__).resolve().parent
    done: set[str] = set()
    for name in names:
        with open(here / name, newline="") as fh:
            done |= {r["path"] for r in csv.DictReader(fh) if r["source"] == source}
    return done


def utk_men_draw(shared: Path, seed: int = UTK3_SEED) -> list[dict[str, str]]:
    """Every UTKFace man aged 20+ whose image no CSV before ``real_men_beard_utk3.csv`` labels,
    as a CSV row (``beard`` empty), in an order that takes each (ethnic group, age band) cell in
    turn, each cell in its own order drawn with ``seed``: any prefix holds the groups and the
    bands of UTK3_BANDS about evenly, while the cells last (the source names no people)."""
    done = _labelled("utkface", BEFORE3)
    with open(Path(shared) / "data" / "faces" / "utkface" / "labels.csv", newline="") as fh:
        men = sorted(
            (r for r in csv.DictReader(fh) if r["gender"] == "male" and r["path"] not in done),
            key=lambda r: r["path"],
        )
    rng = np.random.default_rng(seed)
    cells: list[list[dict[str, str]]] = []
    for race in sorted({r["race"] for r in men}):
        for lo, hi in UTK3_BANDS:
            cell = [r for r in men if r["race"] == race and r["age"] and lo <= int(r["age"]) <= hi]
            cells.append([cell[int(i)] for i in rng.permutation(len(cell))])
    order: list[dict[str, str]] = []
    for k in range(max(len(c) for c in cells)):
        order += [c[k] for c in cells if k < len(c)]
    return [
        {
            "source": "utkface",
            "path": r["path"],
            "person": "",
            "age": r["age"],
            "race": r["race"],
            "beard": "",
        }
        for r in order
    ]
