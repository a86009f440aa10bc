"""Head variants on the multi-source recipe's cached features (``train variants``): each variant
(feature set, width, depth, dropout, label smoothing, CelebA's share of the weights, seed) is
trained like ``train gender --sources`` (same splits, weights, early stopping) on the full mix
and on each leave-one-source-out fold, and its logits on the validation split, the test split
and the held-out source are saved, so that ensembles (the mean of several heads' probabilities)
and a temperature fitted on validation can be scored afterwards without training again."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from train.data import GENDER_RULE
from train.sources import AGE_BANDS, SOURCES, TEEN_BOYS, age_band

DEFAULTS = {
    "feats": "dlib_face_descriptor+dlib_pooled",  # the shipped head's (config dlib_resnet)
    "hidden": 128,
    "layers": 1,
    "din": 0.2,  # dropout on the standardised features
    "dh": 0.5,  # dropout after each hidden layer
    "ls": 0.0,  # label smoothing
    "cw": 1.0,  # CelebA's faces' weight, times the balanced weight (then renormalised)
    "seed": 0,
    "teens": 0,  # 1: ages 10-14 and 15-19 balanced as two bands (balance_weights)
    "tb": TEEN_BOYS,  # boys of 10-19: times their balanced weight (the recipe's: train/multi.py)
    "tmirror": 0,  # 1: faces of 10-19 also trained as their mirrored chip's features
}
TEMPERATURES = np.round(np.arange(0.5, 2.501, 0.05), 2)


def parse(settings: list[str]) -> dict[str, object]:
    """``key=value`` settings over ``DEFAULTS`` (values take the default's type)."""
    out = dict(DEFAULTS)
    for s in settings:
        k, _, v = s.partition("=")
        if k not in DEFAULTS or not v:
            raise ValueError(f"variant setting {s!r}: use key=value, keys {', '.join(DEFAULTS)}")
        out[k] = type(DEFAULTS[k])(v)
    return out


def fit_head(x_tr, y_tr, w_tr, x_va, y_va, v: dict, epochs: int = 40, patience: int = 4):
    """The recipe's head (standardise, dropout, Dense+relu+dropout per layer, softmax), Adam 1e-3,
    batch 64, early stopping on validation loss: returns a function features -> logits."""
    import keras

    xs = x_tr.astype("float64")
    keras.utils.set_random_seed(int(v["seed"]))
    inp = keras.Input((x_tr.shape[1],))
    h = keras.layers.Normalization(mean=xs.mean(0), variance=np.maximum(xs.var(0), 1e-6))(inp)
    h = keras.layers.Dropout(float(v["din"]))(h)
    for _ in range(int(v["layers"])):
        h = keras.layers.Dense(int(v["hidden"]), activation="relu")(h)
        h = keras.layers.Dropout(float(v["dh"]))(h)
    m = keras.Model(inp, keras.layers.Dense(2, activation="softmax")(h))
    loss = keras.losses.CategoricalCrossentropy(label_smoothing=float(v["ls"]))
    m.compile(optimizer=keras.optimizers.Adam(1e-3), loss=loss)
    eye = np.eye(2, dtype="float32")
    m.fit(
        x_tr,
        eye[y_tr],
        sample_weight=w_tr,
        validation_data=(x_va, eye[y_va]),
        epochs=epochs,
        batch_size=64,
        shuffle=True,
        verbose=0,
        callbacks=[
            keras.callbacks.EarlyStopping(monitor="val_loss", patience=patience, restore_best_weights=True),
            keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.3, patience=max(1, patience - 1)),
        ],
    )
    penultimate = keras.Model(inp, m.layers[-2].output)
    w, b = m.layers[-1].get_weights()
    return lambda x: penultimate.predict(x, batch_size=1024, verbose=0) @ w + b


def run_fold(v: dict, fold: str, shared: Path, out: Path, cache_dir: Path | None = None) -> Path:
    """Train variant ``v`` on all sources (``fold="full"``, 10% test) or on all but ``fold``;
    save the logits to ``out/<fold>.npz``."""
    from train.multi import balance_weights, load_multi, split_sources

    srcs = SOURCES if fold == "full" else tuple(s for s in SOURCES if s != fold)
    faces, feats = load_multi(srcs, shared, GENDER_RULE, cache_dir, False)
    tr, va, te = split_sources(faces, 0.1 if fold == "full" else 0.0, 0.2, 0)
    trf, vaf = tr[feats.found[tr]], va[feats.found[va]]
    x, y = feats.matrix(str(v["feats"])).astype("float32"), faces.ds.y
    w = balance_weights(faces.subset(trf), bool(v["teens"]), float(v["tb"]))
    if float(v["cw"]) != 1.0:
        w = w * np.where(faces.source[trf] == "celeba", float(v["cw"]), 1.0)
        w = (w * len(w) / w.sum()).astype("float32")
    x_tr, y_tr = x[trf], y[trf]
    if int(v["tmirror"]):  # the teens' mirrored chips as more rows, at the same weights
        t = trf[faces.age_band()[trf] == "10-19"]
        x_tr = np.concatenate([x_tr, feats.mirror_matrix(str(v["feats"]))[t].astype("float32")])
        y_tr, w = np.concatenate([y_tr, y[t]]), np.concatenate([w, w[np.isin(trf, t)]])
    logits = fit_head(x_tr, y_tr, w, x[vaf], y[vaf], v)
    res = {"val_y": y[va], "val_src": faces.source[va], "val_logit": logits(x[va])}
    if fold == "full":
        res |= {"test_y": y[te], "test_src": faces.source[te], "test_logit": logits(x[te])}
        res["test_path"] = np.array([str(faces.ds.paths[i]) for i in te])
    else:
        hf, hx = load_multi((fold,), shared, GENDER_RULE, cache_dir, False)
        res |= {"held_y": hf.ds.y, "held_logit": logits(hx.matrix(str(v["feats"])).astype("float32"))}
        res["held_age"] = hf.age
    out.mkdir(parents=True, exist_ok=True)
    np.savez(out / f"{fold}.npz", **res)
    return out / f"{fold}.npz"


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def nll(p: np.ndarray, y: np.ndarray) -> float:
    return float(-np.log(np.clip(p[np.arange(len(y)), y], 1e-9, 1.0)).mean())


def ece(p: np.ndarray, y: np.ndarray, bins: int = 10) -> float:
    """As ``train.multi.calibration``: the winning probability in 10 bins over [0.5, 1]."""
    from train.multi import calibration

    return float(calibration(p.max(axis=1), p.argmax(axis=1) == y, bins)["ece"])


def mean_probs(runs: list[dict], key: str, t: float = 1.0) -> np.ndarray:
    """An ensemble: the mean of the heads' probabilities, each at temperature ``t``."""
    return np.mean([softmax(r[key] / t) for r in runs], axis=0)


def fit_temperature(runs: list[dict]) -> float:
    """The temperature (0.5-2.5 by 0.05) that minimises the validation split's log loss."""
    y = runs[0]["val_y"]
    return float(min(TEMPERATURES, key=lambda t: nll(mean_probs(runs, "val_logit", t), y)))


def summarise(dirs: list[Path], temperature: float | str = 1.0) -> dict[str, object]:
    """Scores of the mean of the variants in ``dirs`` (one variant: itself) at ``temperature``
    (``"fit"``: fitted on each run's own validation split, the held-out source never seen; the
    full run's is reported)."""
    load = lambda d, f: dict(np.load(d / f"{f}.npz", allow_pickle=True))  # noqa: E731
    full = [load(d, "full") for d in dirs]
    t = fit_temperature(full) if temperature == "fit" else float(temperature)
    y, src = full[0]["val_y"], full[0]["val_src"]
    p = mean_probs(full, "val_logit", t)
    ok = p.argmax(1) == y
    out: dict[str, object] = {"temperature": t, "val": ok.mean(), "val_celeba": ok[src == "celeba"].mean()}
    out["val_nll"] = nll(p, y)
    y, src = full[0]["test_y"], full[0]["test_src"]
    p = mean_probs(full, "test_logit", t)
    ok = p.argmax(1) == y
    cel = src == "celeba"
    out |= {"test": ok.mean(), "test_ece": ece(p, y), "celeba_test": ok[cel].mean()}
    out["celeba_errors"] = [str(s) for s in full[0]["test_path"][cel & ~ok]]
    for f in SOURCES[1:]:
        if not all((d / f"{f}.npz").exists() for d in dirs):
            continue
        runs = [load(d, f) for d in dirs]
        y = runs[0]["held_y"]
        tf = fit_temperature(runs) if temperature == "fit" else t
        p = mean_probs(runs, "held_logit", tf)
        ok = p.argmax(1) == y
        row = {"accuracy": ok.mean(), "ece": ece(p, y), "temperature": tf}
        row |= {"female": ok[y == 0].mean(), "male": ok[y == 1].mean()}
        bands = np.array([age_band(a) for a in runs[0]["held_age"]])
        if (bands != "").any():
            row["worst_band"] = min((ok[bands == b].mean(), b) for b in AGE_BANDS if (bands == b).any())
        teen = bands == "10-19"
        if (teen & (y == 0)).any() and (teen & (y == 1)).any():  # the weak cell of issue #30
            row["teens"] = (ok[teen & (y == 0)].mean(), ok[teen & (y == 1)].mean())
        out[f] = row
    return out


def line(name: str, s: dict) -> str:
    """One Markdown table row: name, T, validation, test, CelebA test, held-out sources."""

    def pc(x: float) -> str:
        return f"{100 * x:.1f}%"

    cells = [
        name,
        f"{s['temperature']:.2f}",
        f"{pc(s['val'])} / {s['val_nll']:.4f}",
        f"{pc(s['test'])} (ECE {s['test_ece']:.3f})",
        f"{pc(s['celeba_test'])} ({len(s['celeba_errors'])})",
    ]
    for f in SOURCES[1:]:
        r = s.get(f)
        if not r:
            cells.append("–")
            continue
        worst = f", {r['worst_band'][1]} {pc(r['worst_band'][0])}" if "worst_band" in r else ""
        if "teens" in r:
            worst += f", 10-19 F/M {pc(r['teens'][0])}/{pc(r['teens'][1])}"
        cells.append(f"{pc(r['accuracy'])} (F {pc(r['female'])}{worst}; ECE {r['ece']:.3f})")
    return "| " + " | ".join(cells) + " |"


def teen_cells(d: Path) -> dict[str, float]:
    """One run's held-out figures around the teens (issue #30), at T = 1: per held-out source with
    ages, boys' and girls' recall at 10-19, boys' at 13-14, women's recall, accuracy and the lowest
    age band; LFW's accuracy and women's recall; CelebA's test accuracy and misses."""
    out: dict[str, float] = {}
    full = dict(np.load(d / "full.npz", allow_pickle=True))
    ok = full["test_logit"].argmax(1) == full["test_y"]
    cel = full["test_src"] == "celeba"
    out |= {"celeba": ok[cel].mean(), "celeba_misses": float((~ok[cel]).sum())}
    for f in SOURCES[1:]:
        r = dict(np.load(d / f"{f}.npz", allow_pickle=True))
        y, a = r["held_y"], r["held_age"]
        ok = r["held_logit"].argmax(1) == y
        out |= {f"{f} acc": ok.mean(), f"{f} women": ok[y == 0].mean()}
        bands = np.array([age_band(x) for x in a])
        if (bands == "").all():
            continue
        teen = bands == "10-19"
        out |= {f"{f} boys": _share(ok[teen & (y == 1)]), f"{f} girls": _share(ok[teen & (y == 0)])}
        out[f"{f} boys 13-14"] = _share(ok[(a < 15) & (y == 1)])
        out[f"{f} min band"] = min(ok[bands == b].mean() for b in AGE_BANDS if (bands == b).any())
    return out


def _share(ok: np.ndarray) -> float:
    """The share right, nan (not a warning) where a fold has no such face."""
    return float(ok.mean()) if len(ok) else float("nan")


def teen_line(name: str, dirs: list[Path]) -> str:
    """A table row: ``teen_cells`` averaged over the runs in ``dirs`` (seeds of one recipe)."""
    cells = [teen_cells(d) for d in dirs]
    m = {k: float(np.mean([c[k] for c in cells])) for k in cells[0]}

    def pc(k: str) -> str:
        return f"{100 * m[k]:.1f}%"

    row = [name, str(len(dirs))]
    for f in ("utkface", "aaf"):
        row += [f"{pc(f + ' boys')} ({pc(f + ' boys 13-14')})", pc(f + " girls"), pc(f + " women")]
        row.append(f"{pc(f + ' acc')} / {pc(f + ' min band')}")
    row += [f"{pc('lfw acc')} ({pc('lfw women')})", f"{pc('celeba')} ({m['celeba_misses']:.1f})"]
    return "| " + " | ".join(row) + " |"


def run(settings: list[str], name: str, folds: list[str], shared: Path, out: Path) -> None:
    v = parse(settings)
    d = out / name
    d.mkdir(parents=True, exist_ok=True)
    (d / "variant.json").write_text(json.dumps(v))
    for f in folds:
        run_fold(v, f, shared, d)


def add_parser(sub: argparse._SubParsersAction) -> None:
    v = sub.add_parser("variants", help="gender head variants: logits on validation, test and LOSO folds")
    v.add_argument("--name", default=None, help="train this variant into --out/NAME")
    v.add_argument("--set", action="append", default=[], help="key=value (train/variants.py DEFAULTS)")
    v.add_argument("--folds", default="full,utkface,aaf,lfw", help="'full' and/or held-out sources")
    v.add_argument("--score", action="append", default=[], help="NAME or NAME,NAME (mean): a table row")
    v.add_argument("--teens", action="append", default=[], help="NAME,NAME (seeds): their mean teen row")
    v.add_argument("--out", type=Path, default=Path("runs") / "variants")


def main(args: argparse.Namespace, shared: Path) -> int:
    if args.name:
        run(args.set, args.name, args.folds.split(","), shared, args.out)
    for spec in args.score:
        for t in (1.0, "fit"):
            print(line(spec, summarise([args.out / n for n in spec.split(",")], t)))
    for spec in args.teens:
        print(teen_line(spec.split(",")[0], [args.out / n for n in spec.split(",")]))
    return 0
