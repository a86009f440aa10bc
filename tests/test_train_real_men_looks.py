"""``train/real_men_looks.csv``: every real man the CSVs label shaved or unshaved, looked at
again blind (``second``) and, where the two looks differ, a third time (``third``); the labels of
record are what the looks agree on (``train.real_men.agreed_label``)."""

from __future__ import annotations

import csv
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from tests.test_train import _shared
from train.data import DataError
from train.real_men import LABELS, REAL_MEN_CSV, agreed_label, read_looks, read_rows

CSVS = tuple(sorted(REAL_MEN_CSV.parent.glob("real_men_beard*.csv")))


def test_two_looks_that_agree_settle_a_label_and_a_third_decides_between_two_that_differ() -> None:
    assert agreed_label("shaved") == "shaved"  # looked at once: its label stands
    assert agreed_label("unshaved", "unshaved") == "unshaved"
    assert agreed_label("shaved", "unshaved", "unshaved") == "unshaved"
    assert agreed_label("shaved", "unshaved", "shaved") == "shaved"
    assert agreed_label("shaved", "unshaved") == "unsure"  # not settled yet
    assert agreed_label("shaved", "unshaved", "unsure") == "unsure"
    assert agreed_label("shaved", "unsure", "shaved") == "shaved"
    assert agreed_label("unshaved", "unsure", "shaved") == "unsure"


def test_every_man_labelled_by_the_first_look_was_looked_at_again_and_every_difference_a_third_time() -> None:
    looks = read_looks()
    first = {(r["source"], r["path"]): r["beard"] for r in read_rows(CSVS, "first")}
    labelled = {k for k, v in first.items() if v in LABELS}
    assert set(looks) == labelled  # the first look's "unsure" men were not looked at again
    for k, (second, third) in looks.items():
        assert second, k
        assert bool(third) == (second != first[k]), k


def test_read_rows_gives_the_agreed_labels_and_keeps_the_first_look() -> None:
    first = read_rows(CSVS, "first")
    agreed = read_rows(CSVS)
    looks = read_looks()
    assert [r["path"] for r in agreed] == [r["path"] for r in first]
    changed = 0
    for a, f in zip(agreed, first, strict=True):
        k = (f["source"], f["path"])
        assert a["first"] == f["beard"]
        assert a["beard"] == (agreed_label(f["beard"], *looks[k]) if k in looks else f["beard"])
        changed += a["beard"] != f["beard"]
    assert changed > 0  # the looks change labels: "first" and "agreed" are two label sets
    with pytest.raises(ValueError, match="labels"):
        read_rows(CSVS, "second")


def test_a_look_that_is_not_a_label_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "looks.csv"
    with open(bad, "w", newline="") as fh:
        csv.writer(fh).writerows([["source", "path", "second", "third"], ["lfw", "x.jpg", "bearded", ""]])
    with pytest.raises(DataError, match="bearded"):
        read_looks(bad)


def test_all_names_every_csv_of_labelled_men_in_the_order_they_were_made() -> None:
    from train.beard_loso import csv_list
    from train.real_men import REAL_MEN_CSVS

    assert set(csv_list("all")) == set(CSVS) and csv_list("all") == REAL_MEN_CSVS
    assert csv_list("all")[0] == REAL_MEN_CSV
    assert csv_list("a.csv,b.csv") == (Path("a.csv"), Path("b.csv"))


def test_unanimous_men_are_those_two_looks_gave_one_label_and_are_pooled_apart() -> None:
    from train.beard_loso import pooled

    rows = read_rows(CSVS)
    looks = read_looks()
    for r in rows:
        k = (r["source"], r["path"])
        assert (r["unanimous"] == "yes") == (k in looks and looks[k][0] == r["first"])
        if r["unanimous"]:
            assert r["beard"] == r["first"]

    def fold(cm: list[list[int]], cm_both: list[list[int]]) -> dict:
        return {"m": {"confusion": cm, "unanimous": {"confusion": cm_both}}}

    result = {
        "folds": {
            "lfw": fold([[8, 2], [1, 9]], [[8, 0], [0, 7]]),
            "aaf": fold([[5, 0], [3, 2]], [[5, 0], [1, 2]]),
        }
    }
    p = pooled(result)["m"]
    assert p["overall"]["n"] == 30 and p["overall"]["accuracy"] == round(24 / 30, 4)
    assert p["unanimous"]["confusion"] == [[13, 0], [1, 9]]
    assert p["unanimous"]["per_class"]["unshaved"]["accuracy"] == 0.9


@pytest.mark.skipif(not (_shared() / "data" / "faces" / "lfw").is_dir(), reason="shared faces not found")
def test_small_faces_add_the_training_men_again_as_seen_smaller(monkeypatch: pytest.MonkeyPatch) -> None:
    """``small_faces`` (``dlib_resnet_all_small``): the training men once more per width, their
    features those of the face seen that wide, the same labels; validation stays as photographed."""
    import train.features as tf
    from train.real_men import real_men_rows

    asked: list[str | None] = []

    class Seen:
        def __init__(self, n: int, v: float) -> None:
            self.n, self.v = n, v

        def matrix(self, names: str) -> np.ndarray:
            return np.full((self.n, 2), self.v, np.float32)

    def features_for(ds, detector, upsample, cache_dir, progress, degraded=None, **kw):  # type: ignore[no-untyped-def]
        asked.append(degraded)
        return Seen(len(ds), {None: 1.0, "face40": 40.0, "face64": 64.0}[degraded])

    monkeypatch.setattr(tf, "features_for", features_for)
    opt = SimpleNamespace(
        data=_shared() / "data" / "celeba",
        real_men=(REAL_MEN_CSV,),
        real_men_labels="agreed",
        real_men_test=("aaf",),
        val_fraction=0.2,
        seed=0,
        real_men_weight=0.3,
    )
    plain = real_men_rows(opt, "x", Path("."))
    small = real_men_rows(opt, "x", Path("."), (40, 64))
    n = len(plain["y_train"])
    assert n > 0 and len(small["y_train"]) == 3 * n
    assert all(np.array_equal(small["y_train"][k * n : (k + 1) * n], plain["y_train"]) for k in range(3))
    assert set(small["x_train"][n : 2 * n, 0]) == {40.0} and set(small["x_train"][2 * n :, 0]) == {64.0}
    assert np.array_equal(small["x_val"], plain["x_val"]) and small["info"]["small_faces"] == [40, 64]
    assert asked == [None, None, "face40", "face64"]


def test_beard_loso_trains_each_variant_on_the_train_labels_and_judges_on_the_labels(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import train.beard_loso as bl

    calls: list[tuple] = []
    cell = {"accuracy": 1.0, "n": 1, "ci95": [0.0, 1.0]}
    done = {
        "confusion": [[1, 0], [0, 1]],
        "overall": {**cell, "n": 2},
        "per_class": {"shaved": cell, "unshaved": cell},
        "per_age": {},
        "beard2clean": {"flips": 0, "ordered": 0, "pairs": 0},
    }
    monkeypatch.setattr(bl, "fold_variant", lambda *a: calls.append(a) or done)
    a, b = (Path("a.csv"),), (Path("b.csv"),)
    kw = {"csv_file": a, "train_csv": b, "labels": "agreed", "small_faces": (40,), "train_labels": "first"}
    r = bl.run(("lfw",), tmp_path, _shared(), (("dlib_resnet_all", 0.3),), None, 3, cache_dir=tmp_path, **kw)
    assert [c[8:] for c in calls] == [
        (a, tmp_path, None, "agreed", (40,), "first"),
        (a, tmp_path, b, "agreed", (40,), "first"),
    ]
    assert (r["labels"], r["train_labels"]) == ("agreed", "first")
    assert "judged on the labels agreed" in (tmp_path / "beard-loso.md").read_text()
