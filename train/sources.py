"""Several face sources as one data set: CelebA plus the shared ``labels.csv`` folders
(``path,gender,age,race,person``; UTKFace, LFW, All-Age-Faces, beard2clean), with what each
face is known to be (source, gender, age, race, person) kept beside it, so that training can
sample them balanced, split them by person and report per group.

A ``labels.csv`` folder is also a data format of its own: ``train gender --data FOLDER``
reads it (``load_labels_csv``)."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from train.data import ATTR_FILE, DataError, Dataset, LabelRule, load_celeba

LABELS_CSV = "labels.csv"
# the shared sources, in the order the multi-source recipe uses them
SOURCES = ("celeba", "utkface", "lfw", "aaf")
AGE_BANDS = ("10-19", "20-29", "30-39", "40-49", "50-59", "60-69", "70+")
# Detector upsampling per source: CelebA's 89x109 crops hold ~45 px faces (upsample 1 needed);
# the others hold faces of 90 px and more, which upsample 0 finds (3x faster).
UPSAMPLE = {"celeba": 1, "utkface": 0, "lfw": 0, "aaf": 0, "beard2clean": 0}
# UTKFace is 20,292 faces, mostly 20-40: at most this many per (age band, gender) cell
UTK_CELL_CAP = 500
# boys of 10-19 weigh this many times their balanced weight: teenage boys were the weakest cell on
# held-out sources (recall 77-84%, half the boys of 13-14 called female); twice lifts them 3-5
# points on both held-out folds over 4 seeds for about a point of the teenage girls (gender card)
TEEN_BOYS = 2.0  # train.multi.balance_weights


@dataclass
class Faces:
    """A data set with per-face facts; arrays are aligned with ``ds.paths``."""

    ds: Dataset
    source: np.ndarray  # str
    age: np.ndarray  # float, nan where unknown
    race: np.ndarray  # str, "" where unknown
    person: np.ndarray  # str, "" where unknown (then every face is its own person)

    def __len__(self) -> int:
        return len(self.ds)

    def subset(self, idx: np.ndarray) -> Faces:
        idx = np.asarray(idx, dtype=np.int64)
        return Faces(self.ds.subset(idx), self.source[idx], self.age[idx], self.race[idx], self.person[idx])

    def groups(self) -> np.ndarray:
        """Person ids for splitting: the named person, or the file itself where none is named."""
        pairs = enumerate(zip(self.source, self.person, strict=True))
        return np.array([f"{s}:{p}" if p else f"{s}:#{i}" for i, (s, p) in pairs])

    def age_band(self) -> np.ndarray:
        return np.array([age_band(a) for a in self.age])


def age_band(age: float) -> str:
    if not np.isfinite(age) or age < 10:
        return ""
    return AGE_BANDS[min(int(age) // 10 - 1, len(AGE_BANDS) - 1)]


def is_labels_folder(path: Path) -> bool:
    return (Path(path) / LABELS_CSV).is_file()


def read_labels_csv(root: Path, column: str = "gender") -> tuple[list[dict[str, str]], list[str]]:
    """Rows of ``labels.csv`` that have a value in ``column``, sorted by path."""
    f = Path(root) / LABELS_CSV
    try:
        with open(f, newline="") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise DataError(f"{f}: cannot read ({e})") from e
    if not rows or "path" not in rows[0] or column not in rows[0]:
        raise DataError(f"{f}: needs the columns path and {column} (path,gender,age,race,person)")
    rows = sorted((r for r in rows if (r.get(column) or "").strip()), key=lambda r: r["path"])
    return rows, [r[column].strip() for r in rows]


def load_labels_csv(
    root: Path, labels: tuple[str, ...], column: str = "gender", name: str | None = None
) -> Faces:
    """A ``labels.csv`` folder: images named by ``path`` (relative to the folder), labelled
    by ``column`` (``gender``: female/male; ``beard``: shaved/unshaved)."""
    root = Path(root)
    rows, values = read_labels_csv(root, column)
    bad = sorted({v for v in values if v not in labels})
    if bad:
        raise DataError(f"{root / LABELS_CSV}: {column} values {bad} are not labels of this model {labels}")
    paths = [root / r["path"] for r in rows]
    absent = [str(p) for p in paths if not p.is_file()]
    if absent:
        raise DataError(f"{root}: {len(absent)} image(s) in {LABELS_CSV} are missing, e.g. {absent[0]}")
    y = np.array([labels.index(v) for v in values], np.int64)
    src = name or root.name
    person = np.array([(r.get("person") or "").strip() for r in rows])
    groups = np.array([p or f"#{r['path']}" for p, r in zip(person, rows, strict=False)])
    ds = Dataset(paths, y, labels, f"labels:{root}", [f"labels: the {column} column of {LABELS_CSV}"], groups)
    if len(set(y.tolist())) < 2:
        raise DataError(f"{root}: only one class present; need images of at least two of {labels}")

    def num(v: str) -> float:
        try:
            return float(v)
        except (TypeError, ValueError):
            return float("nan")

    return Faces(
        ds,
        np.array([src] * len(rows)),
        np.array([num(r.get("age", "")) for r in rows], float),
        np.array([(r.get("race") or "").strip() for r in rows]),
        person,
    )


def load_celeba_faces(root: Path, rule: LabelRule) -> Faces:
    ds = load_celeba(root, rule)
    n = len(ds)
    return Faces(ds, np.array(["celeba"] * n), np.full(n, np.nan), np.array([""] * n), np.array([""] * n))


def balanced_cells(faces: Faces, cap: int, seed: int = 0) -> np.ndarray:
    """Indices of at most ``cap`` faces per (age band, label) cell, drawn by ``seed``, sorted."""
    rng = np.random.default_rng(seed)
    bands = faces.age_band()
    keep: list[np.ndarray] = []
    for b in sorted(set(bands.tolist())):
        for c in range(len(faces.ds.labels)):
            idx = np.flatnonzero((bands == b) & (faces.ds.y == c))
            keep.append(rng.permutation(idx)[:cap] if len(idx) > cap else idx)
    return np.sort(np.concatenate(keep)) if keep else np.arange(0)


def load_source(name: str, shared: Path, rule: LabelRule) -> Faces:
    """One shared source as the multi-source recipe uses it (UTKFace capped per cell)."""
    if name == "celeba":
        return load_celeba_faces(shared / "data" / "celeba", rule)
    f = load_labels_csv(shared / "data" / "faces" / name, rule.labels, "gender", name)
    if name == "utkface":
        f = f.subset(balanced_cells(f, UTK_CELL_CAP))
    return f


def concat(parts: list[Faces]) -> Faces:
    labels = parts[0].ds.labels
    ds = Dataset(
        [p for f in parts for p in f.ds.paths],
        np.concatenate([f.ds.y for f in parts]),
        labels,
        "sources:" + "+".join(dict.fromkeys(f.source[0] for f in parts if len(f))),
    )
    ds.groups = np.concatenate([f.groups() for f in parts])
    return Faces(
        ds,
        np.concatenate([f.source for f in parts]),
        np.concatenate([f.age for f in parts]),
        np.concatenate([f.race for f in parts]),
        np.concatenate([f.person for f in parts]),
    )


def is_celeba_folder(path: Path) -> bool:
    return (Path(path) / ATTR_FILE).exists()
