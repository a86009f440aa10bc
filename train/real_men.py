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

Every man the CSVs label shaved or unshaved was looked at again, blind to the first label, by
another labeller (``real_men_looks.csv``'s ``second``: the detected face enlarged on numbered
contact sheets, the same rule), and every man the two looks differ on (or the second could not
tell) a third time (``third``), blind to both. The labels of record (``read_rows``'s default,
``agreed``) are the label two looks give (``agreed_label``), ``unsure`` where none does;
``first``: the CSVs' own.

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
# every CSV of labelled men, in the order they were made (``--real-men all``, ``--csv all``)
REAL_MEN_CSVS = tuple(
    REAL_MEN_CSV.with_name(f"real_men_beard{s}.csv")
    for s in ("", "_lfw2", "_aaf2", "_utk25", "_utk3", "_aaf3", "_lfw3")
)
# every man the CSVs label shaved or unshaved, looked at again blind by another labeller (``second``),
# and where the two differ a third time (``third``); see ``agreed_label``
LOOKS_CSV = REAL_MEN_CSV.with_name("real_men_looks.csv")
LABELLINGS = ("agreed", "first")  # the labels of record (three looks), or the CSVs' own (first look)
LABELS_HELP = (
    "'agreed': the labels of record (up to three looks, train/real_men_looks.csv); 'first': the CSVs'"
)
COLUMNS = ("source", "path", "person", "age", "race", "beard")
BEARD_VALUES = ("shaved", "unshaved", "unsure")
LABELS = ("shaved", "unshaved")
UPSAMPLE = 0  # the faces fill 90+ px of these images: the detector finds them without upsampling


def add_labels_argument(parser: object, flag: str, default: str, help: str = LABELS_HELP) -> None:
    """A CLI option choosing a labelling of the real men (``LABELLINGS``)."""
    parser.add_argument(flag, choices=LABELLINGS, default=default, help=help)  # type: ignore[attr-defined]


CsvFiles = Path | Sequence[Path]


def csv_files(csv_file: CsvFiles) -> list[Path]:
    """One CSV or several as a list of paths."""
    return [Path(csv_file)] if isinstance(csv_file, (str, Path)) else [Path(p) for p in csv_file]


def csv_name(csv_file: CsvFiles) -> str:
    """The CSVs' file names joined by ``+`` (how results name the labels they judged)."""
    return "+".join(p.name for p in csv_files(csv_file))


def agreed_label(first: str, second: str = "", third: str = "") -> str:
    """The label of record from independent looks: a face looked at once keeps its label; two
    looks that agree settle it; otherwise the label two of the three looks give, else unsure."""
    if not second:
        return first
    for lab in LABELS:
        if (first, second, third).count(lab) >= 2:
            return lab
    return "unsure"


def read_looks(looks_csv: Path = LOOKS_CSV) -> dict[tuple[str, str], tuple[str, str]]:
    """(source, path) -> (second, third) look of ``LOOKS_CSV`` (empty: not looked at)."""
    if not looks_csv.is_file():
        return {}
    with open(looks_csv, newline="") as fh:
        rows = list(csv.DictReader(fh))
    bad = sorted({r[k] for r in rows for k in ("second", "third")} - set(BEARD_VALUES) - {""})
    if bad:
        raise DataError(f"{looks_csv.name}: look values {bad} are not among {BEARD_VALUES}")
    return {(r["source"], r["path"]): (r["second"], r["third"]) for r in rows}


def read_rows(csv_file: CsvFiles = REAL_MEN_CSV, labels: str = "agreed") -> list[dict[str, str]]:
    """The CSVs' rows in file order (several CSVs one after another); every column present,
    every beard value allowed and no face (source, path) in two rows. ``labels`` "agreed": each
    ``beard`` is ``agreed_label`` of the CSV's look and ``LOOKS_CSV``'s (the CSV's own in
    ``first``); "first": the CSVs' own labels."""
    if labels not in LABELLINGS:
        raise ValueError(f"labels {labels!r} is not one of {LABELLINGS}")
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
    looks = read_looks() if labels == "agreed" else {}
    for r, k in zip(rows, keys, strict=True):
        r["first"] = r["beard"]
        # "yes": two independent looks gave this man the same label (no third was needed)
        r["unanimous"] = "yes" if k in looks and looks[k][0] == r["beard"] else ""
        if k in looks:
            r["beard"] = agreed_label(r["beard"], *looks[k])
    return rows


def load_real_men(
    shared: Path, csv_file: CsvFiles = REAL_MEN_CSV, labels: str = "agreed"
) -> tuple[Faces, np.ndarray]:
    """Every row of the CSV as ``Faces`` (``unsure`` rows get label 0) and a mask of the rows
    labelled shaved/unshaved (``read_rows``'s ``labels``). All rows, so that their cached
    features stay the same set."""
    return faces_of(shared, read_rows(csv_file, labels), csv_file)


def faces_of(shared: Path, rows: list[dict[str, str]], csv_file: CsvFiles) -> tuple[Faces, np.ndarray]:
    """``load_real_men`` of rows already read (``read_rows``)."""
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
    labels: str = "agreed",
    small_faces: tuple[int, ...] = (),
) -> dict[str, object]:
    """``score`` of a model on the labelled real men (of ``sources`` only, if given; ``labels``
    as ``read_rows``), through the service's ``Classifier`` on the cached backbone features, and
    its beard2clean flips. With the agreed labels, ``unanimous``: its ``score`` on the men whose
    two independent looks agree (the faces nobody would label otherwise). ``face<N>`` for each N
    of ``small_faces``: the same men with their faces seen N px wide, as in video
    (``train.degrade.at_face_width``)."""
    from train.features import features_for
    from train.multi import predict

    rows = read_rows(csv_file, labels)
    faces, labelled = faces_of(shared, rows, csv_file)
    feats = features_for(faces.ds, "mmod", UPSAMPLE, cache_dir, False)
    keep = labelled & (np.isin(faces.source, list(sources)) if sources else True)
    idx = np.flatnonzero(keep)
    every = predict(model_path, feats).argmax(axis=1)
    out: dict[str, object] = {
        "model": str(model_path),
        "data": csv_name(csv_file),
        "labels": labels,
        "csv_counts": label_counts(rows),
        "sources": sorted(set(faces.source[idx].tolist())),
        **score(faces.subset(idx), every[idx]),
        "beard2clean": beard2clean_flips(model_path, shared, cache_dir),
    }
    both = np.flatnonzero(keep & np.array([r["unanimous"] == "yes" for r in rows]))
    if labels == "agreed":
        out["unanimous"] = score(faces.subset(both), every[both])
    for px in small_faces:
        small = features_for(faces.ds, "mmod", UPSAMPLE, cache_dir, False, degraded=f"face{px}")
        seen = predict(model_path, small).argmax(axis=1)
        out[f"face{px}"] = score(faces.subset(idx), seen[idx])
        if labels == "agreed":
            out[f"face{px}"]["unanimous"] = score(faces.subset(both), seen[both])
    return out


def _shared_of(opt: object) -> Path:
    """``../shared`` of a CelebA ``--data`` folder (``<shared>/data/celeba``)."""
    data = Path(opt.data).resolve()  # type: ignore[attr-defined]
    return data.parents[1] if data.parent.name == "data" else data


def real_men_rows(
    opt: object, features: str, cache_dir: Path, small_faces: tuple[int, ...] = ()
) -> dict[str, object]:
    """The labelled real men of ``opt.real_men`` outside ``opt.real_men_test`` as training and
    validation rows of ``features`` (split by person with ``opt.val_fraction``, ``opt.seed``);
    ``small_faces``: the training men again, one row per width, their faces seen that many px
    wide (``train.degrade.at_face_width``)."""
    from train.features import features_for

    csv_file = opt.real_men  # type: ignore[attr-defined]
    faces, labelled = load_real_men(_shared_of(opt), csv_file, opt.real_men_labels)  # type: ignore[attr-defined]
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
    x_train, y_train = [x[tr]], [y[tr]]
    for px in small_faces:
        small = features_for(faces.ds, "mmod", UPSAMPLE, cache_dir, False, degraded=f"face{px}")
        x_train.append(small.matrix(features).astype("float32")[tr])
        y_train.append(y[tr])
    info = {
        "csv": csv_name(csv_file),
        "labels": opt.real_men_labels,  # type: ignore[attr-defined]
        "train_sources": sorted(set(faces.source[tr].tolist())),
        "test_sources": sorted(opt.real_men_test),  # type: ignore[attr-defined]
        "n_train": len(tr),
        "n_val": len(va),
        "n_test": len(te),
        "weight": opt.real_men_weight,  # type: ignore[attr-defined]
        "small_faces": list(small_faces),
    }
    return {
        "x_train": np.concatenate(x_train),
        "y_train": np.concatenate(y_train),
        "x_val": x[va],
        "y_val": y[va],
        "info": info,
    }


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
    out["real_men"] = evaluate_real_men(model_path, shared, cache_dir, sources, csv_file)  # agreed labels
    if real:
        out["real_men"]["trained"] = real["info"]
    return out
