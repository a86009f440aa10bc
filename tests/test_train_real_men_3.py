"""``train/real_men_beard_utk3.csv``, ``..._aaf3.csv`` and ``..._lfw3.csv``: more men labelled by
looking, each a prefix of a seeded draw (``train/real_men_draw.py``) among faces no earlier CSV
labels, so the men they hold follow from the seed, never from a head's score."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import pytest

from tests.test_train import _shared
from train.real_men import BEARD_VALUES, LABELS, REAL_MEN_CSV, load_real_men, read_rows

FACES = _shared() / "data" / "faces"
HERE = REAL_MEN_CSV.parent
EARLIER = tuple(
    HERE / n
    for n in (
        "real_men_beard.csv",
        "real_men_beard_lfw2.csv",
        "real_men_beard_aaf2.csv",
        "real_men_beard_utk25.csv",
    )
)
UTK3, AAF3, LFW3 = (HERE / f"real_men_beard_{n}.csv" for n in ("utk3", "aaf3", "lfw3"))
needs_faces = pytest.mark.skipif(
    not (FACES / "utkface" / "labels.csv").exists(), reason="shared faces not found"
)


def _genders(source: str) -> dict[str, str]:
    with open(FACES / source / "labels.csv", newline="") as fh:
        return {r["path"]: r["gender"] for r in csv.DictReader(fh)}


def test_new_csvs_hold_new_faces_with_allowed_labels_and_both_classes() -> None:
    earlier = {(r["source"], r["path"]) for r in read_rows(EARLIER)}
    lfw_people = {r["person"] for r in read_rows(EARLIER) if r["source"] == "lfw"}
    for f, source, least in ((UTK3, "utkface", 200), (AAF3, "aaf", 40), (LFW3, "lfw", 30)):
        rows = read_rows(f, "first")  # the CSV's own look
        assert {r["source"] for r in rows} == {source} and {r["beard"] for r in rows} <= set(BEARD_VALUES)
        assert not {(r["source"], r["path"]) for r in rows} & earlier
        assert min(sum(r["beard"] == lab for r in rows) for lab in LABELS) >= least
    assert not {r["person"] for r in read_rows(LFW3)} & lfw_people  # one image a person, new persons
    assert len(read_rows((*EARLIER, UTK3, AAF3, LFW3))) == sum(
        len(read_rows(f)) for f in (*EARLIER, UTK3, AAF3, LFW3)
    )


@needs_faces
def test_new_csvs_are_prefixes_of_their_seeded_draws_of_men() -> None:
    from train.real_men_draw import aaf_men_draw, lfw_men_draw, utk_men_draw

    shared = _shared()
    aaf2 = len(read_rows(HERE / "real_men_beard_aaf2.csv"))
    lfw2 = len(read_rows(HERE / "real_men_beard_lfw2.csv"))
    for f, drawn in (
        (UTK3, utk_men_draw(shared)),
        (AAF3, aaf_men_draw(shared)[aaf2:]),  # the aaf2 draw's order, after aaf2's men
        (LFW3, lfw_men_draw(shared)[lfw2:]),
    ):
        rows = read_rows(f)
        assert [(r["path"], r["person"]) for r in rows] == [
            (d["path"], d["person"]) for d in drawn[: len(rows)]
        ]
        gender = _genders(rows[0]["source"])
        assert all(gender[r["path"]] == "male" for r in rows)
    faces, labelled = load_real_men(shared, (UTK3, AAF3, LFW3))
    assert all(Path(p).is_file() for p in faces.ds.paths) and int(labelled.sum()) == sum(
        r["beard"] in LABELS for f in (UTK3, AAF3, LFW3) for r in read_rows(f)
    )


@needs_faces
def test_utk_draw_takes_ethnic_groups_and_age_bands_in_turn() -> None:
    """Any prefix of ``utk_men_draw`` holds each (group, band) cell about as often: the first men
    are one of each cell (24: UTKFace's 'other' men have none of 60+), and the CSV's 600 are 25
    of each."""
    from train.real_men_draw import UTK3_BANDS, utk_men_draw

    def cell(r: dict[str, str]) -> tuple[str, int]:
        return r["race"], next(i for i, (lo, hi) in enumerate(UTK3_BANDS) if lo <= int(r["age"]) <= hi)

    drawn = utk_men_draw(_shared())
    assert all(int(r["age"]) >= 20 for r in drawn)
    cells = {cell(r) for r in drawn}
    assert len(cells) >= 20 and {cell(r) for r in drawn[: len(cells)]} == cells
    assert set(Counter(cell(r) for r in read_rows(UTK3)).values()) == {len(read_rows(UTK3)) // len(cells)}
    assert [r["path"] for r in drawn] == [r["path"] for r in utk_men_draw(_shared())]  # the seed fixes it
