"""Tests of the multi-source recipe (train/sources.py, train/multi.py, the split in train/data.py):
the split is shuffled, stratified and person-disjoint (today's name-order tail was not), a tiny
training run on each folder format (class folders, labels.csv, several sources), the balancing
weights and the calibration numbers."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.test_train import CELEBA, _shared, _write_image
from train.cli import main
from train.data import Dataset, load_any, split_indices
from train.split import split_dataset, split_stratified

LFW = _shared() / "data" / "faces" / "lfw"
needs_faces = pytest.mark.skipif(
    not (LFW / "labels.csv").exists() or not (CELEBA / "list_attr_celeba.txt").exists(),
    reason="shared faces not found",
)


def _folder_dataset(tmp_path: Path) -> Dataset:
    """A ``female/ male/`` tree: 30 women, then 30 men in name order, 3 images a person."""
    for g in ("female", "male"):
        for k in range(30):
            _write_image(tmp_path / g / f"{g}_{k // 3:02d}_{k % 3}.png", np.full((8, 8, 3), k, np.uint8))
    return load_any(tmp_path, None, ("female", "male"), tmp_path / "cache")


def test_split_is_shuffled_stratified_and_person_disjoint(tmp_path: Path) -> None:
    """The split ``train`` makes of a class-folder tree holds both classes in proportion in every
    split (the name-order tail it used to take tested only the last class), changes with the seed,
    and never puts one person's images in two splits."""
    ds = _folder_dataset(tmp_path)
    old = split_indices(len(ds), 0.2, 0.2, 0)[2]
    assert set(ds.y[old].tolist()) == {1}  # the defect: a one-class test split

    ds.groups = np.array([p.stem.rsplit("_", 1)[0] for p in ds.paths])  # person = name less the index
    tr, va, te = split_dataset(ds, 0.2, 0.2, 0)
    assert sorted([*tr, *va, *te]) == list(range(len(ds)))
    for idx, share in ((te, 0.2), (va, 0.16)):
        counts = np.bincount(ds.y[idx], minlength=2)
        assert abs(counts[0] - counts[1]) <= 3 and abs(len(idx) / len(ds) - share) <= 0.06, counts
    who = {name: {ds.groups[i] for i in idx} for name, idx in (("tr", tr), ("va", va), ("te", te))}
    assert not (who["tr"] & who["va"] or who["tr"] & who["te"] or who["va"] & who["te"])
    assert set(split_dataset(ds, 0.2, 0.2, 1)[2]) != set(te)  # shuffled by the seed
    assert np.array_equal(split_dataset(ds, 0.2, 0.2, 0)[2], te)  # and reproducible


def test_split_by_person_on_a_labels_csv_folder(tmp_path: Path) -> None:
    rows = [(f"p{k // 4:02d}", "male" if k % 8 < 4 else "female") for k in range(80)]
    (tmp_path / "images").mkdir()
    with open(tmp_path / "labels.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "gender", "age", "race", "person"])
        for k, (person, g) in enumerate(rows):
            _write_image(tmp_path / "images" / f"{k:03d}.png", np.full((8, 8, 3), k, np.uint8))
            w.writerow([f"images/{k:03d}.png", g, 30 + k % 50, "", person])
    ds = load_any(tmp_path, None, ("female", "male"), tmp_path / "cache")
    tr, va, te = split_dataset(ds, 0.25, 0.25, 0)
    assert ds.groups is not None and len(set(ds.groups.tolist())) == 20
    assert not set(ds.groups[te]) & set(ds.groups[tr]) and not set(ds.groups[va]) & set(ds.groups[tr])
    assert set(ds.y[te].tolist()) == {0, 1}
    # strata (a source) are each split in proportion
    strata = np.array(["a"] * 40 + ["b"] * 40)
    _, _, te2 = split_stratified(ds.y, 0.25, 0.25, 0, ds.groups, strata)
    assert set(strata[te2].tolist()) == {"a", "b"}


def test_balance_weights_make_sources_labels_and_ages_count_alike() -> None:
    from train.multi import balance_weights
    from train.sources import Faces

    src = np.array(["a"] * 90 + ["b"] * 10)
    y = np.array([0] * 60 + [1] * 30 + [0] * 5 + [1] * 5)
    age = np.full(100, np.nan)
    f = Faces(
        Dataset([Path(f"{i}") for i in range(100)], y, ("female", "male"), "t"),
        src,
        age,
        np.array([""] * 100),
        np.array([""] * 100),
    )
    w = balance_weights(f)
    assert abs(w.mean() - 1) < 1e-5
    assert w[src == "b"].min() >= 2 * w[src == "a"].max()  # the small source is lifted ...
    assert w.max() <= 4 * np.median(w) * 1.0001  # ... but no face weighs more than 4x the median
    assert w[(src == "a") & (y == 1)].sum() == pytest.approx(w[(src == "a") & (y == 0)].sum())


def _aged_faces(age: np.ndarray, y: np.ndarray) -> object:
    from train.sources import Faces

    n = len(y)
    ds = Dataset([Path(f"{i}") for i in range(n)], y, ("female", "male"), "t")
    return Faces(ds, np.array(["utkface"] * n), age, np.array([""] * n), np.array([""] * n))


def test_balance_weights_teen_options() -> None:
    from train.multi import balance_weights

    # boys and girls of 13-14 (20 each), of 15-19 (40 each) and of 20-29 (50 each): no clipping
    age = np.array([13.0] * 40 + [17.0] * 80 + [25.0] * 100)
    y = np.array(([0] * 20 + [1] * 20) + ([0] * 40 + [1] * 40) + ([0] * 50 + [1] * 50))
    f = _aged_faces(age, y)
    w = balance_weights(f)
    young, mid = age < 15, (age >= 15) & (age < 20)
    assert w[young].sum() == pytest.approx(w[young].size / w[mid].size * w[mid].sum(), rel=1e-5)
    # split: 13-14 weighs as much in total as 15-19, within each gender
    s = balance_weights(f, split_teens=True, teen_boys=1.0)
    for g in (0, 1):
        assert s[young & (y == g)].sum() == pytest.approx(s[mid & (y == g)].sum(), rel=1e-5)
    assert s[age == 25].sum() == pytest.approx(s[age < 20].sum() / 2, rel=1e-5)  # 2 bands vs 1
    # teen boys at 2x: boys of 10-19 weigh twice the girls of 10-19, the 20s unchanged between genders
    b = balance_weights(f, teen_boys=2.0)
    teen = age < 20
    assert b[teen & (y == 1)].sum() == pytest.approx(2 * b[teen & (y == 0)].sum(), rel=1e-5)
    assert b[(age == 25) & (y == 1)].sum() == pytest.approx(b[(age == 25) & (y == 0)].sum(), rel=1e-5)
    assert abs(b.mean() - 1) < 1e-5


def test_the_recipe_weighs_teenage_boys_up() -> None:
    """The recipe's weights (``balance_weights`` as ``train gender --sources`` calls it): boys of
    10-19 count ``TEEN_BOYS`` times the girls of 10-19 (equal cells), other ages alike."""
    from train.multi import balance_weights
    from train.sources import TEEN_BOYS

    age = np.array([14.0] * 20 + [18.0] * 20 + [35.0] * 40 + [50.0] * 40)
    y = np.array([0, 1] * 60)
    w = balance_weights(_aged_faces(age, y))
    teen = age < 20
    assert TEEN_BOYS > 1
    assert w[teen & (y == 1)].sum() == pytest.approx(TEEN_BOYS * w[teen & (y == 0)].sum(), rel=1e-5)
    for a in (35.0, 50.0):
        assert w[(age == a) & (y == 1)].sum() == pytest.approx(w[(age == a) & (y == 0)].sum(), rel=1e-5)


def test_calibration_of_a_known_set() -> None:
    from train.multi import calibration

    conf = np.array([0.55] * 10 + [0.95] * 10)
    ok = np.array([1] * 5 + [0] * 5 + [1] * 10, bool)
    c = calibration(conf, ok)
    assert c["ece"] == pytest.approx(0.5 * 0.05 + 0.5 * 0.05)
    assert [b["n"] for b in c["reliability"]] == [10, 10]


def _copy_rows(src: Path, dst: Path, rows: list[dict[str, str]]) -> None:
    (dst / "images").mkdir(parents=True)
    with open(dst / "labels.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        for r in rows:
            shutil.copy(src / r["path"], dst / r["path"])
            w.writerow(r)


@pytest.fixture(scope="module")
def tiny_shared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ``shared`` folder of 30 CelebA and 36 LFW faces (12 people of each gender, 1-2 each)."""
    if not (LFW / "labels.csv").exists() or not (CELEBA / "list_attr_celeba.txt").exists():
        pytest.skip("shared faces not found")
    root = tmp_path_factory.mktemp("shared")
    cel = root / "data" / "celeba"
    (cel / "images").mkdir(parents=True)
    lines = (CELEBA / "list_attr_celeba.txt").read_text().splitlines()
    (cel / "list_attr_celeba.txt").write_text("\n".join(["30", lines[1], *lines[2:32]]) + "\n")
    for row in lines[2:32]:
        shutil.copy(CELEBA / "images" / row.split()[0], cel / "images" / row.split()[0])
    with open(LFW / "labels.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    pick: list[dict[str, str]] = []
    for g in ("female", "male"):
        people: dict[str, list[dict[str, str]]] = {}
        for r in rows:
            if r["gender"] == g:
                people.setdefault(r["person"], []).append(r)
        for p in sorted(people, key=lambda p: -len(people[p]))[:12]:
            pick += people[p][:2]
    _copy_rows(LFW, root / "data" / "faces" / "lfw", pick)
    return root


def _train(
    args: list[str], tmp_path: Path, capsys: pytest.CaptureFixture, config: str = "dlib_resnet"
) -> dict:
    out = tmp_path / "run"
    rc = main(["gender", *args, "--config", config, "--out", str(out), "--epochs", "3", "--quiet"])
    assert rc == 0, capsys.readouterr().err
    return json.loads((out / "metrics.json").read_text())


@needs_faces
def test_tiny_run_on_a_labels_csv_folder(tiny_shared: Path, tmp_path: Path, capsys) -> None:
    cache = tmp_path.parent / "cache-sources"
    m = _train(
        [
            "--data",
            str(tiny_shared / "data/faces/lfw"),
            "--cache-dir",
            str(cache),
            "--no-eval",
            "--upsample",
            "0",
        ],
        tmp_path,
        capsys,
    )
    assert m["n_images"] == 48 and m["split"]["method"] == "stratified-groups"
    assert min(m["class_counts"]["test"].values()) >= 1  # both classes tested


@needs_faces
def test_tiny_run_on_class_folders(tiny_shared: Path, tmp_path: Path, capsys) -> None:
    data = tmp_path / "faces"
    with open(tiny_shared / "data/faces/lfw/labels.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    for r in rows:
        (data / r["gender"]).mkdir(parents=True, exist_ok=True)
        shutil.copy(tiny_shared / "data/faces/lfw" / r["path"], data / r["gender"] / Path(r["path"]).name)
    cache = tmp_path.parent / "cache-sources"
    m = _train(
        ["--data", str(data), "--cache-dir", str(cache), "--no-eval", "--upsample", "0"], tmp_path, capsys
    )
    assert m["class_counts"]["test"]["female"] >= 1 and m["class_counts"]["test"]["male"] >= 1


@needs_faces
def test_tiny_run_on_several_sources(tiny_shared: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    """``--sources``: per-source features, a split stratified by source (CelebA's part the
    CelebA-only models' own), evaluation per group from the cached features."""
    from streamer.classify import read_meta

    monkeypatch.setenv("STREAMER_SHARED", str(tiny_shared))  # (none of other_faces.json's images)
    cache = tmp_path.parent / "cache-sources"
    args = ["--sources", "celeba,lfw", "--data", str(tiny_shared), "--cache-dir", str(cache)]
    m = _train(args, tmp_path, capsys, "dlib_resnet_video1")  # with a video-like copy of each face
    assert m["sources"] == ["celeba", "lfw"] and m["n_images"] == 30 + 48
    assert m["rows_fit"] == 2 * m["split"]["n_train"]  # each training face and its degraded copy
    assert set(m["source_counts"]) == {"celeba", "lfw"}
    assert sum(m["source_counts"]["celeba"]["test"].values()) == 3  # the last tenth by name
    assert m["test"]["by_source"].keys() == {"celeba", "lfw"} and "ece" in m["test"]
    meta = read_meta(Path(m["model"]))
    assert meta.extra["sources"] == ["celeba", "lfw"] and meta.extra["split"]["method"] == "sources"
