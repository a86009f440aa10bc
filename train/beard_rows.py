"""The faces ``train beard-finetune`` trains and judges on, as cached arrays: CelebA (beard labels,
men), the real men labelled by looking (``train/real_men_beard.csv``) and beard2clean's pairs,
each with the frozen head's features, the trunk activations (``train.trunk``, cached under
``.cache/features/trunk-*``) and their mirrored chips; and a fold's training, validation and
test rows, split and weighted as ``train beard --men-only --real-men ...`` splits them."""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

CONFIG = "dlib_resnet_all"  # the beard head's feature sets (the shipped one adds small-face rows)
EXTRA = "dlib_level2+dlib_level3"  # its frozen sets, taken before the trunk's end


@dataclass
class Part:
    """One set of faces: frozen head features, the trunk activations and the extras (each with
    the mirrored chip's), labels."""

    f: np.ndarray  # (n, D) the head's features (frozen backbone)
    a: np.ndarray  # (n, 4, 4, 256) trunk activations
    am: np.ndarray
    e: np.ndarray  # (n, 192) dlib_level2+dlib_level3
    em: np.ndarray
    y: np.ndarray
    found: np.ndarray

    def arrays(self) -> list[np.ndarray]:
        return [getattr(self, f.name) for f in fields(self)]

    def take(self, idx: np.ndarray) -> Part:
        return Part(*(v[idx] for v in self.arrays()))

    def join(self, other: Part) -> Part:
        return Part(*(np.concatenate([u, v]) for u, v in zip(self.arrays(), other.arrays(), strict=True)))


def _part(feats, acts, y: np.ndarray) -> Part:
    from train.architectures import CONFIGS

    assert (feats.found == acts.found).all()
    f = feats.matrix(CONFIGS[CONFIG].features).astype("float32")
    return Part(f, acts.x, acts.xm, feats.matrix(EXTRA), feats.mirror_matrix(EXTRA), y, feats.found)


def load_data(
    shared: Path, cache_dir: Path | None = None, progress: bool = False, csv_file=None
) -> dict[str, object]:
    """CelebA (beard labels, men mask), the labelled real men (``csv_file``: one CSV or several
    read as one list, default ``train/real_men_beard.csv``) and beard2clean, each as a ``Part``
    (trunk activations cached under ``.cache/features/trunk-*``, computed once per set of men)."""
    from train.crops import default_cache_dir
    from train.data import BEARD_RULE
    from train.features import features_for
    from train.real_men import LABELS, REAL_MEN_CSV, UPSAMPLE, celeba_men, load_real_men
    from train.sources import load_celeba_faces, load_labels_csv
    from train.trunk import dataset_trunk

    cache_dir = cache_dir or default_cache_dir()
    celeba = Path(shared) / "data" / "celeba"
    cf = load_celeba_faces(celeba, BEARD_RULE)
    c_feats = features_for(cf.ds, "mmod", 1, cache_dir, progress)
    c_part = _part(c_feats, dataset_trunk("celeba", cf, 1, cache_dir, progress), cf.ds.y)
    rf, labelled = load_real_men(shared, csv_file or REAL_MEN_CSV)
    r_feats = features_for(rf.ds, "mmod", UPSAMPLE, cache_dir, progress)
    r_part = _part(r_feats, dataset_trunk("realmen", rf, UPSAMPLE, cache_dir, progress), rf.ds.y)
    b2c = load_labels_csv(Path(shared) / "data" / "faces" / "beard2clean", LABELS, "beard")
    b_feats = features_for(b2c.ds, "mmod", UPSAMPLE, cache_dir, progress)
    b_part = _part(b_feats, dataset_trunk("beard2clean", b2c, UPSAMPLE, cache_dir, progress), b2c.ds.y)
    return {
        "celeba_ds": cf.ds,
        "celeba": c_part,
        "men": celeba_men(celeba)[: len(cf.ds)],
        "real_faces": rf,
        "labelled": labelled,
        "real": r_part,
        "b2c": b_part,
        "b2c_person": b2c.person,
    }


def fold_rows(data: dict, held: tuple[str, ...], seed: int, weight: float = 0.3):
    """(train, val, test) ``Part``s, training weights, the test rows' indices among the real men
    and a mask of the validation rows that are real men, as ``train beard`` builds them: CelebA's
    men of its split (faces found), then the labelled real men outside ``held`` split by person."""
    from train.real_men import split_real_men
    from train.split import split_dataset

    c, r = data["celeba"], data["real"]
    tr, va, _ = split_dataset(data["celeba_ds"], 0.1, 0.2, seed)
    men = data["men"]
    tr, va = tr[men[tr]], va[men[va]]
    tr, va = tr[c.found[tr]], va[c.found[va]]
    rtr, rva, rte = split_real_men(data["real_faces"], data["labelled"], held, 0.2, seed)
    train, val = c.take(tr).join(r.take(rtr)), c.take(va).join(r.take(rva))
    w = np.concatenate([np.ones(len(tr)), np.full(len(rtr), weight * len(tr) / len(rtr))])
    return train, val, r.take(rte), w, rte, np.arange(len(val.y)) >= len(va)
