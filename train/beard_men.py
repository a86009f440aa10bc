"""Shaved / unshaved on men (issue #30), from cached features: the shipped head and retrained
variants (all CelebA faces; CelebA men only; men only with classes weighted equally) on the
men of CelebA's test split and on beard2clean's 97 pairs (does each pair flip?). Not part of
the shipped recipe: ``python -m train.beard_men dlib_resnet_mid`` (features must be cached)."""

import json
import os
import sys

os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
from pathlib import Path

import keras
import numpy as np

from train.architectures import CONFIGS, build
from train.data import BEARD_RULE, GENDER_RULE, load_celeba, split_indices
from train.features import features_for
from train.sources import load_labels_csv

shared = Path("../shared").resolve()
cache = Path(".cache")
cb = load_celeba(shared / "data/celeba", BEARD_RULE)
cg = load_celeba(shared / "data/celeba", GENDER_RULE)
fc = features_for(cb, "mmod", 1, cache, False)
b2c = load_labels_csv(shared / "data/faces/beard2clean", ("shaved", "unshaved"), "beard")
fb = features_for(b2c.ds, "mmod", 0, cache, False)
tr, va, te = split_indices(len(cb), 0.1, 0.2, 0)
male = cg.y == 1


def fit(cfg, idx_tr, idx_va, seed=0, balance=False):
    c = CONFIGS[cfg]
    X = fc.matrix(c.features).astype("float32")
    y = cb.y
    xs = X[idx_tr].astype("float64")
    m = build(cfg, 2, "softmax", None, seed, (xs.mean(0), xs.var(0)))
    m.compile(keras.optimizers.Adam(1e-3), "categorical_crossentropy", metrics=["accuracy"])
    sw = None
    if balance:
        cnt = np.bincount(y[idx_tr], minlength=2)
        sw = (len(idx_tr) / (2 * cnt))[y[idx_tr]].astype("float32")
    m.fit(
        X[idx_tr],
        np.eye(2)[y[idx_tr]],
        sample_weight=sw,
        validation_data=(X[idx_va], np.eye(2)[y[idx_va]]),
        epochs=40,
        batch_size=64,
        verbose=0,
        callbacks=[keras.callbacks.EarlyStopping(patience=4, restore_best_weights=True)],
    )
    return m, c.features


def report(name, m, feats):
    out = {}
    X = fc.matrix(feats).astype("float32")
    for tag, idx in (("celeba_test_men", te[male[te]]), ("celeba_test_all", te)):
        p = m.predict(X[idx], verbose=0).argmax(1)
        ok = p == cb.y[idx]
        rec = {lab: round(float(ok[cb.y[idx] == i].mean()), 3) for i, lab in enumerate(cb.labels)}
        out[tag] = (round(float(ok.mean()), 4), len(idx), rec)
    P = m.predict(fb.matrix(feats).astype("float32"), verbose=0)
    ok = P.argmax(1) == b2c.ds.y
    rec = {lab: round(float(ok[b2c.ds.y == i].mean()), 3) for i, lab in enumerate(b2c.ds.labels)}
    # pairs: person column names the pair
    flips = both = 0
    pairs = {}
    for i, p in enumerate(b2c.person):
        pairs.setdefault(p, {})[b2c.ds.y[i]] = i
    for d in pairs.values():
        if 0 in d and 1 in d:
            flips += P[d[1], 1] > P[d[0], 1]
            both += ok[d[0]] and ok[d[1]]
    out["beard2clean"] = (
        round(float(ok.mean()), 4),
        len(ok),
        rec,
        f"pairs ordered {flips}/{len(pairs)}, both right {both}/{len(pairs)}",
    )
    print(name, json.dumps(out), flush=True)
    return out


if __name__ == "__main__":
    from streamer.classify import Classifier

    clf = Classifier("b", "models/beard.keras")

    class Shipped:
        def predict(self, x, verbose=0):
            return clf.predict_proba(x)

    report("shipped", Shipped(), clf.meta.features)
    for cfg in sys.argv[1:]:
        for men, bal in ((False, False), (True, False), (True, True)):
            sel = (lambda idx: idx[male[idx]]) if men else (lambda idx: idx)
            m, f = fit(cfg, sel(tr[fc.found[tr]]), sel(va), balance=bal)
            report(f"{cfg} men_only={men} balanced={bal}", m, f)
