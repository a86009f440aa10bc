"""The beard card's leave-one-source-out section (``train card --loso``, train/beard_loso_card.py)
and ``train beard --real-men A,B`` (a head trained on every labelled man)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

RECIPE = "dlib_resnet_all, real-men weight 0.3"
OTHER = f"{RECIPE}, labels of real_men_beard.csv"


def _score(cm: list[list[int]]) -> dict:
    def cell(k: int, n: int) -> dict:
        return {"accuracy": k / n, "n": n, "ci95": [0.0, 1.0]}

    return {
        "overall": cell(cm[0][0] + cm[1][1], sum(map(sum, cm))),
        "per_class": {"shaved": cell(cm[0][0], sum(cm[0])), "unshaved": cell(cm[1][1], sum(cm[1]))},
        "confusion": cm,
    }


def _result(tmp: Path, seed: int, unshaved_right: int) -> Path:
    from train.beard_loso import pooled

    folds = {
        "lfw": {
            RECIPE: _score([[95, 5], [50 - unshaved_right, unshaved_right]]),
            OTHER: _score([[90, 10], [25, 25]]),
        },
        "aaf": {RECIPE: _score([[99, 1], [2, 48]]), OTHER: _score([[99, 1], [20, 30]])},
    }
    r = {"seed": seed, "csv": "a.csv+b.csv", "folds": folds}
    r["pooled"] = pooled(r)
    p = tmp / f"beard-loso-x-seed{seed}.json"
    p.write_text(json.dumps(r))
    return p


def test_loso_section_tabulates_each_seed_fold_and_pool_and_judges_the_goal(tmp_path: Path) -> None:
    from train.beard_loso_card import loso_section

    text = "\n".join(
        loso_section([_result(tmp_path, 0, 48), _result(tmp_path, 1, 30)], "dlib_resnet_all", 0.3)
    )
    assert "[seed 0](../benchmarks/results/beard-loso-x-seed0.md)" in text
    assert "| lfw | 0 | 95.3% " in text and "| aaf | 1 | 98.0% " in text  # (95 + 48) / 150; 147 / 150
    assert "| **pooled** | 0 | 96.7% " in text  # (95 + 48 + 99 + 48) / 300
    assert "| **pooled** | 1 | 90.7% " in text  # unshaved 78 of 100
    assert "trained on the labels of real_men_beard.csv alone" in text
    assert "| **pooled** | 0 | 81.3% " in text  # the CSV-alone variant: (90 + 25 + 99 + 30) / 300
    assert "met by 1 of 2 seeds (**not met**)" in text
    assert "Means over the 2 seeds" in text
    assert "| lfw | every CSV | 89.3% (83.3%–95.3%) | 95.0% (95.0%–95.0%) | 78.0% (60.0%–96.0%) |" in text
    assert "| **pooled** | real_men_beard.csv | 81.3% (81.3%–81.3%) | " in text
    one = "\n".join(loso_section([_result(tmp_path, 0, 48)], "dlib_resnet_all", 0.3))
    assert "Means over" not in one  # one seed: its own rows say it all
    with pytest.raises(ValueError, match=r"dlib_resnet_all, real-men weight 0\.5"):
        loso_section([_result(tmp_path, 0, 48)], "dlib_resnet_all", 0.5)


def test_train_beard_and_card_take_several_csvs_and_loso_results() -> None:
    from train.cli import _parser

    args = _parser().parse_args(["beard", "--real-men", "train/a.csv,train/b.csv"])
    assert args.real_men == (Path("train/a.csv"), Path("train/b.csv"))
    args = _parser().parse_args(
        ["card", "--metrics", "m.json", "--out", "c.md", "--loso", "s0.json", "s1.json"]
    )
    assert args.loso == [Path("s0.json"), Path("s1.json")]
    assert _parser().parse_args(["card", "--metrics", "m.json", "--out", "c.md"]).loso is None


def test_a_head_trained_on_real_men_carries_their_sources_licences() -> None:
    from train.model_card import _licence

    assert "CelebA's terms" in _licence(None)
    line = _licence({"train_sources": ["aaf", "lfw", "utkface"]})
    assert "UTKFace (**non-commercial research use only**)" in line
    assert "LFW (research use)" in line and "All-Age-Faces" in line
    assert "the model is for **non-commercial research use only**" in line


def test_the_men_two_looks_agree_on_and_faces_seen_smaller_are_tabulated_and_judged(tmp_path: Path) -> None:
    from train.beard_loso import pooled
    from train.beard_loso_card import loso_section

    def fold(cm: list[list[int]], both: list[list[int]], small: list[list[int]]) -> dict:
        return {
            **_score(cm),
            "unanimous": _score(both),
            "face40": {**_score(small), "unanimous": _score(both)},
            "validation_cutoff": {"cutoff": 0.4, **_score(cm)},  # another cut-off, not other men
        }

    paths = []
    for seed, right in ((0, 44), (1, 46)):
        folds = {
            "lfw": {RECIPE: fold([[95, 5], [50 - right, right]], [[90, 2], [1, 40]], [[97, 3], [30, 20]])},
            "aaf": {RECIPE: fold([[99, 1], [2, 48]], [[98, 0], [0, 45]], [[99, 1], [25, 25]])},
        }
        r = {"seed": seed, "csv": "a.csv", "folds": folds}
        r["pooled"] = pooled(r)
        assert r["pooled"][RECIPE]["face40"]["confusion"] == [[196, 4], [55, 45]]
        assert "validation_cutoff" not in r["pooled"][RECIPE]
        paths.append(tmp_path / f"s{seed}.json")
        paths[-1].write_text(json.dumps(r))
    text = "\n".join(loso_section(paths, "dlib_resnet_all", 0.3))
    assert f"| {RECIPE} | men two looks agree on | " in text
    assert f"| {RECIPE} | faces seen 40 px wide | 80.3% (80.3%–80.3%) | 98.0% (98.0%–98.0%) | 45.0% " in text
    assert f"| {RECIPE} | faces seen 40 px wide, men two looks agree on | " in text
    assert "On the men two looks agree on: met by 2 of 2 seeds." in text
