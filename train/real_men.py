"""Real men labelled shaved / unshaved by looking (``train/real_men_beard.csv``): LFW (one
image a person), UTKFace and All-Age-Faces men from ``../shared/data/faces``, labelled with
CelebA's rule (``unshaved``: any beard, goatee, moustache or clearly visible stubble;
``shaved``: a clean face; ``unsure``: cannot tell, left out of scoring and training).

``train/real_men_beard_utk25.csv`` labels 180 more UTKFace men (aged 25+, drawn at random
among those the CSV lacks) the same way.
``train/real_men_beard_lfw2.csv`` labels 720 more LFW men (one image a person, persons no CSV
named before, a prefix of ``train.real_men_draw``'s seeded draw) the same way, so the held-out
LFW fold is big enough to judge each class, and ``train/real_men_beard_aaf2.csv`` 240 more
All-Age-Faces men aged 25+ (``real_men_draw``'s other draw). ``..._utk3.csv`` (600 UTKFace men
aged 20+, its ethnic groups and age bands in turn), ``..._aaf3.csv`` (every All-Age-Faces man
25+ left) and ``..._lfw3.csv`` (200 more LFW men) go on down ``real_men_draw``'s seeded orders,
labelled the same way. Every function here that takes a CSV also takes
several, read one after another as one list (``--csv A,B``).

The shaved/unshaved head runs only on men, so these are the faces it must get right; CelebA's
labels are the only large beard set, and these judge (and, by source, help train) it."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from train.data import DataError, Dataset
from train.evaluate import wilson
from train.sources import Faces, age_band

REAL_MEN_CSV = Path(__file__).resolve().parent / "real_men_beard.csv"
COLUMNS = ("source", "path", "person", "age", "race", "beard")
BEARD_VALUES = ("shaved", "unshaved", "unsure")
LABELS = ("shaved", "unshaved")
UPSAMPLE = 0  # the faces fill 90+ px of these images: the detector finds them without upsampling


CsvFiles = Path | Sequence[Path]


def csv_files(csv_file: CsvFiles) -> list[Path]:
    """One CSV or several as a list of paths."""
    return [Path(csv_file)] if isinstance(csv_file, (str, Path)) else [Path(p) for p in csv_file]


def csv_name(csv_file: CsvFiles) -> str:
    """The CSVs' file names joined by ``+`` (how results name the labels they judged)."""
    return "+".join(p.name for p in csv_files(csv_file))


def read_rows(csv_file: CsvFiles = REAL_MEN_CSV) -> list[dict[str, str]]:
    """The CSVs' rows in file order (several CSVs one after another); every column present,
    every beard value allowed and no face (source, path) in two rows."""
    rows: list[dict[str, str]] = []
    for f in csv_files(csv_file):
        try:
            with open(f, newline="") as fh:
                more = list(csv.DictReader(fh))
        except (OSError, UnicodeDecodeError, csv.Error) as e:
            raise DataError(f"{f}: cannot read ({e})") from e
        if not more or any(c not in more[0] for c in COLUMNS):
            raise DataError(f"{f}: needs the columns {','.join(COLUMNS)}")
        bad = sorted({r["beard"] for r in more} - set(BEARD_VALUES))
        if bad:
            raise DataError(f"{f}: beard values {bad} are not among {BEARD_VALUES}")
        rows += more
    keys = [(r["source"], r["path"]) for r in rows]
    if len(set(keys)) < len(keys):
        twice = next(k for k in keys if keys.count(k) > 1)
        raise DataError(f"{csv_name(csv_file)}: {twice[0]} {twice[1]} is labelled twice")
    return rows


def load_real_men(shared: Path, csv_file: CsvFiles = REAL_MEN_CSV) -> tuple[Faces, np.ndarray]:
    """Every row of the CSV as ``Faces`` (``unsure`` rows get label 0) and a mask of the rows
    labelled shaved/unshaved. All rows, so that their cached features stay the same set."""
    rows = read_rows(csv_file)
    root = Path(shared) / "data" / "faces"
    paths = [root / r["source"] / r["path"] for r in rows]
    absent = [str(p) for p in paths if not p.is_file()]
    if absent:
        raise DataError(f"{csv_name(csv_file)}: {len(absent)} image(s) are missing, e.g. {absent[0]}")
    labelled = np.array([r["beard"] in LABELS for r in rows])
    y = np.array([LABELS.index(r["beard"]) if r["beard"] in LABELS else 0 for r in rows], np.int64)
    person = np.array([r["person"].strip() for r in rows])
    src = np.array([r["source"] for r in rows])
    groups = np.array(
        [f"{s}:{p}" if p else f"{s}:#{r['path']}" for s, p, r in zip(src, person, rows, strict=True)]
    )
    ds = Dataset(paths, y, LABELS, f"real_men:{csv_name(csv_file)}", ["labels: by looking"], groups)

    def num(v: str) -> float:
        try:
            return float(v)
        except (TypeError, ValueError):
            return float("nan")

    faces = Faces(
        ds, src, np.array([num(r["age"]) for r in rows]), np.array([r["race"] for r in rows]), person
    )
    return faces, labelled


def label_counts(rows: list[dict[str, str]]) -> dict[str, dict[str, int]]:
    """How many men of each source the CSV labels shaved, unshaved and unsure."""
    out: dict[str, dict[str, int]] = {}
    for r in rows:
        c = out.setdefault(r["source"], dict.fromkeys(BEARD_VALUES, 0))
        c[r["beard"]] += 1
    return out


def _cell(ok: np.ndarray) -> dict[str, object]:
    k, n = int(ok.sum()), len(ok)
    lo, hi = wilson(k, n)
    return {"accuracy": round(k / n, 4) if n else None, "n": n, "ci95": [round(lo, 4), round(hi, 4)]}


def score(faces: Faces, pred: np.ndarray) -> dict[str, object]:
    """Accuracy with 95% Wilson intervals: overall, per class (recall), per source and per age
    band (faces whose source gives an age); ``pred`` holds label indices aligned with ``faces``."""
    y = faces.ds.y
    ok = pred == y
    out: dict[str, object] = {"overall": _cell(ok)}
    out["per_class"] = {lab: _cell(ok[y == i]) for i, lab in enumerate(LABELS)}
    out["per_source"] = {s: _cell(ok[faces.source == s]) for s in sorted(set(faces.source.tolist()))}
    bands = np.array([age_band(a) for a in faces.age])
    out["per_age"] = {b: _cell(ok[bands == b]) for b in sorted(set(bands.tolist()) - {""})}
    out["confusion"] = [[int(((y == t) & (pred == p)).sum()) for p in range(2)] for t in range(2)]
    return out


def celeba_men(celeba: Path) -> np.ndarray:
    """Which CelebA images (in ``load_celeba`` order) are of men: the head runs only on men."""
    from train.data import GENDER_RULE, load_celeba

    return load_celeba(celeba, GENDER_RULE).y == 1


def split_real_men(
    faces: Faces, labelled: np.ndarray, test_sources: tuple[str, ...], val_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(train, val, test) indices of the labelled rows: the test set is every labelled face of
    ``test_sources`` (never trained on); the rest split by person, ``val_fraction`` to validation."""
    bad = sorted(set(test_sources) - set(faces.source.tolist()))
    if bad:
        raise DataError(f"real men: no source {bad}; the CSV holds {sorted(set(faces.source.tolist()))}")
    held = np.isin(faces.source, list(test_sources))
    test = np.flatnonzero(labelled & held)
    pool = np.flatnonzero(labelled & ~held)
    groups = faces.groups()[pool]
    people = np.random.default_rng(seed).permutation(np.unique(groups))
    val_people = set(people[: round(len(people) * val_fraction)].tolist())
    in_val = np.array([g in val_people for g in groups], bool)
    return np.sort(pool[~in_val]), np.sort(pool[in_val]), test


def beard2clean_flips(model_path: Path, shared: Path, cache_dir: Path) -> dict[str, int]:
    """On beard2clean's synthetic pairs (one man with and without a beard): how many pairs the
    head calls right on both sides (``flips``: the cut-off falls between the twins) and how many
    it at least orders (the bearded twin's p(unshaved) higher)."""
    from train.features import features_for
    from train.multi import predict
    from train.sources import load_labels_csv

    b2c = load_labels_csv(Path(shared) / "data" / "faces" / "beard2clean", LABELS, "beard")
    p = predict(model_path, features_for(b2c.ds, "mmod", UPSAMPLE, cache_dir, False))[:, 1]
    pairs: dict[str, dict[int, int]] = {}
    for i, who in enumerate(b2c.person):
        pairs.setdefault(who, {})[int(b2c.ds.y[i])] = i
    both = [(d[0], d[1]) for d in pairs.values() if 0 in d and 1 in d]
    return {
        "pairs": len(both),
        "flips": sum(bool(p[u] >= 0.5 > p[s]) for s, u in both),
        "ordered": sum(bool(p[u] > p[s]) for s, u in both),
    }


def evaluate_real_men(
    model_path: Path,
    shared: Path,
    cache_dir: Path,
    sources: tuple[str, ...] = (),
    csv_file: CsvFiles = REAL_MEN_CSV,
) -> dict[str, object]:
    """``score`` of a model on the labelled real men (of ``sources`` only, if given), through
    the service's ``Classifier`` on the cached backbone features, and its beard2clean flips."""
    from train.features import features_for
    from train.multi import predict

    faces, labelled = load_real_men(shared, csv_file)
    feats = features_for(faces.ds, "mmod", UPSAMPLE, cache_dir, False)
    keep = labelled & (np.isin(faces.source, list(sources)) if sources else True)
    idx = np.flatnonzero(keep)
    pred = predict(model_path, feats)[idx].argmax(axis=1)
    return {
        "model": str(model_path),
        "data": csv_name(csv_file),
        "csv_counts": label_counts(read_rows(csv_file)),
        "sources": sorted(set(faces.source[idx].tolist())),
        **score(faces.subset(idx), pred),
        "beard2clean": beard2clean_flips(model_path, shared, cache_dir),
    }


def _shared_of(opt: object) -> Path:
    """``../shared`` of a CelebA ``--data`` folder (``<shared>/data/celeba``)."""
    data = Path(opt.data).resolve()  # type: ignore[attr-defined]
    return data.parents[1] if data.parent.name == "data" else data


def real_men_rows(opt: object, features: str, cache_dir: Path) -> dict[str, object]:
    """The labelled real men of ``opt.real_men`` outside ``opt.real_men_test`` as training and
    validation rows of ``features`` (split by person with ``opt.val_fraction``, ``opt.seed``)."""
    from train.features import features_for

    csv_file = opt.real_men  # type: ignore[attr-defined]
    faces, labelled = load_real_men(_shared_of(opt), csv_file)
    feats = features_for(faces.ds, "mmod", UPSAMPLE, cache_dir, False)
    tr, va, te = split_real_men(
        faces,
        labelled,
        tuple(opt.real_men_test),  # type: ignore[attr-defined]
        opt.val_fraction,  # type: ignore[attr-defined]
        opt.seed,  # type: ignore[attr-defined]
    )
    if len(set(faces.ds.y[tr].tolist())) < 2:
        raise DataError(f"{csv_name(csv_file)}: the real men left for training hold a single class")
    x = feats.matrix(features).astype("float32")
    y = faces.ds.y
    info = {
        "csv": csv_name(csv_file),
        "train_sources": sorted(set(faces.source[tr].tolist())),
        "test_sources": sorted(opt.real_men_test),  # type: ignore[attr-defined]
        "n_train": len(tr),
        "n_val": len(va),
        "n_test": len(te),
        "weight": opt.real_men_weight,  # type: ignore[attr-defined]
    }
    return {"x_train": x[tr], "y_train": y[tr], "x_val": x[va], "y_val": y[va], "info": info}


def real_men_metrics(opt: object, model_path: Path, cache_dir: Path, real: dict | None) -> dict[str, object]:
    """``{"real_men": ...}`` for a beard run: the model on the labelled real men it never trained
    on (all of them, or ``opt.real_men_test``'s sources), or nothing when the faces are absent."""
    shared = _shared_of(opt)
    if not (shared / "data" / "faces").is_dir():
        return {}
    out: dict[str, object] = {"men_only": bool(opt.men_only)}  # type: ignore[attr-defined]
    if real is not None and not real["info"]["test_sources"]:
        out["real_men"] = {"trained": real["info"]}  # every labelled man trained on: nothing to judge
        return out
    sources = tuple(real["info"]["test_sources"]) if real else ()
    csv_file = opt.real_men if real else REAL_MEN_CSV  # type: ignore[attr-defined]
    out["real_men"] = evaluate_real_men(model_path, shared, cache_dir, sources, csv_file)
    if real:
        out["real_men"]["trained"] = real["info"]
    return out
