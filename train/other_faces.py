"""Evaluation on faces from sources other than CelebA (``train/other_faces.json``): photos of
dlib's examples, the media of ``../shared`` and frames of the demo clip, labelled by eye per
face box.

Every image goes through the service's own Engine (detect, 5-point alignment, chip, backbone,
head), with the detector settings the annotations were made with. A detected face counts for
the annotated face it overlaps (IoU >= 0.5); an annotated face the detector misses is counted
(``n_missed``), not scored. ``train evaluate --data train/other_faces.json`` runs it."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from streamer.types import Box
from train.data import DataError

DEFAULT_FILE = Path(__file__).resolve().with_name("other_faces.json")
REPO = Path(__file__).resolve().parents[1]


def shared_root() -> Path:
    env = os.environ.get("STREAMER_SHARED")
    return Path(env) if env else REPO.parent / "shared"


@dataclass(frozen=True)
class AnnotatedImage:
    path: Path
    frame: int | None  # video frame index, or None for a still image
    boxes: tuple[Box, ...]
    labels: tuple[dict[str, str | None], ...]  # per face: task -> label (None: not clear)

    @property
    def name(self) -> str:
        return f"{self.path.name}#{self.frame}" if self.frame is not None else self.path.name


@dataclass(frozen=True)
class Annotations:
    images: tuple[AnnotatedImage, ...]
    detector: str
    upsample: int
    detect_max_side: int


def is_annotation_file(path: Path) -> bool:
    return Path(path).suffix == ".json" and Path(path).is_file()


def load_annotations(path: Path = DEFAULT_FILE, shared: Path | None = None) -> Annotations:
    """Read the annotation file; images whose file is absent (no ../shared here) are left out."""
    try:
        d = json.loads(Path(path).read_text())
        images = []
        for e in d["images"]:
            root = {"shared": shared or shared_root(), "repo": REPO}[e["root"]]
            p = root / e["image"]
            if not p.is_file():
                continue
            boxes = tuple(Box(*(int(v) for v in f["box"]), 1.0) for f in e["faces"])
            labels = tuple({k: f.get(k) for k in f if k != "box"} for f in e["faces"])
            images.append(AnnotatedImage(p, e.get("frame"), boxes, labels))
        return Annotations(tuple(images), d["detector"], int(d["upsample"]), int(d["detect_max_side"]))
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise DataError(f"{path}: not a face annotation file ({type(e).__name__}: {e})") from e


def read_image(item: AnnotatedImage) -> np.ndarray:
    """RGB uint8 of a still image, or of frame ``item.frame`` of a video (decoded in order)."""
    import cv2

    if item.frame is None:
        bgr = cv2.imread(str(item.path), cv2.IMREAD_COLOR)
    else:
        cap = cv2.VideoCapture(str(item.path))
        bgr = None
        for _ in range(item.frame + 1):
            ok, bgr = cap.read()
            if not ok:
                bgr = None
                break
        cap.release()
    if bgr is None:
        raise DataError(f"{item.name}: cannot read the image or frame")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def evaluate_other(
    model_path: Path,
    annotations: Path = DEFAULT_FILE,
    detector: str | None = None,
    limit: int | None = None,
    engine: object | None = None,
) -> dict[str, object]:
    """Accuracy of a model on the annotated faces, through the service's Engine."""
    from streamer.classify import read_meta
    from streamer.config import ClassifierConfig
    from streamer.inference.engine import Engine, EngineSpec
    from train.evaluate import confusion_metrics

    meta = read_meta(model_path)
    task = meta.task
    ann = load_annotations(annotations)
    items = [im for im in ann.images if any(lab.get(task) for lab in im.labels)][:limit]
    if not items:
        raise DataError(f"{annotations}: no face labelled for task {task!r} among the images found")
    if engine is None:
        spec = EngineSpec(
            detector=detector or ann.detector,
            upsample=ann.upsample,
            detect_max_side=ann.detect_max_side,
            classifiers=(ClassifierConfig(name=task or "model", model=str(model_path), threshold=0.0),),
        )
        engine = Engine(spec)
    if engine.status.failed:  # type: ignore[attr-defined]
        raise DataError(f"{model_path}: {engine.status.failed}")  # type: ignore[attr-defined]
    y_true: list[int] = []
    y_pred: list[int] = []
    faces: list[dict[str, object]] = []
    missed = []
    for item in items:
        result = engine.run([read_image(item)])[0][0]  # type: ignore[attr-defined]
        if result.error:
            raise DataError(f"{item.name}: {result.error}")
        for box, lab in zip(item.boxes, item.labels, strict=True):
            want = lab.get(task)
            if not want:
                continue
            if want not in meta.labels:
                raise DataError(
                    f"{annotations}: {item.name}: label {want!r} is not one of {list(meta.labels)}"
                )
            best = max(result.faces, key=lambda f: f.box.iou(box), default=None)
            if best is None or best.box.iou(box) < 0.5 or not best.labels:
                missed.append({"image": item.name, "box": [box.left, box.top, box.right, box.bottom]})
                continue
            got = best.labels[0]
            y_true.append(meta.labels.index(want))
            y_pred.append(meta.labels.index(got.label))
            faces.append(
                {
                    "image": item.name,
                    "box": [box.left, box.top, box.right, box.bottom],
                    "true": want,
                    "predicted": got.label,
                    "p": round(float(got.probability), 3),
                }
            )
    summary: dict[str, object] = {
        "model": str(model_path),
        "data": f"other sources: {annotations}",
        "labels": list(meta.labels),
        **confusion_metrics(np.array(y_true), np.array(y_pred), meta.labels),
        "n_images": len(items),
        "n_faces": len(y_true),
        "n_missed": len(missed),
        "missed": missed,
        "errors": [f for f in faces if f["true"] != f["predicted"]],
        "detector": detector or ann.detector,
        "upsample": ann.upsample,
        "features": meta.features,
    }
    return summary
