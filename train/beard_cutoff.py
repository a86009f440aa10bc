"""Cut-offs on p(unshaved) for ``train beard-loso``: a fold's head at the cut-off picked on that
fold's own validation split (CelebA's validation men and the real men's validation people, as
``train beard`` splits them; the held-out men never pick it), and the ceiling no cut-off can pass
on the held-out men: the best, over every cut-off, of the two classes' lower recall. The ceiling
is picked on the held-out men themselves, so it is never a recipe, only a bound: a head whose
ceiling is under the goal cannot meet it at any cut-off."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from train.real_men import CsvFiles, load_real_men, score, split_real_men


def _probabilities(model_path: Path, shared: Path, cache_dir: Path, csv_file: CsvFiles, labels: str):
    from train.features import features_for
    from train.multi import predict
    from train.real_men import UPSAMPLE

    faces, labelled = load_real_men(shared, csv_file, labels)
    p = predict(model_path, features_for(faces.ds, "mmod", UPSAMPLE, cache_dir, False))[:, 1]
    return faces, labelled, p


def ceiling(p: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Over every cut-off (each distinct ``p`` and 1), the one whose lower per-class recall is the
    highest: that recall and the cut-off (``y`` 1 = unshaved, called at ``p >= cut-off``)."""
    best = (-1.0, 0.5)
    for t in np.unique(np.r_[p, 1.0]):
        low = min(float((p[y == 0] < t).mean()), float((p[y == 1] >= t).mean()))
        best = max(best, (low, float(t)))
    return {"min_class_recall": round(best[0], 4), "cutoff": round(best[1], 4)}


def held_out_ceiling(
    model_path: Path,
    shared: Path,
    cache_dir: Path,
    held: tuple[str, ...],
    csv_file: CsvFiles,
    labels: str = "agreed",
) -> dict[str, float]:
    """``ceiling`` of a model on the labelled men of the ``held`` sources."""
    faces, labelled, p = _probabilities(model_path, shared, cache_dir, csv_file, labels)
    idx = np.flatnonzero(labelled & np.isin(faces.source, list(held)))
    return ceiling(p[idx], faces.ds.y[idx])


def validation_cutoff(
    model_path: Path,
    shared: Path,
    cache_dir: Path,
    held: tuple[str, ...],
    csv_file: CsvFiles,
    seed: int,
    labels: str = "agreed",
) -> dict[str, object]:
    """The fold's head at the cut-off with the best mean per-class recall on its validation split
    (``train.beard_finetune.balanced_threshold``), scored on the held-out men (``score``)."""
    from train.beard_finetune import balanced_threshold
    from train.data import BEARD_RULE
    from train.features import features_for
    from train.multi import predict
    from train.real_men import celeba_men
    from train.sources import load_celeba_faces
    from train.split import split_dataset

    celeba = Path(shared) / "data" / "celeba"
    cf = load_celeba_faces(celeba, BEARD_RULE)
    cfe = features_for(cf.ds, "mmod", 1, cache_dir, False)
    _, va, _ = split_dataset(cf.ds, 0.1, 0.2, seed)
    va = va[celeba_men(celeba)[: len(cf.ds)][va]]
    va = va[cfe.found[va]]
    faces, labelled, p = _probabilities(model_path, shared, cache_dir, csv_file, labels)
    _, rva, rte = split_real_men(faces, labelled, held, 0.2, seed)
    pc = predict(model_path, cfe)[:, 1]
    t = balanced_threshold(np.r_[pc[va], p[rva]], np.r_[cf.ds.y[va], faces.ds.y[rva]])
    return {"cutoff": t, **score(faces.subset(rte), (p[rte] >= t).astype(np.int64))}
