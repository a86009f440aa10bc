"""Evaluate a model file on a data set, through the service's own code path:
cached detections (``mmod`` unless told otherwise), ``Classifier.crops`` (or, for a head on
the face backbone, dlib's aligned chip and ``FaceBackbone.features``, as the Engine does) and
``Classifier.predict_proba``. Images with no face are classified whole and counted."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np

from streamer.classify import Classifier, read_meta
from streamer.crop import crop_face, whole_image_box
from train.crops import DEFAULT_DETECTOR, DEFAULT_UPSAMPLE, default_cache_dir, read_rgb
from train.data import DataError, Dataset, LabelRule, load_any
from train.degrade import degrade
from train.faces import detections_or_fail
from train.features import features_for
from train.split import split_for_meta


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval for a proportion k/n (95% by default)."""
    if n == 0:
        return (0.0, 1.0)
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return (max(0.0, c - h), min(1.0, c + h))


def confusion_metrics(y_true: np.ndarray, y_pred: np.ndarray, labels: tuple[str, ...]) -> dict[str, object]:
    """Accuracy (with Wilson 95% CI), confusion matrix (rows: true, columns: predicted),
    and per-class precision, recall, F1 and support."""
    k = len(labels)
    cm = np.zeros((k, k), np.int64)
    for t, p in zip(np.asarray(y_true), np.asarray(y_pred), strict=True):
        cm[int(t), int(p)] += 1
    n = int(cm.sum())
    correct = int(np.trace(cm))
    per_class = {}
    for i, lab in enumerate(labels):
        tp = int(cm[i, i])
        pred = int(cm[:, i].sum())
        sup = int(cm[i, :].sum())
        prec = tp / pred if pred else 0.0
        rec = tp / sup if sup else 0.0
        f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
        lo, hi = wilson(tp, sup)
        per_class[lab] = {
            "precision": round(prec, 4),
            "recall": round(rec, 4),
            "recall_ci95": [round(lo, 4), round(hi, 4)],
            "f1": round(f1, 4),
            "support": sup,
        }
    lo, hi = wilson(correct, n)
    return {
        "accuracy": round(correct / n, 4) if n else 0.0,
        "accuracy_ci95": [round(lo, 4), round(hi, 4)],
        "n_correct": correct,
        "per_class": per_class,
        "confusion_matrix": cm.tolist(),
        "confusion_matrix_axes": "rows: true label, columns: predicted label, in the order of labels",
    }


def evaluate_dataset(
    model_path: Path,
    ds: Dataset,
    report_dir: Path | None,
    cache_dir: Path | None = None,
    detector: str | None = None,
    progress: bool = True,
    batch: int = 256,
    degraded: str | None = None,
) -> dict[str, object]:
    """``degraded``: a ``train.degrade.KINDS`` name applied to every image after detection (the
    boxes stay the clean image's), to measure the classifier on video-like faces."""
    clf = Classifier("eval", model_path)
    meta = clf.meta
    if tuple(ds.labels) != tuple(meta.labels):
        raise DataError(f"{ds.source}: data labels {ds.labels} differ from the model's {meta.labels}")
    cache_dir = cache_dir or default_cache_dir()
    detector = detector or DEFAULT_DETECTOR
    upsample = int(meta.extra.get("upsample", DEFAULT_UPSAMPLE))  # type: ignore[arg-type]
    all_boxes = detections_or_fail(ds, detector, upsample, cache_dir, progress)
    h, w = meta.input_size
    crops = np.zeros((len(ds), h, w, 3), np.uint8)
    no_face = np.zeros(len(ds), bool)
    t_backbone = 0.0
    if clf.uses_backbone:  # the service's path: dlib's aligned chip -> face backbone -> head
        t0 = time.perf_counter()
        feats = features_for(ds, detector, upsample, cache_dir, progress, degraded=degraded)
        t_backbone = time.perf_counter() - t0
        x = feats.matrix(meta.features)
        no_face = ~feats.found
        for i, p in enumerate(ds.paths):  # thumbnails for the report
            crops[i] = crop_face(_image(p, degraded, i), all_boxes[i][0], (h, w)) if all_boxes[i] else 0
    else:
        for i, (p, boxes) in enumerate(zip(ds.paths, all_boxes, strict=True)):
            image = _image(p, degraded, i)
            box = boxes[0] if boxes else whole_image_box(image)
            no_face[i] = not boxes
            crops[i] = clf.crops(image, [box])[0]
        x = crops
    t0 = time.perf_counter()
    probs = np.concatenate([clf.predict_proba(x[i : i + batch]) for i in range(0, len(ds), batch)])
    dt = time.perf_counter() - t0
    pred = probs.argmax(axis=1)
    summary: dict[str, object] = {
        "model": str(model_path),
        "data": ds.source,
        "labels": list(meta.labels),
        **confusion_metrics(ds.y, pred, meta.labels),
        "n_images": len(ds),
        "n_no_face": int(no_face.sum()),
        "accuracy_on_detected_faces": (
            round(float((pred[~no_face] == ds.y[~no_face]).mean()), 4) if (~no_face).any() else None
        ),
        "detector": detector,
        "upsample": upsample,
        "predict_seconds": round(dt, 2),
        "features": meta.features,
        "features_seconds": round(t_backbone, 2),
    }
    if degraded:
        summary["degraded"] = degraded
    if report_dir is not None:
        from train.report import write_report

        summary["report"] = str(report_dir)
        write_report(Path(report_dir), summary, crops, ds, pred, probs, no_face)
    return summary


def _image(path: Path, degraded: str | None, index: int) -> np.ndarray:
    image = read_rgb(path)
    return degrade(image, degraded, 0, index) if degraded else image


def evaluate_path(
    model_path: Path,
    data: Path,
    report_dir: Path | None,
    split: str = "all",
    cache_dir: Path | None = None,
    limit: int | None = None,
    progress: bool = True,
    detector: str | None = None,
    degraded: str | None = None,
) -> dict[str, object]:
    """``train evaluate``: everything the data set needs comes from the model file."""
    meta = read_meta(model_path)
    cache_dir = cache_dir or default_cache_dir()
    rule_d = meta.extra.get("label_rule")
    rule = None
    if isinstance(rule_d, dict):
        rule = LabelRule.from_dict(rule_d)
    elif meta.attribute and meta.positive_label:
        rule = LabelRule(meta.attribute, tuple(meta.labels), meta.positive_label)  # type: ignore[arg-type]
    ds = load_any(Path(data), rule, meta.labels, cache_dir, limit)
    if split != "all":
        s = meta.extra.get("split") or {}
        if not isinstance(s, dict) or "test_fraction" not in s:
            raise DataError(f"{model_path}: the model file records no split; use --split all")
        tr, va, te = split_for_meta(ds, s)
        ds = ds.subset({"test": te, "val": va, "train": tr}[split])
        ds.source += f" [{split} split]"
    return evaluate_dataset(
        Path(model_path), ds, report_dir, cache_dir, detector, progress=progress, degraded=degraded
    )


def faces_per_second(
    model_path: Path, batch_sizes: tuple[int, ...] = (1, 32), n: int = 256
) -> dict[str, float]:
    """Throughput of ``Classifier.predict_proba`` on random crops, one call per batch; for a head
    on the face backbone also of ``FaceBackbone.features`` (``backbone_batch_N``), measured in
    alternation with the head."""
    clf = Classifier("bench", model_path, max_batch=max(batch_sizes))
    h, w = clf.meta.input_size
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (max(batch_sizes), h, w, 3), dtype=np.uint8)
    jobs = {}
    if clf.uses_backbone:
        from streamer.classify.backbone import FaceBackbone
        from streamer.classify.face_resnet import needs_mirror

        backbone = FaceBackbone(max_batch=max(batch_sizes))
        feats = rng.normal(size=(max(batch_sizes), clf.inputs)).astype(np.float32)
        mirrored = needs_mirror(clf.meta.features)
        for b in batch_sizes:
            jobs[f"batch_{b}"] = (b, lambda b=b: clf.predict_proba(feats[:b]))
            jobs[f"backbone_batch_{b}"] = (b, lambda b=b: backbone.features(x[:b], mirrored=mirrored))
    else:
        for b in batch_sizes:
            jobs[f"batch_{b}"] = (b, lambda b=b: clf.predict_proba(x[:b]))
    for _, fn in jobs.values():
        for _ in range(3):  # warm up (graph tracing per shape)
            fn()
    spent = dict.fromkeys(jobs, 0.0)
    faces = dict.fromkeys(jobs, 0)
    for _ in range(3):  # rounds, alternating the jobs so that load from others hits all alike
        for k, (b, fn) in jobs.items():
            calls = max(1, (n // 3) // b) if not k.startswith("backbone") else max(1, 32 // b)
            t0 = time.perf_counter()
            for _ in range(calls):
                fn()
            spent[k] += time.perf_counter() - t0
            faces[k] += calls * b
    return {k: round(faces[k] / spent[k], 1) for k in jobs}


def dumps(summary: dict[str, object]) -> str:
    return json.dumps(summary, indent=2)
