"""The multi-source recipe: the backbone features of every shared source (cached per source, each
with its own detector upsampling), weights that balance source, label and age band, splits that
are stratified and person-disjoint, evaluation per group with confidence intervals and a
calibration check, and the leave-one-source-out evaluation (``train loso``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from train.crops import default_cache_dir
from train.data import GENDER_RULE, Dataset, LabelRule, split_indices
from train.evaluate import confusion_metrics, wilson
from train.features import Features, features_for, map_sets
from train.sources import TEEN_BOYS, UPSAMPLE, Faces, concat, load_source
from train.split import split_stratified

ECE_BINS = 10
MIN_CELL = 20  # a group smaller than this is listed but not judged against the goals


_LOADED: dict[tuple[str, ...], tuple[Faces, Features]] = {}


def source_features(
    name: str,
    shared: Path,
    rule: LabelRule = GENDER_RULE,
    cache_dir: Path | None = None,
    progress: bool = True,
    degraded: str | None = None,
    seed: int = 0,
) -> tuple[Faces, Features]:
    """One source's faces and their backbone features (detected and computed once, cached on
    disk; kept in memory too, as the folds of ``train loso`` load every source several times);
    ``degraded``/``seed``: of video-like copies of the faces (``features_for``)."""
    cache_dir = cache_dir or default_cache_dir()
    key = (
        name,
        str(Path(shared).resolve()),
        rule.attribute,
        str(Path(cache_dir).resolve()),
        f"{degraded}{seed}",
    )
    if key not in _LOADED:
        faces = load_source(name, shared, rule)
        feats = features_for(
            faces.ds, "mmod", UPSAMPLE[name], cache_dir, progress, degraded=degraded, seed=seed
        )
        _LOADED[key] = (faces, feats)
    return _LOADED[key]


def take(feats: Features, idx: np.ndarray) -> Features:
    return Features(map_sets([feats.x], lambda v: v[0][idx]), feats.found[idx])


def load_multi(
    sources: tuple[str, ...] | list[str],
    shared: Path,
    rule: LabelRule = GENDER_RULE,
    cache_dir: Path | None = None,
    progress: bool = True,
    degraded: str | None = None,
    seed: int = 0,
) -> tuple[Faces, Features]:
    parts = [source_features(s, Path(shared), rule, cache_dir, progress, degraded, seed) for s in sources]
    faces = concat([f for f, _ in parts])
    # (a source's old cache loads its newer sets, dlib_lower* among them, only when asked for)
    feats = Features(
        map_sets([x.x for _, x in parts], np.concatenate), np.concatenate([x.found for _, x in parts])
    )
    return faces, feats


def split_sources(
    faces: Faces, test_fraction: float, val_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stratified by source and label, person-disjoint (``split_stratified``); CelebA's rows take
    the split the CelebA-only models were made with (the last tenth by name tests), so that its
    test faces are unseen by those models too and the two compare on the same faces."""
    cel = faces.source == "celeba"
    tr, va, te = split_stratified(faces.ds.y, test_fraction, val_fraction, seed, faces.groups(), faces.source)
    if not cel.any():
        return tr, va, te
    keep = lambda idx: idx[~cel[idx]]  # noqa: E731
    c = np.flatnonzero(cel)  # in name order (load_celeba sorts)
    ctr, cva, cte = split_indices(len(c), test_fraction, val_fraction, seed)
    return (
        np.sort(np.concatenate([keep(tr), c[ctr]])),
        np.sort(np.concatenate([keep(va), c[cva]])),
        np.sort(np.concatenate([keep(te), c[cte]])),
    )


def balance_weights(faces: Faces, split_teens: bool = False, teen_boys: float = TEEN_BOYS) -> np.ndarray:
    """Per-face training weights: every source weighs the same in total, every label the same
    within a source, and within those every age band (where the source gives ages) the same,
    each face's weight clipped to at most 4x the median so that a rare cell cannot dominate.
    ``split_teens``: 10-14 and 15-19 balanced as two bands; ``teen_boys``: boys of 10-19 weigh
    that many times their balanced weight (after the clip; the recipe's ``TEEN_BOYS``). Mean weight 1."""
    n = len(faces)
    w = np.ones(n)
    bands = faces.age_band()
    if split_teens:
        bands = np.where((bands == "10-19") & (faces.age < 15), "10-14", bands)
    srcs = sorted(set(faces.source.tolist()))
    for s in srcs:
        ins = faces.source == s
        labs = sorted(set(faces.ds.y[ins].tolist()))
        for c in labs:
            cell = ins & (faces.ds.y == c)
            sub_bands = sorted(set(bands[cell].tolist()))
            for b in sub_bands:
                m = cell & (bands == b)
                w[m] = 1.0 / (len(srcs) * len(labs) * len(sub_bands) * m.sum())
    w = np.minimum(w, 4 * np.median(w))
    w[(faces.age_band() == "10-19") & (np.array(faces.ds.labels)[faces.ds.y] == "male")] *= teen_boys
    return (w * n / w.sum()).astype("float32")


def source_summary(faces: Faces, tr: np.ndarray, va: np.ndarray, te: np.ndarray) -> dict[str, object]:
    out: dict[str, object] = {}
    for s in dict.fromkeys(faces.source.tolist()):
        row = {}
        for name, idx in (("train", tr), ("val", va), ("test", te)):
            sel = idx[faces.source[idx] == s]
            row[name] = {lab: int((faces.ds.y[sel] == i).sum()) for i, lab in enumerate(faces.ds.labels)}
        out[s] = row
    return out


def calibration(conf: np.ndarray, correct: np.ndarray, bins: int = ECE_BINS) -> dict[str, object]:
    """Expected calibration error of the winning class's probability, and the reliability
    table (per probability bin: faces, mean probability, accuracy)."""
    edges = np.linspace(0.5, 1.0, bins + 1)
    table, ece, n = [], 0.0, len(conf)
    for i in range(bins):
        lo, hi = edges[i], edges[i + 1]
        m = (conf >= lo) & ((conf < hi) if i < bins - 1 else (conf <= hi))
        if not m.any():
            continue
        acc, p = float(correct[m].mean()), float(conf[m].mean())
        ece += m.sum() / n * abs(acc - p)
        table.append(
            {
                "bin": [round(lo, 2), round(hi, 2)],
                "n": int(m.sum()),
                "mean_p": round(p, 4),
                "accuracy": round(acc, 4),
            }
        )
    return {"ece": round(ece, 4), "reliability": table}


def group_table(ok: np.ndarray, keys: np.ndarray) -> dict[str, dict[str, object]]:
    out = {}
    for k in sorted(set(keys.tolist())):
        if k == "":
            continue
        m = keys == k
        c, n = int(ok[m].sum()), int(m.sum())
        lo, hi = wilson(c, n)
        out[str(k)] = {"accuracy": round(c / n, 4), "ci95": [round(lo, 4), round(hi, 4)], "n": n}
    return out


def score(faces: Faces, probs: np.ndarray, threshold: float = 0.6) -> dict[str, object]:
    """Accuracy with its interval, per class, per age band, per ethnic group and per source, the
    calibration check, and what the service's ``?`` threshold does (shown share, accuracy)."""
    labels = faces.ds.labels
    y = faces.ds.y
    pred = probs.argmax(axis=1)
    conf = probs.max(axis=1)
    ok = pred == y
    shown = conf >= threshold
    lo, hi = wilson(int(ok[shown].sum()), int(shown.sum()))
    return {
        **confusion_metrics(y, pred, labels),
        "n_images": len(y),
        "by_label": group_table(ok, np.array(labels)[y]),
        "by_age": group_table(ok, faces.age_band()),
        "by_race": group_table(ok, faces.race),
        "by_source": group_table(ok, faces.source),
        "by_label_age": group_table(
            ok, np.array([f"{labels[c]} {b}" if b else "" for c, b in zip(y, faces.age_band(), strict=False)])
        ),
        **calibration(conf, ok),
        "threshold": threshold,
        "shown": round(float(shown.mean()), 4),
        "accuracy_shown": round(float(ok[shown].mean()), 4) if shown.any() else None,
        "accuracy_shown_ci95": [round(lo, 4), round(hi, 4)],
    }


def predict(model_path: Path, feats: Features) -> np.ndarray:
    """Probabilities through the service's ``Classifier.predict_proba`` on the cached features."""
    from streamer.classify import Classifier

    clf = Classifier("eval", model_path, max_batch=64)
    x = feats.matrix(clf.meta.features).astype("float32")
    return np.concatenate([clf.predict_proba(x[i : i + 64]) for i in range(0, len(x), 64)])


def evaluate_features(model_path: Path, faces: Faces, feats: Features) -> dict[str, object]:
    return {
        "model": str(model_path),
        "data": faces.ds.source,
        **score(faces, predict(model_path, feats)),
        "n_no_face": feats.n_no_face,  # no face detected: the whole image was aligned and classified
    }


def as_dataset(faces: Faces) -> Dataset:
    return faces.ds
