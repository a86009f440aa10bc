"""Fine-tune the last blocks of dlib's face ResNet under the shaved/unshaved head (``train
beard-finetune``, issue #30), judged leave-one-source-out on the real men labelled by looking
exactly as ``train beard-loso`` judges the shipped recipe.

Per fold (a source of the labelled men, or several joined by ``+``, held out) and seed (the
men: ``train/real_men_beard.csv``, or ``--csv A,B,...`` read as one list as ``train beard-loso
--csv`` reads them), on the same faces, splits and weights as ``train beard --config dlib_resnet_all
--men-only --real-men ... --real-men-test FOLD --real-men-weight 0.3``:

1. ``frozen``: the shipped recipe, ``dlib_resnet_all``'s head on the frozen backbone's cached
   features (Adam 1e-3, batch 64, early stopping on validation loss: ``train.fit``'s settings).
2. ``fine-tuned``: a copy of the ResNet's last ``blocks`` residual blocks and fc layer
   (``train.trunk``'s cached 4x4x256 activations in, dlib's weights to start) under the same
   head, initialised from step 1's; the two frozen mid-layer sets (``dlib_level2``,
   ``dlib_level3``: computed before the trunk's end) go to the head as they are. Chip or mirror
   drawn per face and epoch, a small learning rate, the best validation loss kept.

Each is scored at p(unshaved) >= 0.5 and at the threshold that maximises the balanced per-class
accuracy on the validation split (CelebA's validation men and the real men's validation people)
and on the real men's validation people alone; the held-out fold is never looked at to pick it.
With folds that hold every source once (``utkface;lfw;aaf``) each seed's folds are also pooled:
every labelled man judged by models that never saw his source (``train.beard_finetune_report``).
Writes ``<name>.json`` and ``<name>.md``."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from train.beard_finetune_report import markdown, pooled_by_seed
from train.beard_rows import CONFIG, Part, fold_rows, load_data
from train.real_men import REAL_MEN_CSV, CsvFiles, csv_name
from train.run_header import run_header

GRID = np.round(np.arange(0.05, 0.951, 0.01), 2)


def tail_model(blocks: int, lower: bool = False):
    """(pre, tail): ``pre`` the frozen blocks from the trunk's output to the tail's input;
    ``tail`` that -> the last ``blocks`` blocks (dlib's weights, trainable), [fc, pooling]
    and, with ``lower``, the last 2x2 map averaged over its lower-face row (``face_resnet``'s
    ``LOWER_FACE``): a beard is lower-face texture. dlib's last block convolves down to 1x1 and
    adds that to the top-left cell of its 2x2 pooled input (``_zero_fill_add``), so the lower
    row is the pooled input alone: frozen with ``blocks`` 1, fine-tuned with 2."""
    import keras

    from streamer.classify.face_resnet import _lower, load_face_resnet
    from train.finetune import START
    from train.trunk import BLOCKS, TRUNK_END

    full = load_face_resnet()
    start = full.get_layer(START[blocks]).output
    pre = keras.Model(full.get_layer(TRUNK_END).output, start, name="frozen_blocks")
    pre.trainable = False
    outs = [full.get_layer("fc").output, full.get_layer("pooled").output]
    if lower:
        outs.append(_lower(keras, full.get_layer("pooled").input, "finetuned_lower"))
    tail = keras.Model(start, outs, name="dlib_tail_finetuned")
    trainable = {n for b in BLOCKS[:blocks] for n in b} | {"fc"}
    for layer in tail.layers:
        layer.trainable = layer.name in trainable
    return pre, tail


def branch_model(blocks: int, stats: tuple[np.ndarray, np.ndarray], seed: int = 0, lower_rows=None):
    """(pre, branch): ``branch`` [tail input, extras] -> ``tail_model``'s outputs and the extras
    -> ``dlib_resnet_all``'s head (descriptor, pooled, extras[, lower]) -> softmax. With
    ``lower_rows`` (trunk activations of the training faces) the head also takes the lower-face
    pooling, standardised by its mean and variance on those rows (``init_head`` starts its
    weights at zero, so the branch starts as the frozen head)."""
    import keras

    from train.architectures import CONFIGS, build_feature_head

    pre, tail = tail_model(blocks, lower_rows is not None)
    if lower_rows is not None:
        low = tail.predict(pre.predict(lower_rows.astype("float32"), verbose=0), verbose=0)[2]
        stats = (np.concatenate([stats[0], low.mean(0)]), np.concatenate([stats[1], low.var(0)]))
    head = build_feature_head(CONFIGS[CONFIG], 2, "softmax", seed, stats)
    inp = keras.Input(tuple(pre.output.shape[1:]), name="trunk")
    ext = keras.Input((192,), name="frozen_levels")
    outs = tail(inp)
    out = head(keras.layers.Concatenate()([outs[0], outs[1], ext, *outs[2:]]))
    return pre, keras.Model([inp, ext], out, name=f"dlib_beard_finetune_{blocks}")


def init_head(head, frozen) -> None:
    """``head`` takes the frozen head's weights; rows of a wider first layer for features the
    frozen head lacks start at zero (the standardisation stays ``head``'s own)."""
    new = []
    for h, f in zip(head.get_weights(), frozen.get_weights(), strict=True):
        if h.shape == f.shape:
            new.append(f)
        elif h.ndim == 2:
            new.append(np.concatenate([f, np.zeros((h.shape[0] - f.shape[0], h.shape[1]), h.dtype)]))
        else:
            new.append(h)
    head.set_weights(new)


def fit_frozen(x_tr, y_tr, w_tr, x_va, y_va, seed: int, epochs: int = 40, patience: int = 4):
    """``train.fit``'s beard recipe on frozen features: returns (model, stats, epochs run)."""
    import keras

    from train.architectures import CONFIGS, build

    stats = (x_tr.astype("float64").mean(axis=0), x_tr.astype("float64").var(axis=0))
    model = build(CONFIG, 2, "softmax", None, seed, stats)
    model.compile(keras.optimizers.Adam(CONFIGS[CONFIG].learning_rate), "categorical_crossentropy")
    cbs = [
        keras.callbacks.EarlyStopping(monitor="val_loss", patience=patience, restore_best_weights=True),
        keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.3, patience=max(1, patience - 1)),
    ]
    eye = np.eye(2, dtype="float32")
    h = model.fit(
        x_tr, eye[y_tr], sample_weight=w_tr, validation_data=(x_va, eye[y_va]), epochs=epochs,
        batch_size=64, shuffle=True, callbacks=cbs, verbose=0,
    )  # fmt: skip
    return model, stats, len(h.history["loss"])


def fit_branch(branch, tr: dict, va: dict, lr: float, epochs: int, patience: int, seed: int) -> dict:
    """Fine-tune one epoch at a time (a fresh chip/mirror draw each), keeping the weights of the
    best validation loss; stop after ``patience`` epochs without a gain of 1e-4. ``patience`` 0:
    no early stopping, every epoch is trained and the last one's weights kept (so the branch
    cannot stay where it started when the validation loss, mostly CelebA's men, never falls)."""
    import keras

    branch.compile(optimizer=keras.optimizers.Adam(lr), loss="categorical_crossentropy")
    rng = np.random.default_rng(seed)
    eye = np.eye(2, dtype="float32")
    val = ([va["a"], va["e"]], eye[va["y"]])
    best = float(branch.evaluate(*val, batch_size=256, verbose=0))
    hist, best_w, since, best_epoch = [{"epoch": 0, "val_loss": best}], branch.get_weights(), 0, 0
    for ep in range(1, epochs + 1):
        t0 = time.perf_counter()
        flip = rng.random(len(tr["y"])) < 0.5
        a = np.where(flip[:, None, None, None], tr["am"], tr["a"])
        e = np.where(flip[:, None], tr["em"], tr["e"])
        h = branch.fit([a, e], eye[tr["y"]], sample_weight=tr["w"], epochs=1, batch_size=64, verbose=0)
        v = float(branch.evaluate(*val, batch_size=256, verbose=0))
        row = {"epoch": ep, "loss": float(h.history["loss"][0]), "val_loss": v}
        hist.append(row | {"seconds": round(time.perf_counter() - t0, 1)})
        print(f"beard-finetune: {hist[-1]}", file=sys.stderr, flush=True)
        if patience <= 0:
            best, best_epoch = v, ep
        elif v < best - 1e-4:
            best, best_w, since, best_epoch = v, branch.get_weights(), 0, ep
        else:
            since += 1
            if since >= patience:
                break
    if patience > 0:
        branch.set_weights(best_w)
    return {"history": hist, "best_val_loss": best, "best_epoch": best_epoch}


def balanced_threshold(p: np.ndarray, y: np.ndarray) -> float:
    """The cut-off on p(unshaved) (0.05-0.95 by 0.01) with the best mean per-class recall;
    among ties, the one nearest 0.5."""

    def bal(t: float) -> float:
        pred = p >= t
        return float(np.mean([(pred[y == c] == bool(c)).mean() for c in (0, 1) if (y == c).any()]))

    return float(max(GRID, key=lambda t: (round(bal(t), 9), -abs(t - 0.5))))


def b2c_flips(p: np.ndarray, y: np.ndarray, person: np.ndarray, t: float) -> dict[str, int]:
    """``train.real_men.beard2clean_flips`` from probabilities, at threshold ``t``."""
    pairs: dict[str, dict[int, int]] = {}
    for i, who in enumerate(person):
        pairs.setdefault(str(who), {})[int(y[i])] = i
    both = [(d[0], d[1]) for d in pairs.values() if 0 in d and 1 in d]
    return {
        "pairs": len(both),
        "flips": sum(bool(p[u] >= t > p[s]) for s, u in both),
        "ordered": sum(bool(p[u] > p[s]) for s, u in both),
    }


def parse_variants(spec: str) -> tuple[tuple[int, float, bool], ...]:
    """``BLOCKS:LR[:lower],...`` -> ((blocks, learning rate, lower-face pooled), ...)."""
    out = []
    for v in filter(None, spec.split(",")):
        parts = v.split(":")
        if len(parts) not in (2, 3) or parts[0] not in ("1", "2") or parts[2:] not in ([], ["lower"]):
            raise ValueError(f"fine-tuning variant {v!r}: use BLOCKS:LR or BLOCKS:LR:lower, BLOCKS 1 or 2")
        out.append((int(parts[0]), float(parts[1]), parts[2:] == ["lower"]))
    return tuple(out)


def variant_name(blocks: int, lr: float, lower: bool) -> str:
    return f"fine-tuned last {blocks}, lr {lr:g}" + (", lower-face pooled" if lower else "")


def run_fold(data: dict, held: tuple[str, ...], seed: int, variants, epochs: int, patience: int) -> dict:
    """One fold and seed: the frozen recipe, then each fine-tuning variant (``parse_variants``)
    started from it, all scored on ``held``'s men at 0.5 and at the thresholds picked on
    validation, with beard2clean's flips."""
    from train.real_men import score

    train, val, test, w, rte, val_real = fold_rows(data, held, seed)
    t0 = time.perf_counter()
    frozen, stats, frozen_epochs = fit_frozen(train.f, train.y, w, val.f, val.y, seed)
    b = data["b2c"]
    probs = {"frozen": [frozen.predict(x, batch_size=256, verbose=0)[:, 1] for x in (val.f, test.f, b.f)]}
    res: dict[str, object] = {
        "seed": seed,
        "n_train": len(train.y),
        "n_val": len(val.y),
        "frozen_epochs": frozen_epochs,
        "seconds_frozen": round(time.perf_counter() - t0, 1),
        "finetuned": {},
    }
    for blocks, lr, lower in variants:
        pre, branch = branch_model(blocks, stats, seed, train.a if lower else None)
        init_head(branch.layers[-1], frozen)  # the head starts where the frozen one ended

        def start(a: np.ndarray, pre=pre) -> np.ndarray:
            return np.concatenate(
                [pre.predict(a[i : i + 1024].astype("float32"), verbose=0) for i in range(0, len(a), 1024)]
            )

        def feed(p: Part, mirrored: bool = False, start=start) -> dict:
            d = {"a": start(p.a), "e": p.e.astype("float32"), "y": p.y}
            return d | ({"am": start(p.am), "em": p.em.astype("float32")} if mirrored else {})

        def ft(d: dict, branch=branch) -> np.ndarray:
            return branch.predict([d["a"], d["e"]], batch_size=256, verbose=0)[:, 1]

        te, va, b_in = feed(test), feed(val), feed(b)
        agree = float(((ft(te) >= 0.5) == (probs["frozen"][1] >= 0.5)).mean())
        t1 = time.perf_counter()
        fit = fit_branch(
            branch, feed(train, True) | {"w": w.astype("float32")}, va, lr, epochs, patience, seed
        )
        name = variant_name(blocks, lr, lower)
        probs[name] = [ft(va), ft(te), ft(b_in)]
        # start_agreement: the branch before fine-tuning vs the frozen head (fp16 trunk cache)
        res["finetuned"][name] = {
            "seconds": round(time.perf_counter() - t1, 1),
            "start_agreement": agree,
            **fit,
        }
    faces = data["real_faces"].subset(rte)
    scores: dict[str, object] = {}
    for name, (pv, pt, pb) in probs.items():
        cuts = (
            (0.5, ""),
            (balanced_threshold(pv, val.y), ", validation threshold"),
            (balanced_threshold(pv[val_real], val.y[val_real]), ", real men's validation threshold"),
        )
        for t, tag in cuts:
            r = score(faces, (pt >= t).astype(np.int64))
            scores[name + tag] = r | {
                "threshold": t,
                "beard2clean": b2c_flips(pb, b.y, data["b2c_person"], t),
            }
    return res | {"scores": scores}


def run(folds, seeds, out: Path, shared: Path, variants=((1, 3e-5, False),), epochs=8, patience=2,
        name="beard-finetune", command="", data: dict | None = None,
        csv_file: CsvFiles = REAL_MEN_CSV) -> dict[str, object]:  # fmt: skip
    """Every seed x fold (a seed's folds in a row, so a stopped run holds whole seeds); writes
    ``<name>.json`` and ``<name>.md`` in ``out`` after each, with the seeds' pooled scores
    (``pooled_by_seed``) once a seed has every fold."""
    data = data or load_data(shared, progress=True, csv_file=csv_file)
    out.mkdir(parents=True, exist_ok=True)
    result: dict[str, object] = {
        **run_header(command),
        "csv": csv_name(csv_file),
        "variants": [list(v) for v in variants],
        "folds": {},
    }
    for seed in seeds:
        for fold in folds:
            res = run_fold(data, tuple(fold.split("+")), seed, variants, epochs, patience)
            result["folds"].setdefault(fold, []).append(res)  # type: ignore[union-attr]
            result["pooled"] = pooled_by_seed(result)
            (out / f"{name}.json").write_text(json.dumps(result, indent=2))
            (out / f"{name}.md").write_text(markdown(result))
    return result


def add_parser(sub: argparse._SubParsersAction) -> None:
    from train.beard_loso import csv_list

    p = sub.add_parser(
        "beard-finetune", help="fine-tune the ResNet's last blocks for beards vs the frozen head"
    )
    p.add_argument("--folds", default="lfw;utkface;aaf;aaf+lfw", help="';'-separated, '+' joins sources")
    p.add_argument(
        "--csv",
        type=csv_list,
        default=(REAL_MEN_CSV,),
        help="CSV[,CSV...] or all: the labelled men (default: the CSV); with --folds 'utkface;lfw;aaf' "
        "each seed's folds are also pooled",
    )
    p.add_argument("--seeds", default="0,1")
    p.add_argument(
        "--variants",
        default="1:3e-5",
        help="BLOCKS:LR[:lower],...: last blocks trained (1 or 2), learning rate; lower: the head "
        "also takes the fine-tuned last map's lower-face row",
    )
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument(
        "--patience", type=int, default=2, help="0: no early stopping, the last epoch's weights kept"
    )
    p.add_argument("--out", type=Path, default=Path("runs") / "beard-finetune")
    p.add_argument("--name", default="beard-finetune", help="file stem of the .json and .md written in --out")


def main(args: argparse.Namespace, shared: Path) -> int:
    folds = tuple(f for f in args.folds.split(";") if f)
    seeds = tuple(int(s) for s in args.seeds.split(","))
    command = "train " + " ".join(sys.argv[1:])
    variants = parse_variants(args.variants)
    run(folds, seeds, args.out, shared, variants, args.epochs, args.patience, args.name, command,
        csv_file=args.csv)  # fmt: skip
    print((args.out / f"{args.name}.md").read_text())
    return 0
