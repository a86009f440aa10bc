"""Train one classifier end to end: data -> detected crops -> split -> fit -> model file,
history plot, TensorBoard logs, metrics JSON, and an evaluation of the saved model on the
validation and fixed test splits through the service's own code path."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from streamer.classify.face_resnet import CHIP_PADDING
from streamer.classify.modelfile import PIXELS
from streamer.crop import DEFAULT_MARGIN
from train.architectures import CONFIGS, build
from train.crops import DEFAULT_DETECTOR, DEFAULT_UPSAMPLE, default_cache_dir
from train.data import BEARD_RULE, GENDER_RULE, DataError, LabelRule, load_any
from train.degrade import KINDS, VIDEO
from train.faces import Crops, crops_for
from train.features import features_for
from train.split import SPLIT_METHOD, split_dataset

# task -> (label rule, default config: the recipe of the model shipped in models/)
TASKS: dict[str, tuple[LabelRule, str]] = {
    "gender": (GENDER_RULE, "dlib_resnet"),
    "beard": (BEARD_RULE, "dlib_resnet_all"),
}


@dataclass
class TrainOptions:
    task: str
    data: Path
    out: Path
    config: str | None = None
    model_path: Path | None = None
    epochs: int = 40
    batch_size: int = 64
    seed: int = 0
    patience: int = 4
    learning_rate: float | None = None
    detector: str = DEFAULT_DETECTOR
    upsample: int = DEFAULT_UPSAMPLE
    margin: float = DEFAULT_MARGIN
    test_fraction: float = 0.1
    val_fraction: float = 0.2
    no_face: str = "skip"  # "skip": leave faceless images out of training; "whole": train on the whole image
    limit: int | None = None
    weights: str | None = None  # VGG16 base weights file
    cache_dir: Path | None = None
    progress: bool = True
    evaluate: bool = True
    # several sources (``train.sources.SOURCES``) instead of ``data``: balanced by source, label
    # and age band, split by person and stratified by source (``train.multi``)
    sources: tuple[str, ...] = ()
    # beard: train on CelebA's men only; add the labelled real men (train/real_men.py) of every
    # source but ``real_men_test`` (judged, never trained on), weighing ``real_men_weight`` of CelebA's
    men_only: bool = False
    real_men: Path | tuple[Path, ...] | None = None  # a CSV or several (train/real_men.py)
    real_men_test: tuple[str, ...] = ()
    real_men_weight: float = 0.3
    # train.real_men.read_rows: the real men's labels to train on, the first look's (the shipped
    # recipe: the three looks' labels hold up worse on video's small faces) or "agreed"
    real_men_labels: str = "first"
    extra: dict[str, object] = field(default_factory=dict)


def train(opt: TrainOptions) -> dict[str, object]:
    import keras

    from streamer.classify import ModelMeta, save_model

    if opt.task not in TASKS:
        raise ValueError(f"unknown task {opt.task!r}")
    rule, default_config = TASKS[opt.task]
    cfg_name = opt.config or default_config
    if cfg_name not in CONFIGS:
        raise ValueError(f"unknown model config {cfg_name!r}; choose one of {', '.join(CONFIGS)}")
    cfg = CONFIGS[cfg_name]
    if opt.no_face not in ("skip", "whole"):
        raise ValueError("no_face must be 'skip' or 'whole'")
    cache_dir = opt.cache_dir or default_cache_dir()
    out = Path(opt.out)
    out.mkdir(parents=True, exist_ok=True)
    model_path = Path(opt.model_path) if opt.model_path else out / "model.keras"

    t0 = time.perf_counter()
    faces = None
    if opt.sources:
        from train.multi import load_multi

        if cfg.features == PIXELS:
            raise DataError("--sources trains heads on the face backbone (a dlib_resnet config)")
        faces, feats = load_multi(opt.sources, opt.data, rule, cache_dir, opt.progress)
        ds = faces.ds
    else:
        ds = load_any(opt.data, rule, None, cache_dir, opt.limit)
    mirror_x = None
    if cfg.features != PIXELS:  # a head on the face backbone's cached features
        if faces is None:
            feats = features_for(ds, opt.detector, opt.upsample, cache_dir, opt.progress)
        crops = Crops(feats.matrix(cfg.features), feats.found)
        if cfg.mirror_rows:
            mirror_x = feats.mirror_matrix(cfg.features)
    else:
        crops = crops_for(ds, opt.detector, opt.upsample, cfg.input_size, opt.margin, cache_dir, opt.progress)
    t_crops = time.perf_counter() - t0
    if faces is not None:
        from train.multi import split_sources

        tr, va, te = split_sources(faces, opt.test_fraction, opt.val_fraction, opt.seed)
    else:
        tr, va, te = split_dataset(ds, opt.test_fraction, opt.val_fraction, opt.seed)
    if opt.men_only:
        from train.real_men import celeba_men

        men = celeba_men(opt.data)[: len(ds)]
        tr, va, te = tr[men[tr]], va[men[va]], te[men[te]]
    if len(tr) == 0 or len(va) == 0:
        raise DataError(f"{ds.source}: {len(ds)} images are too few to split into training and validation")

    def usable(idx: np.ndarray) -> np.ndarray:
        return idx if opt.no_face == "whole" else idx[crops.found[idx]]

    tr_fit, va_fit = usable(tr), usable(va)
    if len(set(ds.y[tr_fit].tolist())) < 2:
        raise DataError(
            f"{ds.source}: the training split holds a single class; give more or more varied images"
        )
    n_classes = len(ds.labels)
    head = "sigmoid" if cfg.head == "sigmoid" and n_classes == 2 else "softmax"
    if cfg_name == "resnet" and opt.task == "beard":
        head = "sigmoid"

    def target(idx: np.ndarray, y: np.ndarray | None = None) -> np.ndarray:
        y = ds.y[idx] if y is None else y
        return y.astype("float32")[:, None] if head == "sigmoid" else np.eye(n_classes, dtype="float32")[y]

    x_fit, y_fit = crops.x[tr_fit].astype("float32"), target(tr_fit)
    x_val, y_val = crops.x[va_fit].astype("float32"), target(va_fit)
    if mirror_x is not None:
        x_fit = np.concatenate([x_fit, mirror_x[tr_fit].astype("float32")])
        y_fit = np.concatenate([y_fit, y_fit])
    t_degraded = time.perf_counter()
    weights = None
    if faces is not None:  # every source counts alike; within it, each label and age band
        from train.multi import balance_weights

        weights = balance_weights(faces.subset(tr_fit))
        if mirror_x is not None:
            weights = np.concatenate([weights, weights])
    for k in range(cfg.degraded_copies):  # video-like copies: more rows, the same labels
        if faces is not None:
            from train.multi import load_multi

            dx = load_multi(opt.sources, opt.data, rule, cache_dir, opt.progress, VIDEO, k)[1]
        else:
            dx = features_for(ds, opt.detector, opt.upsample, cache_dir, opt.progress, degraded=VIDEO, seed=k)
        m = dx.matrix(cfg.features).astype("float32")
        x_fit = np.concatenate([x_fit, m[tr_fit]])
        y_fit = np.concatenate([y_fit, target(tr_fit)])
        if weights is not None:
            weights = np.concatenate([weights, balance_weights(faces.subset(tr_fit))])
        x_val = np.concatenate([x_val, m[va_fit]])
        y_val = np.concatenate([y_val, target(va_fit)])
    t_crops += time.perf_counter() - t_degraded
    real = None
    if opt.real_men:  # labelled real men: training and validation rows, weighted against CelebA's
        from train.real_men import real_men_rows

        real = real_men_rows(opt, cfg.features, cache_dir, cfg.small_faces)
        w_real = np.full(len(real["y_train"]), opt.real_men_weight * len(x_fit) / len(real["y_train"]))
        weights = np.concatenate([np.ones(len(x_fit)) if weights is None else weights, w_real])
        x_fit = np.concatenate([x_fit, real["x_train"]])
        y_fit = np.concatenate([y_fit, target(None, real["y_train"])])
        x_val = np.concatenate([x_val, real["x_val"]])
        y_val = np.concatenate([y_val, target(None, real["y_val"])])
    stats = None
    if cfg.features != PIXELS:
        xs = x_fit.astype("float64")
        stats = (xs.mean(axis=0), xs.var(axis=0))
    model = build(cfg_name, n_classes, head, opt.weights, opt.seed, stats)
    lr = opt.learning_rate or cfg.learning_rate
    loss = "binary_crossentropy" if head == "sigmoid" else "categorical_crossentropy"
    model.compile(optimizer=keras.optimizers.Adam(lr), loss=loss, metrics=["accuracy"])
    logdir = out / "tensorboard"
    callbacks = [
        keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=opt.patience, restore_best_weights=True, verbose=int(opt.progress)
        ),
        keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.3, patience=max(1, opt.patience - 1)),
    ]
    if _have_tensorboard():
        callbacks.append(
            keras.callbacks.TensorBoard(log_dir=str(logdir), histogram_freq=0, write_graph=False)
        )
    else:
        print(
            "train: tensorboard is not installed; no TensorBoard logs (pip install tensorboard)",
            file=sys.stderr,
        )
    t1 = time.perf_counter()
    # Keras writes its progress bars to stdout; keep stdout for the JSON result.
    with contextlib.redirect_stdout(sys.stderr):
        hist = model.fit(
            x_fit,
            y_fit,
            sample_weight=weights,
            validation_data=(x_val, y_val),
            epochs=opt.epochs,
            batch_size=opt.batch_size,
            shuffle=True,
            callbacks=callbacks,
            verbose=1 if opt.progress else 0,
        )
    t_fit = time.perf_counter() - t1
    history = {k: [float(v) for v in vs] for k, vs in hist.history.items()}
    best_epoch = int(np.argmin(history["val_loss"])) + 1

    # Save a fresh copy without optimizer state: a smaller file and no training baggage.
    clean = build(cfg_name, n_classes, head, None, opt.seed, stats)
    clean.set_weights(model.get_weights())
    pos = rule.positive_label if rule.positive_label in ds.labels else None
    split_info = {
        "test": f"{opt.test_fraction:g} of images, shuffled, stratified by label"
        + (" and source" if faces is not None else "")
        + ", person-disjoint where people are named (never trained on)",
        "method": "sources" if faces is not None else SPLIT_METHOD,
        "test_fraction": opt.test_fraction,
        "val_fraction": opt.val_fraction,
        "seed": opt.seed,
        "n_train": len(tr_fit),
        "n_val": len(va_fit),
        "n_test": len(te),
    }
    celeba = ds.source.startswith("celeba:")
    meta = ModelMeta(
        labels=tuple(ds.labels),
        input_size=cfg.input_size,
        crop_margin=opt.margin if cfg.features == PIXELS else CHIP_PADDING,
        features=cfg.features,
        task=opt.task,
        attribute=rule.attribute if celeba else None,
        positive_label=pos if celeba else None,
        description=f"{opt.task}: {cfg.description}",
        version="1",
        extra={
            "config": cfg_name,
            "detector": opt.detector,
            "upsample": opt.upsample,
            "label_rule": rule.to_dict(),
            "split": split_info,
            "trained_on": ds.source,
            **({"sources": list(opt.sources)} if faces is not None else {}),
            **({"men_only": True} if opt.men_only else {}),
            **({"real_men": real["info"]} if real else {}),
            "trained_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "epochs_run": len(history["loss"]),
            "best_epoch": best_epoch,
            **opt.extra,
        },
    )
    save_model(clean, model_path, meta)
    plot_history(history, out / "history.png", f"{opt.task} / {cfg_name}")

    metrics: dict[str, object] = {
        "task": opt.task,
        "config": cfg_name,
        "features": cfg.features,
        "model": str(model_path),
        "model_bytes": model_path.stat().st_size,
        "params": int(clean.count_params()),
        "data": ds.source,
        "labels": list(ds.labels),
        "label_rule": rule.describe(),
        "n_images": len(ds),
        "n_no_face": crops.n_no_face,
        "n_no_face_train_val": int((~crops.found[np.concatenate([tr, va])]).sum()),
        "no_face_policy": opt.no_face,
        "detector": opt.detector,
        "upsample": opt.upsample,
        "split": split_info,
        "class_counts": {"train": _counts(ds, tr_fit), "val": _counts(ds, va_fit), "test": _counts(ds, te)},
        "rows_fit": len(x_fit),  # training rows: faces, plus mirrored and degraded copies
        "degraded_copies": cfg.degraded_copies,
        "epochs": opt.epochs,
        "epochs_run": len(history["loss"]),
        "best_epoch": best_epoch,
        "batch_size": opt.batch_size,
        "learning_rate": lr,
        "seed": opt.seed,
        "seconds_crops": round(t_crops, 1),
        "seconds_fit": round(t_fit, 1),
        "history": history,
    }
    if faces is not None:
        from train.multi import evaluate_features, source_summary, take

        metrics["sources"] = list(opt.sources)
        metrics["source_counts"] = source_summary(faces, tr_fit, va_fit, te)
        if opt.evaluate:  # from the cached features (per-source detector settings)
            metrics["val"] = evaluate_features(model_path, faces.subset(va), take(feats, va))
            metrics["test"] = evaluate_features(model_path, faces.subset(te), take(feats, te))
            metrics.update(_other_sources(model_path, opt.detector, opt.task))
    elif opt.evaluate:
        from train.evaluate import evaluate_dataset

        for name, idx in (("val", va), ("test", te)):
            if len(idx) == 0:
                continue
            summary = evaluate_dataset(
                model_path,
                ds.subset(idx),
                out / f"report_{name}",
                cache_dir=cache_dir,
                detector=opt.detector,
                progress=False,
            )
            metrics[name] = summary
        if len(te):  # how the head holds up on video-like faces: the test split degraded
            metrics["test_degraded"] = {
                kind: _accuracy(
                    evaluate_dataset(
                        model_path,
                        ds.subset(te),
                        None,
                        cache_dir=cache_dir,
                        detector=opt.detector,
                        progress=False,
                        degraded=kind,
                    )
                )
                for kind in KINDS
            }
        metrics.update(_other_sources(model_path, opt.detector, opt.task))
    if opt.task == "beard" and opt.evaluate:
        from train.real_men import real_men_metrics

        metrics.update(real_men_metrics(opt, model_path, cache_dir, real))
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics


def _accuracy(summary: dict[str, object]) -> dict[str, object]:
    return {k: summary[k] for k in ("accuracy", "accuracy_ci95", "n_correct", "n_images")}


def _other_sources(model_path: Path, detector: str, task: str) -> dict[str, object]:
    """``{"other": summary}`` of the faces from other sources (train/other_faces.json) labelled
    for this task, or nothing when none of their images is here."""
    from train.other_faces import evaluate_other, load_annotations

    if not any(lab.get(task) for im in load_annotations().images for lab in im.labels):
        return {}
    return {"other": evaluate_other(model_path, detector=detector)}


def _have_tensorboard() -> bool:
    return importlib.util.find_spec("tensorboard") is not None


def _counts(ds, idx: np.ndarray) -> dict[str, int]:
    return {lab: int((ds.y[idx] == i).sum()) for i, lab in enumerate(ds.labels)}


def plot_history(history: dict[str, list[float]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key in zip(axes, ("loss", "accuracy"), strict=True):
        for k, style in ((key, "-o"), (f"val_{key}", "-s")):
            if k in history:
                ax.plot(range(1, len(history[k]) + 1), history[k], style, label=k, ms=3)
        ax.set_xlabel("epoch")
        ax.set_title(key)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
