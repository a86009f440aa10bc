"""Fine-tune the last blocks of dlib's face ResNet with a gender head (``train finetune``), and
compare with the frozen-descriptor head on the same splits (issue #30).

Per fold (``all``: every source, 10% test split with CelebA's name-order tail of 900; or one
source held out: trained on the others, tested on every face of it), on the same training,
validation and test faces and the same balancing weights (``train.multi``):

1. ``frozen``: the shipped recipe, ``dlib_resnet``'s head on the frozen backbone's cached
   features (``architectures.build``, Adam 1e-3, batch 64, early stopping on validation loss).
2. ``finetuned``: a copy of the ResNet's tail after the trunk (``train.trunk``: the last
   ``blocks`` residual blocks and the fc layer trainable, initialised from dlib's weights)
   under the same head, initialised from step 1's head; trained at a small learning rate on
   the cached trunk activations, the chip or its mirror image drawn per face and epoch, early
   stopping (best validation loss kept) on the person-disjoint validation split.

3. the cheap alternatives, on frozen features: CelebA's training weight doubled, and the mean
   of 5 heads trained with different seeds.

All are scored by ``train.multi.score`` (overall, per gender, age band, source, ECE, Wilson
CIs). Writes ``finetune.json`` and ``finetune.md``."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from train.multi import balance_weights, score, split_sources
from train.run_header import run_header
from train.sources import AGE_BANDS, SOURCES
from train.trunk import BLOCKS, TRUNK_END, frozen_features, load_trunk, source_trunk

FEATURES = "dlib_face_descriptor+dlib_pooled"
# the tail's input layer when the last ``blocks`` blocks are trained (the rest is frozen)
START = {1: "relu_116", 2: "relu_108", 3: TRUNK_END}


def branch_model(blocks: int, stats: tuple[np.ndarray, np.ndarray], seed: int = 0):
    """(pre, branch): ``pre`` the frozen blocks from the trunk's output to ``START[blocks]``;
    ``branch`` that -> the last ``blocks`` blocks, pooling, fc (dlib's weights, trainable) ->
    ``dlib_resnet``'s head (descriptor + pooled, standardised by ``stats``) -> softmax."""
    import keras

    from streamer.classify.face_resnet import load_face_resnet
    from train.architectures import CONFIGS, build_feature_head

    full = load_face_resnet()
    start = full.get_layer(START[blocks]).output
    pre = keras.Model(full.get_layer(TRUNK_END).output, start, name="frozen_blocks")
    pre.trainable = False
    tail = keras.Model(
        start, [full.get_layer("fc").output, full.get_layer("pooled").output], name="dlib_tail_finetuned"
    )
    trainable = {n for b in BLOCKS[:blocks] for n in b} | {"fc"}
    for layer in tail.layers:
        layer.trainable = layer.name in trainable
    head = build_feature_head(CONFIGS["dlib_resnet"], 2, "softmax", seed, stats)
    inp = keras.Input(tuple(start.shape[1:]), name="trunk")
    d, p = tail(inp)
    out = head(keras.layers.Concatenate()([d, p]))
    return pre, keras.Model(inp, out, name=f"dlib_finetune_{blocks}")


def _fit_frozen(x_tr, y_tr, w_tr, x_va, y_va, seed: int, epochs: int, patience: int, progress: bool):
    """The shipped recipe's head (``train.fit``'s settings) on frozen features."""
    import keras

    from train.architectures import build

    xs = x_tr.astype("float64")
    stats = (xs.mean(axis=0), xs.var(axis=0))
    model = build("dlib_resnet", 2, "softmax", None, seed, stats)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3), loss="categorical_crossentropy", metrics=["accuracy"]
    )
    cbs = [
        keras.callbacks.EarlyStopping(monitor="val_loss", patience=patience, restore_best_weights=True),
        keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.3, patience=max(1, patience - 1)),
    ]
    h = model.fit(
        x_tr,
        y_tr,
        sample_weight=w_tr,
        validation_data=(x_va, y_va),
        epochs=epochs,
        batch_size=64,
        shuffle=True,
        callbacks=cbs,
        verbose=int(progress),
    )
    return model, stats, len(h.history["loss"])


def _fit_branch(
    branch,
    a_tr,
    am_tr,
    y_tr,
    w_tr,
    a_va,
    y_va,
    lr: float,
    epochs: int,
    patience: int,
    seed: int,
    progress: bool,
) -> dict[str, object]:
    """Fine-tune ``branch`` one epoch at a time (a fresh chip/mirror draw each), keeping the
    weights of the best validation loss; stop after ``patience`` epochs without a gain."""
    import keras

    branch.compile(optimizer=keras.optimizers.Adam(lr), loss="categorical_crossentropy", metrics=["accuracy"])
    rng = np.random.default_rng(seed)
    best_w, since, hist, best_epoch = branch.get_weights(), 0, [], 0
    v0 = branch.evaluate(a_va, y_va, batch_size=256, verbose=0)
    hist.append({"epoch": 0, "val_loss": float(v0[0]), "val_accuracy": float(v0[1])})
    best = float(v0[0])
    for ep in range(1, epochs + 1):
        t0 = time.perf_counter()
        flip = rng.random(len(a_tr)) < 0.5
        x = np.where(flip[:, None, None, None], am_tr, a_tr)
        h = branch.fit(
            x, y_tr, sample_weight=w_tr, epochs=1, batch_size=64, shuffle=True, verbose=int(progress)
        )
        v = branch.evaluate(a_va, y_va, batch_size=256, verbose=0)
        row = {
            "epoch": ep,
            "loss": float(h.history["loss"][0]),
            "val_loss": float(v[0]),
            "val_accuracy": float(v[1]),
            "seconds": round(time.perf_counter() - t0, 1),
        }
        hist.append(row)
        print(f"finetune: {row}", file=sys.stderr, flush=True)
        if v[0] < best - 1e-4:
            best, best_w, since, best_epoch = float(v[0]), branch.get_weights(), 0, ep
        else:
            since += 1
            if since >= patience:
                break
    branch.set_weights(best_w)
    return {
        "history": hist,
        "best_val_loss": best,
        "best_epoch": best_epoch,  # the weights kept (a gain under 1e-4 does not count)
    }


def run_fold(
    fold: str,
    shared: Path,
    blocks: int = 2,
    lr: float = 3e-5,
    epochs: int = 8,
    patience: int = 2,
    seed: int = 0,
    cache_dir: Path | None = None,
    progress: bool = False,
    variants: bool = True,
) -> dict[str, object]:
    """One fold: ``all`` or a held-out source's name. ``variants``: also the cheap alternatives
    on frozen features (CelebA's weight doubled; the mean of 5 heads of different seeds)."""
    from train.features import Features

    sources = SOURCES if fold == "all" else tuple(s for s in SOURCES if s != fold)
    faces, acts = load_trunk(sources, shared, cache_dir, progress)
    parts = [frozen_features(s, source_trunk(s, shared, cache_dir, progress)[0], cache_dir) for s in sources]
    feats = Features(
        {k: np.concatenate([p.x[k] for p in parts]) for k in FEATURES.split("+")},
        np.concatenate([p.found for p in parts]),
    )
    assert (feats.found == acts.found).all()
    tr, va, te = split_sources(faces, 0.1 if fold == "all" else 0.0, 0.2, seed)
    tr, va = tr[acts.found[tr]], va[acts.found[va]]
    eye = np.eye(2, dtype="float32")
    y_tr, y_va = eye[faces.ds.y[tr]], eye[faces.ds.y[va]]
    w_tr = balance_weights(faces.subset(tr))
    fx = feats.matrix(FEATURES).astype("float32")
    t0 = time.perf_counter()
    frozen, stats, frozen_epochs = _fit_frozen(fx[tr], y_tr, w_tr, fx[va], y_va, seed, 40, 4, progress)
    t_frozen = time.perf_counter() - t0
    print(
        f"finetune: {fold}: frozen head {frozen_epochs} epochs, {t_frozen:.0f} s", file=sys.stderr, flush=True
    )
    pre, branch = branch_model(blocks, stats, seed)
    branch.layers[-1].set_weights(frozen.get_weights())  # the head starts where the frozen one ended

    def inputs(a: np.ndarray) -> np.ndarray:
        return np.concatenate(
            [
                np.asarray(pre.predict(a[i : i + 1024].astype("float32"), verbose=0))
                for i in range(0, len(a), 1024)
            ]
        )

    if fold == "all":
        t_faces, t_idx = faces, te
        t_acts = acts.x[te]
        t_fx = fx[te]
    else:
        t_faces, t_acts_all = source_trunk(fold, shared, cache_dir, progress)
        t_idx = np.arange(len(t_faces))
        t_acts = t_acts_all.x
        t_fx = frozen_features(fold, t_faces, cache_dir).matrix(FEATURES).astype("float32")
    a_te = inputs(t_acts)
    before = branch.predict(a_te, batch_size=256, verbose=0)
    t1 = time.perf_counter()
    fit = _fit_branch(
        branch,
        inputs(acts.x[tr]),
        inputs(acts.xm[tr]),
        y_tr,
        w_tr,
        inputs(acts.x[va]),
        y_va,
        lr,
        epochs,
        patience,
        seed,
        progress,
    )
    t_fit = time.perf_counter() - t1
    p_frozen = frozen.predict(t_fx, batch_size=256, verbose=0)
    probs = {"frozen": p_frozen}
    if variants:  # the cheap alternatives, on frozen features: CelebA weighted up; 5 heads' mean
        w2 = w_tr * np.where(faces.source[tr] == "celeba", 2.0, 1.0).astype("float32")
        m2 = _fit_frozen(fx[tr], y_tr, w2 * len(w2) / w2.sum(), fx[va], y_va, seed, 40, 4, progress)[0]
        probs["frozen, CelebA weight x2"] = m2.predict(t_fx, batch_size=256, verbose=0)
        heads = [p_frozen] + [
            _fit_frozen(fx[tr], y_tr, w_tr, fx[va], y_va, seed + k, 40, 4, progress)[0].predict(
                t_fx, batch_size=256, verbose=0
            )
            for k in range(1, 5)
        ]
        probs["frozen, 5 heads' mean"] = np.mean(heads, axis=0)
    probs["finetuned"] = branch.predict(a_te, batch_size=256, verbose=0)
    tf = t_faces.subset(t_idx) if fold == "all" else t_faces
    res: dict[str, object] = {
        "fold": fold,
        "trained_on": list(sources),
        "blocks": blocks,
        "learning_rate": lr,
        "n_train": len(tr),
        "n_val": len(va),
        "frozen_epochs": frozen_epochs,
        "seconds_frozen": round(t_frozen, 1),
        "seconds_finetune": round(t_fit, 1),
        **fit,
        # the branch before fine-tuning (frozen tail, trained head, fp16 trunk cache): a check
        # that it reproduces the frozen head's predictions
        "start_agreement": float((before.argmax(1) == p_frozen.argmax(1)).mean()),
        "scores": {k: score(tf, p) for k, p in probs.items()},
    }
    if fold == "all":
        cel = np.flatnonzero(tf.source == "celeba")
        res["celeba_test"] = {k: score(tf.subset(cel), p[cel]) for k, p in probs.items()}
    return res


def _row(name: str, s: dict) -> str:
    from train.loso import summary_rows

    return summary_rows(name, s)


def markdown(result: dict) -> str:
    lines = [
        f"Fine-tuned last {result['blocks']} block(s) of dlib's ResNet + gender head vs the "
        f"frozen-descriptor head, same splits and weights "
        f"(seed {result['seed']}, learning rate {result['learning_rate']:g}); `{result['command']}` "
        f"at {result['commit']}, {result['started']}, load average {result['load_average'][0]:.1f} "
        "(2 shared cores).",
        "",
        "| fold: test faces / model | faces | accuracy (95% CI) | women's recall | men's recall "
        "| worst age band | ECE | shown at p ≥ 0.6 / their accuracy |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, f in result["folds"].items():
        what = "test split (10%)" if name == "all" else f"{name} held out (every face)"
        for who, sc in f["scores"].items():
            lines.append(_row(f"{what}: {who}", sc))
        for who, sc in f.get("celeba_test", {}).items():
            lines.append(_row(f"CelebA test split: {who}", sc))
    lines += ["", "Per age band (accuracy, faces):", ""]
    lines += ["| fold / model | " + " | ".join(AGE_BANDS) + " |", "|---|" + "---|" * len(AGE_BANDS)]
    for name, f in result["folds"].items():
        for who, sc in f["scores"].items():
            cells = [sc["by_age"].get(b) for b in AGE_BANDS]
            lines.append(
                f"| {name}: {who} | "
                + " | ".join(f"{100 * c['accuracy']:.1f}% n={c['n']}" if c else "–" for c in cells)
                + " |"
            )
    lines += ["", "Training:", ""]
    for name, f in result["folds"].items():
        lines.append(
            f"- {name}: {f['n_train']} training / {f['n_val']} validation faces; "
            f"frozen head {f['frozen_epochs']} epochs ({f['seconds_frozen']:.0f} s); "
            f"fine-tuning best epoch {f['best_epoch']} of "
            f"{len(f['history']) - 1} ({f['seconds_finetune']:.0f} s); validation loss "
            f"{f['history'][0]['val_loss']:.4f} -> {f['best_val_loss']:.4f}; start agreement "
            f"{100 * f['start_agreement']:.2f}%"
        )
    return "\n".join(lines) + "\n"


def run(
    folds: tuple[str, ...],
    out: Path,
    shared: Path,
    blocks: int = 2,
    lr: float = 3e-5,
    epochs: int = 8,
    patience: int = 2,
    seed: int = 0,
    progress: bool = False,
    name: str = "finetune",
    command: str = "",
    variants: bool = True,
) -> dict[str, object]:
    """Every fold; writes ``<name>.json`` and ``<name>.md`` in ``out`` after each."""

    out.mkdir(parents=True, exist_ok=True)
    result: dict[str, object] = {
        **run_header(command),
        "blocks": blocks,
        "learning_rate": lr,
        "seed": seed,
        "folds": {},
    }
    for fold in folds:
        result["folds"][fold] = run_fold(
            fold, shared, blocks, lr, epochs, patience, seed, None, progress, variants
        )  # type: ignore[index]
        (out / f"{name}.json").write_text(json.dumps(result, indent=2))
        (out / f"{name}.md").write_text(markdown(result))
    return result
