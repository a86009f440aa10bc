"""train/variants.py: variant settings, the ensemble mean, the temperature fitted on validation and
the scores read back from saved logits (synthetic logits: no training, no data)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from train import variants


def test_settings_take_the_defaults_types_and_reject_unknown_keys() -> None:
    v = variants.parse(["ls=0.1", "hidden=256", "cw=2"])
    assert (v["ls"], v["hidden"], v["cw"], v["feats"]) == (0.1, 256, 2.0, variants.DEFAULTS["feats"])
    assert isinstance(v["hidden"], int)
    with pytest.raises(ValueError):
        variants.parse(["width=3"])


def _logits(y: np.ndarray, scale: float, rng: np.random.Generator) -> np.ndarray:
    """Logits whose margin is ``scale`` times a noisy, mostly right signal."""
    m = (2 * y - 1) * (1.0 + rng.normal(0, 1.0, len(y)))
    return np.stack([-m, m], axis=1) * scale / 2


def test_temperature_undoes_an_overconfident_scale() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 4000)
    calibrated = _logits(y, 1.0, rng)
    # calibrated logits: log-odds 2m, m = (2y-1)(1+N(0,1)) is not exactly calibrated, so fit the
    # reference temperature first, then check that 3x the logits need 3x the temperature
    t1 = variants.fit_temperature([{"val_y": y, "val_logit": calibrated}])
    t3 = variants.fit_temperature([{"val_y": y, "val_logit": 3 * calibrated}])
    assert t3 == pytest.approx(3 * t1, abs=0.1)
    p = variants.mean_probs([{"val_logit": 3 * calibrated}], "val_logit", t3)
    assert variants.nll(p, y) < variants.nll(variants.softmax(3 * calibrated), y)


def test_mean_of_heads_is_the_mean_of_their_probabilities() -> None:
    a = {"k": np.array([[0.0, 2.0], [1.0, 0.0]])}
    b = {"k": np.array([[0.0, -2.0], [3.0, 0.0]])}
    p = variants.mean_probs([a, b], "k")
    assert np.allclose(p, (variants.softmax(a["k"]) + variants.softmax(b["k"])) / 2)
    assert np.allclose(p.sum(axis=1), 1)


def _save(d: Path, rng: np.random.Generator, flip: np.ndarray | None = None) -> None:
    d.mkdir(parents=True)
    y = np.array([0, 1] * 50)
    src = np.array(["celeba"] * 60 + ["lfw"] * 40)
    test = _logits(y, 4.0, rng)
    if flip is not None:
        test[flip] = test[flip][:, ::-1] * 10  # confidently wrong
    np.savez(
        d / "full.npz",
        val_y=y,
        val_src=src,
        val_logit=_logits(y, 4.0, rng),
        test_y=y,
        test_src=src,
        test_logit=test,
        test_path=np.array([f"{i:03d}.jpg" for i in range(100)]),
    )
    ages = np.array([15.0, 15.0, 25.0, 75.0, np.nan] * 20)  # teens of both genders
    np.savez(
        d / "utkface.npz",
        held_y=y,
        held_logit=_logits(y, 4.0, rng),
        held_age=ages,
        val_y=y,
        val_logit=_logits(y, 4.0, rng),
    )


def test_summary_counts_celeba_test_errors_and_scores_held_out_sources(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    _save(tmp_path / "a", rng, flip=np.array([0, 1, 70]))  # two CelebA faces, one LFW face wrong
    s = variants.summarise([tmp_path / "a"])
    assert {"000.jpg", "001.jpg"} <= set(s["celeba_errors"]) and "070.jpg" not in s["celeba_errors"]
    assert s["celeba_test"] == pytest.approx(1 - len(s["celeba_errors"]) / 60)
    assert "utkface" in s and "aaf" not in s  # a fold not run is left out
    assert s["utkface"]["worst_band"][1] in ("10-19", "20-29", "70+")
    r = dict(np.load(tmp_path / "a" / "utkface.npz"))  # the girls' and boys' recall at 10-19
    ok, teen = r["held_logit"].argmax(1) == r["held_y"], r["held_age"] == 15.0
    for g in (0, 1):
        assert s["utkface"]["teens"][g] == pytest.approx(ok[teen & (r["held_y"] == g)].mean())
    assert "10-19 F/M" in variants.line("a", s)
    row = variants.line("a", s)
    assert row.startswith("| a | 1.00 |") and row.count("|") == 9
    # the mean of two heads is scored on the same faces; a fitted temperature is reported
    _save(tmp_path / "b", rng)
    both = variants.summarise([tmp_path / "a", tmp_path / "b"], "fit")
    assert both["temperature"] in variants.TEMPERATURES
    assert both["utkface"]["temperature"] in variants.TEMPERATURES  # the fold's own, from its validation
    assert set(both["celeba_errors"]) <= {f"{i:03d}.jpg" for i in range(60)}


def test_head_learns_a_separable_set_and_gives_logits() -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(0, 1, (3000, 8)).astype("float32")
    y = (x[:, 0] + 0.1 * x[:, 1] > 0).astype(int)
    v = variants.parse(["hidden=16", "layers=2", "ls=0.05"])
    logits = variants.fit_head(x[:2500], y[:2500], np.ones(2500, "float32"), x[2500:], y[2500:], v, epochs=15)
    z = logits(x[2500:])
    assert z.shape == (500, 2)
    assert (z.argmax(axis=1) == y[2500:]).mean() > 0.9


def test_teen_row_is_the_mean_of_the_seeds_cells(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    for name in ("s0", "s1"):
        _save(tmp_path / name, rng)
        r = dict(np.load(tmp_path / name / "utkface.npz"))
        np.savez(tmp_path / name / "aaf.npz", **r)
        np.savez(tmp_path / name / "lfw.npz", **(r | {"held_age": np.full(len(r["held_y"]), np.nan)}))
    cells = [variants.teen_cells(tmp_path / n) for n in ("s0", "s1")]
    for c, n in zip(cells, ("s0", "s1"), strict=True):
        r = dict(np.load(tmp_path / n / "utkface.npz"))
        ok = r["held_logit"].argmax(1) == r["held_y"]
        boys = (r["held_age"] == 15.0) & (r["held_y"] == 1)
        assert c["utkface boys"] == pytest.approx(ok[boys].mean())
        assert np.isnan(c["utkface boys 13-14"])  # no boy of 13-14 in these faces
        assert "lfw boys" not in c and "lfw women" in c  # LFW gives no ages
    row = variants.teen_line("s0", [tmp_path / "s0", tmp_path / "s1"])
    assert row.startswith("| s0 | 2 |") and row.count("|") == 13
    mean_boys = 100 * np.mean([c["aaf boys"] for c in cells])
    assert f"{mean_boys:.1f}% (" in row.split("|")[7]
