"""``train beard-finetune``: a tiny run on made-up faces whose frozen features are dlib's tail of
their trunk activations (as the caches hold them), the validation threshold and beard2clean's
pair counts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from train.data import Dataset


def test_balanced_threshold_separates_the_classes_nearest_half() -> None:
    from train.beard_finetune import balanced_threshold

    y = np.array([0, 0, 0, 1, 1])
    t = balanced_threshold(np.array([0.05, 0.1, 0.2, 0.3, 0.9]), y)
    assert 0.2 < t <= 0.3  # every cut in (0.2, 0.3] is perfect; 0.3 is nearest 0.5
    assert balanced_threshold(np.array([0.1, 0.2, 0.3, 0.6, 0.9]), y) == 0.5
    # the one unshaved face scores under 0.5: the cut moves below it
    assert 0.3 < balanced_threshold(np.array([0.1, 0.2, 0.3, 0.42]), np.array([0, 0, 0, 1])) <= 0.42


def test_b2c_flips_and_ordered_pairs() -> None:
    from train.beard_finetune import b2c_flips

    p = np.array([0.2, 0.7, 0.4, 0.45, 0.9, 0.6])
    y = np.array([0, 1, 0, 1, 0, 1])
    person = np.array(["a", "a", "b", "b", "c", "c"])
    assert b2c_flips(p, y, person, 0.5) == {"pairs": 3, "flips": 1, "ordered": 2}
    assert b2c_flips(p, y, person, 0.42) == {"pairs": 3, "flips": 2, "ordered": 2}


def _part(rng, tail, n: int, y: np.ndarray):
    from train.beard_rows import Part

    a = rng.uniform(0, 2, (n, 4, 4, 256)).astype(np.float16)
    am = a[:, :, ::-1]
    e = rng.normal(size=(n, 192)).astype("float32")
    out = tail.predict(a.astype("float32"), verbose=0)
    f = np.concatenate([out["dlib_face_descriptor"], out["dlib_pooled"], e], axis=1)
    return Part(f, a, np.ascontiguousarray(am), e, e[:, ::-1].copy(), y, np.ones(n, bool))


@pytest.fixture(scope="module")
def tiny():
    from streamer.classify.face_resnet import load_face_resnet
    from train.sources import Faces
    from train.trunk import split_resnet

    rng = np.random.default_rng(0)
    tail = split_resnet(load_face_resnet())[1]
    n = 48
    cy = np.tile([0, 1], n // 2)
    cds = Dataset([Path(f"c{i}.jpg") for i in range(n)], cy, ("shaved", "unshaved"), "celeba")
    m = 30
    ry = np.tile([0, 0, 1], m // 3)
    rsrc = np.array(["lfw"] * 15 + ["aaf"] * 15)
    rds = Dataset([Path(f"r{i}.jpg") for i in range(m)], ry, ("shaved", "unshaved"), "real")
    ages = rng.uniform(15, 80, m)
    real = Faces(rds, rsrc, ages, np.array([""] * m), np.array([f"p{i}" for i in range(m)]))
    labelled = np.ones(m, bool)
    labelled[3] = False  # an ``unsure`` row: never trained on, never scored
    return {
        "celeba_ds": cds,
        "celeba": _part(rng, tail, n, cy),
        "men": np.arange(n) % 3 != 0,
        "real_faces": real,
        "labelled": labelled,
        "real": _part(rng, tail, m, ry),
        "b2c": _part(rng, tail, 4, np.array([0, 1, 0, 1])),
        "b2c_person": np.array(["a", "a", "b", "b"]),
    }


def test_tiny_run_holds_out_the_fold_and_each_variant_starts_as_the_frozen_head(tiny, tmp_path: Path) -> None:
    from train.beard_finetune import GRID, parse_variants, run, variant_name
    from train.split import split_dataset

    variants = parse_variants("1:1e-4,1:1e-4:lower")
    res = run(("lfw", "aaf"), (0,), tmp_path, Path("."), variants, epochs=2, patience=1, name="t", data=tiny)
    (fold,) = res["folds"]["lfw"]
    tuned = [variant_name(*v) for v in variants]
    assert len(set(tuned)) == 2
    for t in fold["finetuned"].values():
        # the branch before fine-tuning is the frozen head on the same faces (the lower-face
        # features' weights start at zero)
        assert t["start_agreement"] == 1.0
        assert 1 <= len(t["history"]) - 1 <= 2 and t["best_val_loss"] <= t["history"][0]["val_loss"]
    # trained on CelebA's men of the training split and aaf's labelled men, never on lfw's
    held = tiny["labelled"] & (tiny["real_faces"].source == "lfw")
    cuts = ("", ", validation threshold", ", real men's validation threshold")
    assert set(fold["scores"]) == {who + c for who in ("frozen", *tuned) for c in cuts}
    for r in fold["scores"].values():
        assert r["overall"]["n"] == held.sum() and set(r["per_source"]) == {"lfw"}
        assert r["threshold"] == 0.5 or r["threshold"] in GRID
        assert r["beard2clean"]["pairs"] == 2
    tr, va, _ = split_dataset(tiny["celeba_ds"], 0.1, 0.2, 0)
    celeba_men = tiny["men"][np.concatenate([tr, va])].sum()
    assert fold["n_train"] + fold["n_val"] == celeba_men + (tiny["labelled"] & ~held).sum()
    md = (tmp_path / "t.md").read_text()
    assert md.count("| lfw | 0 |") == 9
    assert json.loads((tmp_path / "t.json").read_text())["folds"]["lfw"][0]["seed"] == 0
    # the two folds pooled: every labelled man once, each model's confusion the folds' sum
    pool = res["pooled"]["0"]
    assert set(pool) == set(fold["scores"])
    (aaf,) = res["folds"]["aaf"]
    for who, r in pool.items():
        assert r["overall"]["n"] == tiny["labelled"].sum()
        cm = np.add(fold["scores"][who]["confusion"], aaf["scores"][who]["confusion"])
        assert r["confusion"] == cm.tolist()
        assert r["per_class"]["unshaved"]["n"] == (tiny["labelled"] & (tiny["real_faces"].ds.y == 1)).sum()
    assert "| 0 | frozen | " in md and "unshaved gain" in md


def test_pooled_by_seed_needs_every_fold_and_gains_compare_the_same_threshold_rule() -> None:
    from train.beard_finetune_report import frozen_of, markdown, pooled_by_seed

    def sc(tn: int, fp: int, fn: int, tp: int) -> dict:
        cell = {"accuracy": 0.5, "n": 1, "ci95": [0.0, 1.0]}
        return {
            "confusion": [[tn, fp], [fn, tp]],
            "overall": cell,
            "per_class": {"shaved": cell, "unshaved": cell},
            "threshold": 0.5,
            "beard2clean": {"flips": 0, "ordered": 0, "pairs": 0},
        }

    def run_(seed: int, tp: int) -> dict:
        scores = {"frozen": sc(8, 2, 5, 5), "fine-tuned last 1, lr 0.0001": sc(8, 2, 5 - tp, 5 + tp)}
        return {
            "seed": seed,
            "scores": scores,
            "n_train": 1,
            "n_val": 1,
            "frozen_epochs": 1,
            "seconds_frozen": 1.0,
            "finetuned": {},
        }

    result = {"folds": {"lfw": [run_(0, 1), run_(1, 0)], "aaf": [run_(0, 3)]}}
    pool = pooled_by_seed(result)
    assert set(pool) == {"0"}  # seed 1 lacks the aaf fold
    p = pool["0"]
    assert p["frozen"]["per_class"]["unshaved"] == {
        "accuracy": 0.5,
        "n": 20,
        "ci95": p["frozen"]["per_class"]["unshaved"]["ci95"],
    }
    assert p["fine-tuned last 1, lr 0.0001"]["per_class"]["unshaved"]["accuracy"] == 0.7
    assert frozen_of("fine-tuned last 2, lr 3e-05, validation threshold") == "frozen, validation threshold"
    assert frozen_of("fine-tuned last 1, lr 0.0001, real men's validation threshold") == (
        "frozen, real men's validation threshold"
    )
    assert frozen_of("fine-tuned last 1, lr 0.0001") == "frozen"
    header = {"command": "train beard-finetune", "commit": "x", "started": "t", "load_average": [1.0]}
    md = markdown(header | result | {"pooled": pool})
    assert "| 0 | fine-tuned last 1, lr 0.0001 | " in md and "| +20.0 |" in md
    assert pooled_by_seed({"folds": {"lfw": [run_(0, 1)]}}) == {}  # one fold: nothing to pool


def test_patience_0_trains_every_epoch_and_keeps_the_last(tiny, tmp_path: Path) -> None:
    from train.beard_finetune import parse_variants, run

    res = run(("aaf",), (1,), tmp_path, Path("."), parse_variants("1:1e-3"), epochs=3, patience=0, data=tiny)
    (t,) = res["folds"]["aaf"][0]["finetuned"].values()
    assert [h["epoch"] for h in t["history"]] == [0, 1, 2, 3]
    assert t["best_epoch"] == 3 and t["best_val_loss"] == t["history"][-1]["val_loss"]


@pytest.mark.parametrize("bad", ["3:1e-4", "1", "1:x", "1:1e-4:upper"])
def test_bad_variant_is_refused(bad: str) -> None:
    from train.beard_finetune import parse_variants

    with pytest.raises(ValueError):
        parse_variants(bad)
