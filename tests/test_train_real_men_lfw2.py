"""``train/real_men_beard_lfw2.csv`` (720 more LFW men labelled by looking), ``..._aaf2.csv``
(240 more All-Age-Faces men) and reading several real men's CSVs as one (``train beard-loso
--csv A,B``, ``train real-men --csv A,B``)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from tests.test_train import _shared
from train.data import DataError
from train.real_men import BEARD_VALUES, LABELS, REAL_MEN_CSV, csv_name, load_real_men, read_rows

FACES = _shared() / "data" / "faces"
LFW2 = REAL_MEN_CSV.with_name("real_men_beard_lfw2.csv")
AAF2 = REAL_MEN_CSV.with_name("real_men_beard_aaf2.csv")
needs_faces = pytest.mark.skipif(not (FACES / "lfw" / "labels.csv").exists(), reason="shared faces not found")


def test_lfw2_rows_are_new_lfw_people_with_allowed_labels_and_both_classes() -> None:
    rows = read_rows(LFW2)
    assert {r["source"] for r in rows} == {"lfw"} and {r["beard"] for r in rows} <= set(BEARD_VALUES)
    people = [r["person"] for r in rows]
    assert all(people) and len(people) == len(set(people))
    earlier = {
        r["person"]
        for f in ("real_men_beard.csv", "real_men_beard_utk25.csv")
        for r in read_rows(LFW2.with_name(f))
    }
    assert not set(people) & earlier  # never a person an earlier CSV labels (held out from them too)
    assert min(sum(r["beard"] == lab for r in rows) for lab in LABELS) >= 120  # enough to judge each class


@needs_faces
def test_lfw2_is_a_prefix_of_the_seeded_draw_of_men() -> None:
    """The CSV holds the first men of ``lfw_men_draw`` in its order, image and all: which men it
    labels follows from the seed alone, never from a head's score."""
    from train.real_men_draw import lfw_men_draw

    rows = read_rows(LFW2)
    drawn = lfw_men_draw(_shared())[: len(rows)]
    assert [(r["path"], r["person"]) for r in rows] == [(d["path"], d["person"]) for d in drawn]
    with open(FACES / "lfw" / "labels.csv", newline="") as fh:
        gender = {r["path"]: r["gender"] for r in csv.DictReader(fh)}
    assert all(gender[r["path"]] == "male" for r in rows)
    faces, labelled = load_real_men(_shared(), LFW2)
    assert all(Path(p).is_file() for p in faces.ds.paths) and labelled.sum() == sum(
        r["beard"] in LABELS for r in rows
    )


@needs_faces
def test_several_csvs_read_as_one_and_a_face_labelled_twice_is_an_error(tmp_path: Path) -> None:
    both = (REAL_MEN_CSV, LFW2)
    rows = read_rows(both)
    assert rows == read_rows(REAL_MEN_CSV) + read_rows(LFW2)
    faces, _ = load_real_men(_shared(), both)
    assert (
        len(faces) == len(rows) and faces.ds.source == "real_men:real_men_beard.csv+real_men_beard_lfw2.csv"
    )
    assert csv_name(REAL_MEN_CSV) == "real_men_beard.csv"
    again = tmp_path / "again.csv"
    again.write_text(LFW2.read_text().splitlines()[0] + "\n" + LFW2.read_text().splitlines()[1] + "\n")
    with pytest.raises(DataError, match="labelled twice"):
        read_rows((LFW2, again))


@needs_faces
def test_the_lfw_folds_train_on_the_same_men_with_the_added_csv() -> None:
    """Holding LFW out, the added LFW men are all judged and the training and validation men are
    those of the CSV alone (the same split), so the recipe's heads match and only the test grows."""
    from train.real_men import split_real_men

    one, lab1 = load_real_men(_shared())
    two, lab2 = load_real_men(_shared(), (REAL_MEN_CSV, LFW2))
    for held in (("lfw",), ("aaf", "lfw")):
        tr1, va1, te1 = split_real_men(one, lab1, held, 0.2, 0)
        tr2, va2, te2 = split_real_men(two, lab2, held, 0.2, 0)
        assert (tr1 == tr2).all() and (va1 == va2).all()
        assert len(te2) == len(te1) + int(lab2[len(one) :].sum())


def test_beard_loso_and_real_men_take_several_csvs() -> None:
    from train.cli import _parser

    args = _parser().parse_args(["beard-loso", "--csv", f"{REAL_MEN_CSV},{LFW2}"])
    assert args.csv == (REAL_MEN_CSV, LFW2)
    assert _parser().parse_args(["beard-loso"]).csv == (REAL_MEN_CSV,)
    args = _parser().parse_args(["real-men", "--model", "m.keras", "--csv", f"{LFW2}"])
    assert args.csv == (LFW2,)


def test_ceiling_is_the_best_lower_class_recall_over_every_cutoff() -> None:
    """``train/beard_cutoff.ceiling``: separable scores reach 1.0; otherwise never below the lower
    recall at 0.5 nor at any cut-off tried by brute force."""
    import numpy as np

    from train.beard_cutoff import ceiling

    y = np.array([0, 0, 1, 1])
    assert ceiling(np.array([0.1, 0.2, 0.6, 0.7]), y)["min_class_recall"] == 1.0
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    p = np.clip(0.3 * y + rng.random(200) * 0.7, 0, 1)
    c = ceiling(p, y)

    def low(t: float) -> float:
        return min((p[y == 0] < t).mean(), (p[y == 1] >= t).mean())

    assert c["min_class_recall"] == round(max(low(t) for t in np.linspace(0, 1, 1001)), 4)
    assert round(low(c["cutoff"]), 4) == c["min_class_recall"] >= low(0.5)


@needs_faces
def test_beard_loso_markdown_tabulates_the_cutoffs() -> None:
    import numpy as np

    from train.beard_loso import markdown
    from train.real_men import score

    faces, labelled = load_real_men(_shared())
    lfw = faces.subset(np.flatnonzero(labelled & (faces.source == "lfw")))
    b2c = {"pairs": 97, "flips": 41, "ordered": 93}
    base = {
        **score(lfw, lfw.ds.y.copy()),
        "beard2clean": b2c,
        "ceiling": {"min_class_recall": 0.8123, "cutoff": 0.41},
    }
    new = {**base, "validation_cutoff": {"cutoff": 0.37, **score(lfw, 1 - lfw.ds.y)}}
    res = {
        "folds": {"lfw": {"base": base, "new": new}},
        "seed": 0,
        "command": "c",
        "commit": "x",
        "started": "t",
    }
    text = markdown({**res, "load_average": [1.0]})
    assert "| lfw | base | – | – | – | – | 81.2% (0.41) |" in text
    assert "| lfw | new | 0.37 | 0.0% " in text
    assert "Cut-offs" not in markdown(
        {**res, "folds": {"lfw": {"x": {**score(lfw, lfw.ds.y), "beard2clean": b2c}}}, "load_average": [1.0]}
    )


@needs_faces
def test_aaf2_is_a_prefix_of_the_seeded_draw_of_new_aaf_men() -> None:
    """``real_men_beard_aaf2.csv``: the first men of ``aaf_men_draw`` (aged 25+, images no other
    CSV labels) in order, men, allowed labels, both classes, readable beside the other CSVs."""
    from train.real_men_draw import AAF2_MIN_AGE, aaf_men_draw

    rows = read_rows(AAF2)
    assert [r["path"] for r in rows] == [d["path"] for d in aaf_men_draw(_shared())[: len(rows)]]
    assert {r["beard"] for r in rows} <= set(BEARD_VALUES) and all(
        int(r["age"]) >= AAF2_MIN_AGE for r in rows
    )
    assert min(sum(r["beard"] == lab for r in rows) for lab in LABELS) >= 30
    with open(FACES / "aaf" / "labels.csv", newline="") as fh:
        gender = {r["path"]: r["gender"] for r in csv.DictReader(fh)}
    assert all(gender[r["path"]] == "male" for r in rows)
    assert len(read_rows((REAL_MEN_CSV, LFW2, AAF2))) == len(read_rows((REAL_MEN_CSV, LFW2))) + len(rows)


def test_beard_loso_pools_disjoint_folds_from_their_confusions() -> None:
    """``train beard-loso``'s pooled figure: the folds' confusion matrices summed per model (each
    man counted once), with Wilson intervals; none when a source is in two folds or a model is
    missing from one."""
    from train.beard_loso import markdown, pooled
    from train.evaluate import wilson

    def fold(cm: list[list[int]]) -> dict:
        n = sum(map(sum, cm))
        cell = {"accuracy": (cm[0][0] + cm[1][1]) / n, "n": n, "ci95": [0.0, 1.0]}
        per = {"shaved": cell, "unshaved": cell}
        return {
            "confusion": cm,
            "overall": cell,
            "per_class": per,
            "beard2clean": {"pairs": 1, "flips": 0, "ordered": 1},
            "per_age": {},
        }

    folds = {
        "lfw": {"a": fold([[90, 10], [5, 15]]), "b": fold([[1, 0], [0, 1]])},
        "aaf": {"a": fold([[50, 0], [10, 10]])},
    }
    res = {"folds": folds, "seed": 0, "command": "c", "commit": "x", "started": "t", "load_average": [1.0]}
    p = pooled(res)
    assert list(p) == ["a"]  # "b" was not scored on every fold
    assert p["a"]["confusion"] == [[140, 10], [15, 25]]
    assert p["a"]["per_class"]["unshaved"]["n"] == 40 and p["a"]["per_class"]["unshaved"]["accuracy"] == 0.625
    assert p["a"]["overall"]["ci95"] == [round(x, 4) for x in wilson(165, 190)]
    assert "| a | **86.8%" in markdown({**res, "pooled": p})
    assert pooled({**res, "folds": {**folds, "aaf+lfw": folds["aaf"]}}) == {}
    assert pooled({**res, "folds": {"lfw": folds["lfw"]}}) == {}
