"""Data sets: CelebA-style folders, one-folder-per-class folders, and pickled DataFrames.

Every loader returns a ``Dataset``: image files plus integer labels indexing ``labels``.
Every problem with the input data raises ``DataError`` with a message naming the file and
what is wrong; the CLI turns it into exit code 2.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ATTR_FILE = "list_attr_celeba.txt"
IMAGE_DIR = "images"
IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


class DataError(Exception):
    """The training or evaluation data is missing, malformed or unusable."""


@dataclass(frozen=True)
class LabelRule:
    """How a CelebA attribute row becomes a class.

    ``positive_label`` is the class of images with ``attribute == 1``, unless one of
    ``unless_any`` is also 1, in which case the image gets the other label.
    """

    attribute: str
    labels: tuple[str, str]
    positive_label: str
    unless_any: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, object]:
        return {
            "attribute": self.attribute,
            "labels": list(self.labels),
            "positive_label": self.positive_label,
            "unless_any": list(self.unless_any),
        }

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> LabelRule:
        return cls(
            str(d["attribute"]),
            tuple(d["labels"]),  # type: ignore[arg-type]
            str(d["positive_label"]),
            tuple(d.get("unless_any", ())),  # type: ignore[arg-type]
        )

    def describe(self) -> str:
        neg = next(x for x in self.labels if x != self.positive_label)
        s = f"{self.positive_label} if {self.attribute} == 1"
        if self.unless_any:
            s += f" and none of {', '.join(self.unless_any)} == 1"
        return s + f", else {neg}"


# Gender: CelebA's ``Male`` column.
GENDER_RULE = LabelRule("Male", ("female", "male"), "male")
# Shaved vs unshaved: ``No_Beard`` == 1 means shaved, but CelebA marks stubble
# (5_o_Clock_Shadow), goatees and moustaches separately and sometimes together with
# No_Beard == 1; any of them counts as unshaved here. Sideburns alone do not.
BEARD_RULE = LabelRule(
    "No_Beard", ("shaved", "unshaved"), "shaved", ("5_o_Clock_Shadow", "Goatee", "Mustache")
)


@dataclass
class Dataset:
    paths: list[Path]
    y: np.ndarray  # int64 indices into labels
    labels: tuple[str, ...]
    source: str
    notes: list[str] = field(default_factory=list)
    # who each image shows, where the source says (same value: same person; split together)
    groups: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.paths)

    def subset(self, idx: Sequence[int] | np.ndarray) -> Dataset:
        idx = np.asarray(idx, dtype=np.int64)
        g = self.groups[idx] if self.groups is not None else None
        return Dataset([self.paths[i] for i in idx], self.y[idx], self.labels, self.source, self.notes, g)

    def counts(self) -> dict[str, int]:
        return {lab: int((self.y == i).sum()) for i, lab in enumerate(self.labels)}


def read_celeba_attributes(attr_file: Path) -> tuple[list[str], list[str], np.ndarray]:
    """(attribute names, image names, values (n, n_attrs) of +1/-1) from list_attr_celeba.txt."""
    if not attr_file.is_file():
        raise DataError(f"{attr_file}: CelebA attribute file not found")
    try:
        lines = attr_file.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{attr_file}: cannot read attribute file ({e})") from e
    lines = [ln for ln in lines if ln.strip()]
    if len(lines) < 2:
        raise DataError(f"{attr_file}: expected a count line, a line of attribute names, then rows")
    try:
        count = int(lines[0].split()[0])
    except ValueError:
        raise DataError(
            f"{attr_file}: line 1 should be the image count, got {lines[0][:60]!r}; "
            "is this CelebA's list_attr_celeba.txt?"
        ) from None
    names = lines[1].split()
    rows = lines[2:]
    if len(rows) != count:
        raise DataError(f"{attr_file}: line 1 says {count} images but {len(rows)} rows follow")
    files: list[str] = []
    vals = np.zeros((len(rows), len(names)), np.int8)
    for i, row in enumerate(rows):
        parts = row.split()
        if len(parts) != len(names) + 1:
            raise DataError(
                f"{attr_file}: row {i + 3} has {len(parts) - 1} values, expected {len(names)} ({row[:40]!r})"
            )
        try:
            v = [int(x) for x in parts[1:]]
        except ValueError:
            raise DataError(f"{attr_file}: row {i + 3} holds a non-integer value ({row[:40]!r})") from None
        if any(x not in (1, -1) for x in v):
            raise DataError(f"{attr_file}: row {i + 3}: values must be 1 or -1")
        files.append(parts[0])
        vals[i] = v
    return names, files, vals


def load_celeba(root: Path, rule: LabelRule, limit: int | None = None) -> Dataset:
    """A CelebA-style folder: ``list_attr_celeba.txt`` and ``images/``."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: data folder not found")
    attr_file = root / ATTR_FILE
    names, files, vals = read_celeba_attributes(attr_file)
    need = (rule.attribute, *rule.unless_any)
    missing = [a for a in need if a not in names]
    if missing:
        raise DataError(
            f"{attr_file}: no attribute column(s) {', '.join(missing)}; it has {', '.join(names)}"
        )
    col = vals[:, names.index(rule.attribute)] == 1
    for a in rule.unless_any:
        col &= vals[:, names.index(a)] != 1
    pos = rule.labels.index(rule.positive_label)
    y = np.where(col, pos, 1 - pos).astype(np.int64)
    order = np.argsort(files, kind="stable")
    files = [files[i] for i in order]
    y = y[order]
    if limit is not None:
        files, y = files[:limit], y[:limit]
    img_dir = root / IMAGE_DIR
    if not img_dir.is_dir():
        raise DataError(f"{root}: no {IMAGE_DIR}/ folder beside {ATTR_FILE}")
    paths = [img_dir / f for f in files]
    absent = [p.name for p in paths if not p.is_file()]
    if absent:
        raise DataError(
            f"{img_dir}: {len(absent)} image(s) listed in {ATTR_FILE} are missing, "
            f"e.g. {', '.join(absent[:3])}"
        )
    ds = Dataset(paths, y, rule.labels, f"celeba:{root}", [f"labels: {rule.describe()}"])
    _check_classes(ds)
    return ds


def load_class_folders(root: Path, labels: Sequence[str] | None = None) -> Dataset:
    """A folder with one subfolder of images per class, named by the class label."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: data folder not found")
    subs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not subs:
        raise DataError(
            f"{root}: neither a CelebA folder ({ATTR_FILE} + {IMAGE_DIR}/) nor a folder of class subfolders"
        )
    if labels is None:
        labels = [d.name for d in subs]
    labels = tuple(labels)
    unknown = [d.name for d in subs if d.name not in labels]
    if unknown:
        raise DataError(
            f"{root}: subfolder(s) {', '.join(unknown)} are not labels of this model ({', '.join(labels)})"
        )
    paths: list[Path] = []
    y: list[int] = []
    for d in subs:
        files = sorted(p for p in d.iterdir() if p.suffix.lower() in IMAGE_EXTS and p.is_file())
        paths += files
        y += [labels.index(d.name)] * len(files)
    ds = Dataset(paths, np.asarray(y, np.int64), labels, f"folders:{root}")
    if not paths:
        raise DataError(f"{root}: the class subfolders hold no images ({', '.join(sorted(IMAGE_EXTS))})")
    _check_classes(ds)
    return ds


IMAGE_COLUMNS = ("image", "images", "img", "pixels", "face", "array", "x")
LABEL_COLUMNS = ("label", "labels", "target", "class", "y", "gender", "beard")


def load_dataframe(
    pkl: Path,
    labels: Sequence[str],
    cache_dir: Path,
    image_column: str | None = None,
    label_column: str | None = None,
) -> Dataset:
    """The tutorials' format: a pickled pandas DataFrame of image arrays and labels.

    Images are numpy arrays (H, W), (H, W, 1) or (H, W, 3) RGB, or strings of
    space-separated grey values of a square image; labels are class indices or names.
    The images are written once as PNG files (lossless) under the cache so they go
    through the same detect-and-crop path as any other image.
    """
    pkl = Path(pkl)
    if not pkl.is_file():
        raise DataError(f"{pkl}: pickle file not found")
    try:
        import pandas as pd
    except ImportError as e:
        raise DataError("reading a pickled DataFrame needs pandas: pip install pandas") from e
    try:
        df = pd.read_pickle(pkl)
    except Exception as e:
        raise DataError(f"{pkl}: cannot unpickle ({type(e).__name__}: {e})") from e
    if not isinstance(df, pd.DataFrame):
        raise DataError(f"{pkl}: holds a {type(df).__name__}, expected a pandas DataFrame")
    cols = {str(c).lower(): c for c in df.columns}
    icol = image_column or next((cols[c] for c in IMAGE_COLUMNS if c in cols), None)
    lcol = label_column or next((cols[c] for c in LABEL_COLUMNS if c in cols), None)
    if icol not in df.columns or lcol not in df.columns:
        raise DataError(
            f"{pkl}: cannot find the image and label columns among {list(df.columns)}; "
            f"expected one of {IMAGE_COLUMNS} and one of {LABEL_COLUMNS}"
        )
    labels = tuple(labels)
    out_dir = cache_dir / "frames" / _file_digest(pkl)
    out_dir.mkdir(parents=True, exist_ok=True)
    import cv2

    paths, y = [], []
    for i, (img, lab) in enumerate(zip(df[icol], df[lcol], strict=True)):
        arr = _as_image(img, pkl, i)
        if isinstance(lab, str):
            if lab not in labels:
                raise DataError(f"{pkl}: row {i}: label {lab!r} is not one of {labels}")
            k = labels.index(lab)
        else:
            try:
                k = int(lab)
            except (TypeError, ValueError):
                raise DataError(f"{pkl}: row {i}: label {lab!r} is neither a class name nor index") from None
            if not 0 <= k < len(labels):
                raise DataError(f"{pkl}: row {i}: label index {k} outside 0..{len(labels) - 1}")
        p = out_dir / f"{i:07d}.png"
        if not p.exists():
            cv2.imwrite(str(p), cv2.cvtColor(arr, cv2.COLOR_RGB2BGR))
        paths.append(p)
        y.append(k)
    ds = Dataset(paths, np.asarray(y, np.int64), labels, f"dataframe:{pkl}")
    if not paths:
        raise DataError(f"{pkl}: the DataFrame is empty")
    _check_classes(ds)
    return ds


def _as_image(img: object, pkl: Path, i: int) -> np.ndarray:
    if isinstance(img, str):
        v = np.array(img.split(), dtype=np.float32)
        side = round(np.sqrt(v.size))
        if side * side != v.size:
            raise DataError(f"{pkl}: row {i}: {v.size} pixel values do not make a square image")
        img = v.reshape(side, side)
    a = np.asarray(img)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim == 2:
        a = np.stack([a] * 3, axis=-1)
    if a.ndim != 3 or a.shape[2] != 3 or a.shape[0] < 8 or a.shape[1] < 8:
        raise DataError(f"{pkl}: row {i}: image of shape {a.shape} is not (H, W), (H, W, 1) or (H, W, 3)")
    if a.dtype != np.uint8:
        if a.size and float(np.nanmax(a)) <= 1.0:
            a = a * 255.0
        a = np.clip(a, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(a)


def _file_digest(p: Path) -> str:
    st = p.stat()
    return hashlib.sha1(f"{p.resolve()}:{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()[:16]


def _check_classes(ds: Dataset) -> None:
    present = [lab for lab, n in ds.counts().items() if n > 0]
    if len(present) < 2:
        raise DataError(
            f"{ds.source}: only one class present ({', '.join(present) or 'none'}); "
            f"need images of at least two of {', '.join(ds.labels)}"
        )


def load_any(
    path: Path,
    rule: LabelRule | None,
    labels: Sequence[str] | None,
    cache_dir: Path,
    limit: int | None = None,
    image_column: str | None = None,
    label_column: str | None = None,
) -> Dataset:
    """Pick the loader from what ``path`` is: a CelebA folder, a class-folder tree, or a .pkl file."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: data path not found")
    if path.is_file():
        if path.suffix.lower() not in (".pkl", ".pickle"):
            raise DataError(f"{path}: a data file must be a pickled DataFrame (.pkl)")
        if labels is None:
            if rule is None:
                raise DataError(f"{path}: the labels of a DataFrame's classes are unknown")
            labels = rule.labels
        ds = load_dataframe(path, labels, cache_dir, image_column, label_column)
    elif (path / "labels.csv").is_file():  # path,gender,age,race,person[,beard] (../shared/data/faces)
        from train.sources import load_labels_csv

        labels = tuple(labels or (rule.labels if rule else ("female", "male")))
        ds = load_labels_csv(path, labels, "beard" if "shaved" in labels else "gender").ds
    elif (path / ATTR_FILE).exists():
        if rule is None:
            raise DataError(f"{path}: a CelebA folder needs a model that names its CelebA attribute")
        ds = load_celeba(path, rule, limit)
    else:
        ds = load_class_folders(path, labels)
    if limit is not None and len(ds) > limit:
        ds = ds.subset(np.arange(limit))
    return ds


def split_indices(
    n: int, test_fraction: float, val_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The split of the models trained before ``split_stratified``, kept to evaluate them on
    their own test split: (train, val, test) indices, the test set the last ``test_fraction``
    of images in name order (so a class-folder tree gets a test split of its last class only);
    the rest shuffled by ``seed`` and split into training and validation."""
    n_test = round(n * test_fraction)
    test = np.arange(n - n_test, n)
    rest = np.random.default_rng(seed).permutation(n - n_test)
    n_val = max(1, round(len(rest) * val_fraction)) if len(rest) > 1 else 0
    return np.sort(rest[n_val:]), np.sort(rest[:n_val]), test


def env_path(name: str) -> Path | None:
    v = os.environ.get(name)
    return Path(v) if v else None
