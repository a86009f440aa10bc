"""How ``train`` splits a data set: shuffled, stratified by label (and by source), and
person-disjoint where the data names people; and the split of the models made before, which
took the last tenth of the images in name order as the test split (kept to evaluate those
models on their own test split)."""

from __future__ import annotations

import numpy as np

from train.data import DataError, Dataset, split_indices

SPLIT_METHOD = "stratified-groups"


def split_stratified(
    y: np.ndarray,
    test_fraction: float,
    val_fraction: float,
    seed: int,
    groups: np.ndarray | None = None,
    strata: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(train, val, test) indices, shuffled by ``seed``, stratified by label (and ``strata``,
    e.g. the source) and person-disjoint: all images of one group (``groups``: a person) fall
    in one split. Within each stratum the groups are shuffled and taken in turn for the test
    split until it holds ``test_fraction`` of the stratum's images, then for validation
    (``val_fraction`` of the rest); the others train."""
    y = np.asarray(y)
    n = len(y)
    groups = np.asarray(groups) if groups is not None else np.arange(n).astype(str)
    strata = np.asarray(strata) if strata is not None else np.zeros(n, dtype=int)
    gid = {g: i for i, g in enumerate(dict.fromkeys(groups.tolist()))}
    g_of = np.array([gid[g] for g in groups.tolist()], np.int64)
    members: dict[int, list[int]] = {}
    for i, g in enumerate(g_of.tolist()):
        members.setdefault(g, []).append(i)
    # a group's stratum: its first image's label and stratum
    by_stratum: dict[tuple, list[int]] = {}
    for g, idx in members.items():
        by_stratum.setdefault((str(strata[idx[0]]), int(y[idx[0]])), []).append(g)
    split = np.zeros(n, np.int8)  # 0 train, 1 val, 2 test
    for key in sorted(by_stratum):
        gs = by_stratum[key]
        rng = np.random.default_rng([seed, key[1]])  # per label: a stratum's split ignores the others
        order = [gs[k] for k in rng.permutation(len(gs))]
        total = sum(len(members[g]) for g in gs)
        want_test = total * test_fraction
        want_val = (total - want_test) * val_fraction
        taken_test = taken_val = 0
        for g in order:
            size = len(members[g])
            if taken_test + size / 2 <= want_test:
                split[members[g]] = 2
                taken_test += size
            elif taken_val + size / 2 <= want_val:
                split[members[g]] = 1
                taken_val += size
    return np.flatnonzero(split == 0), np.flatnonzero(split == 1), np.flatnonzero(split == 2)


def split_dataset(
    ds: Dataset, test_fraction: float, val_fraction: float, seed: int, strata: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The split ``train`` makes (``SPLIT_METHOD``): ``split_stratified`` by label, by person
    where the data set names people, and by ``strata``."""
    return split_stratified(ds.y, test_fraction, val_fraction, seed, ds.groups, strata)


def split_for_meta(ds: Dataset, s: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The split a model file records: today's method, or the fixed name-order tail of the
    models trained before it (their ``split`` has no ``method``)."""
    tf, vf, seed = float(s["test_fraction"]), float(s["val_fraction"]), int(s["seed"])
    if s.get("method") == SPLIT_METHOD:
        return split_dataset(ds, tf, vf, seed)
    if s.get("method") == "sources" and not ds.source.startswith("celeba:"):
        raise DataError(
            "a model trained on several sources records its splits in its run's metrics.json; "
            "evaluate it with --split all on a source it never saw (train loso), or on CelebA"
        )
    return split_indices(len(ds), tf, vf, seed)  # CelebA's part of a multi-source split too
