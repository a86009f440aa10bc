"""Detection then classification on a batch of frames: the model work, in one place.

An Engine runs wherever it is built: inside a worker process for the service
(see pool.py), or in-process for the offline commands and tests. It returns
faces, never images.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from streamer.classify import Classifier, ModelFileError, read_meta
from streamer.classify.backbone import FaceBackbone
from streamer.classify.conditions import met, usable_conditions
from streamer.classify.face_resnet import CHIP_SIZE, FEATURES, FLIP_SUFFIX, IDENTITY, needs_mirror
from streamer.config import ClassifierConfig, Config
from streamer.detect import BadImageError, as_rgb, make_detector
from streamer.detect.proposals import PROPOSE_THRESHOLD, Proposer
from streamer.detect.regions import clip, cut, merge
from streamer.inference.oom import split_on_oom
from streamer.metrics import Metrics
from streamer.types import BatchTimings, Box, Face, Label, Region

log = logging.getLogger(__name__)


def warm_batches() -> tuple[int, ...]:
    """Faces per batch the classifiers are made ready for before the first frame: TensorFlow traces
    each model's predict step once, for every batch size (quiet.trace_predict_once), so one size
    does; JAX compiles each padded size (powers of two, see classifier._compiled_predict) up to the
    heads' largest batch (64). Keras is not imported for this (a worker whose heads run in NumPy
    and whose networks run on ONNX Runtime never loads it): its backend is the environment's."""
    if "keras" in sys.modules:
        import keras

        backend = keras.backend.backend()
    else:
        backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    return (1, 2, 4, 8, 16, 32, 64) if backend == "jax" else (1,)


@dataclass(frozen=True)
class EngineSpec:
    """Everything needed to build an Engine; picklable, sent to worker processes."""

    detector: str = "dlib"
    upsample: int = 0
    detect_max_side: int = 640
    classifiers: tuple[ClassifierConfig, ...] = ()
    threads: int = 0  # 0 = let the framework decide
    nice: int = 0  # added to the worker process's niceness (lower CPU priority)
    face_backbone: str = ""  # dlib face-recognition .dat ("" = STREAMER_FACE_BACKBONE or the packaged one)
    runtime: str = "auto"  # mmod network and face backbone: "auto", "onnxruntime" or "keras"
    weak_score: float = 0.0  # mmod: detections kept from this score up; under 0 (FACE_SCORE) weak ones
    propose_threshold: float = PROPOSE_THRESHOLD  # HOG's, for the planner's proposal tiles
    propose: bool = False  # the planner sends propose regions: HOG's detector is loaded at warm-up


def usable_classifiers(classifiers: list[ClassifierConfig], metrics: Metrics) -> list[ClassifierConfig]:
    """The classifiers whose model file can be read; each missing one is reported, not fatal."""
    ok = []
    for c in classifiers:
        try:
            read_meta(c.model)
        except ModelFileError as e:
            log.error("classifier %r disabled, the service runs without it: %s", c.name, e)
            metrics.errors.labels("classifier_unavailable").inc()
            continue
        ok.append(c)
    return ok


def engine_spec(config: Config, metrics: Metrics | None = None, nice: int = 0) -> EngineSpec:
    """The Engine a config asks for: the same for the worker pool, the model server and annotate."""
    p = config.pipeline
    return EngineSpec(
        detector=p.detector,
        upsample=p.upsample,
        detect_max_side=p.detect_max_side,
        classifiers=tuple(usable_classifiers(config.classifiers, metrics or Metrics())),
        threads=p.worker_threads,
        nice=nice,
        runtime=p.runtime,
        weak_score=p.weak_score,
        propose_threshold=p.propose_threshold,
        propose=p.proposes,
    )


@dataclass
class EngineStatus:
    detector: str
    classifiers: list[str]
    failed: dict[str, str] = field(default_factory=dict)  # classifier name -> error


@dataclass(frozen=True)
class FrameResult:
    faces: tuple[Face, ...] = ()
    error: str | None = None  # set when this frame could not be processed


def scale_for_detection(image: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    h, w = image.shape[:2]
    if max_side <= 0 or max(h, w) <= max_side:
        return image, 1.0
    s = max_side / max(h, w)
    small = cv2.resize(image, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    return small, s


def unscale_box(b: Box, s: float, width: int, height: int) -> Box:
    if s == 1.0:
        return b
    return Box(
        max(0, round(b.left / s)),
        max(0, round(b.top / s)),
        min(width - 1, round((b.right + 1) / s) - 1),
        min(height - 1, round((b.bottom + 1) / s) - 1),
        b.confidence,
    )


class Engine:
    def __init__(self, spec: EngineSpec) -> None:
        self.spec = spec
        if spec.threads:
            _limit_threads(spec.threads)
        options = (
            {"runtime": spec.runtime, "threads": spec.threads, "threshold": min(0.0, spec.weak_score)}
            if spec.detector == "mmod"
            else {}
        )
        self.detector = make_detector(spec.detector, **options)
        self._proposer = Proposer(spec.propose_threshold)
        self.classifiers: list[Classifier] = []
        self.backbone: FaceBackbone | None = None
        self.status = EngineStatus(detector=spec.detector, classifiers=[])
        backbone_error: str | None = None
        for c in spec.classifiers:
            try:
                clf = Classifier(c.name, c.model, threshold=c.threshold)
                check_classifier_config(c, clf)
                if clf.uses_backbone and self.backbone is None:
                    if backbone_error is None:
                        try:
                            self.backbone = FaceBackbone(
                                spec.face_backbone or None, runtime=spec.runtime, threads=spec.threads
                            )
                        except ModelFileError as e:
                            backbone_error = str(e)
                    if backbone_error is not None:
                        raise ModelFileError(
                            f"needs the face backbone, which failed to load: {backbone_error}"
                        )
            except (ModelFileError, ValueError) as e:
                log.error("classifier %s disabled: %s", c.name, e)
                self.status.failed[c.name] = str(e)
                continue
            self.classifiers.append(clf)
            self.status.classifiers.append(c.name)
        self.conditions, bad = usable_conditions(spec.classifiers, self.classifiers)
        for name, problem in bad.items():  # a ``when`` that cannot be met: disabled like a missing model
            log.error("classifier %s disabled: %s", name, self.status.failed.setdefault(name, problem))
        self.classifiers = [c for c in self.classifiers if c.name not in bad]
        self.status.classifiers = [n for n in self.status.classifiers if n not in bad]

    def warm_up(self, sizes: Sequence[int] | None = None) -> float:
        """Run the backbone and every classifier once per batch size in ``sizes`` on blank input, so
        that the first faces a stream shows do not wait for tracing (on TensorFlow, a batch of a
        size not seen before took 0.3-0.4 s instead of 0.08 s: every stream of that detector batch
        showed boxes that much later). ``sizes``: faces per batch (default: ``warm_batches()``).
        Returns the seconds it took. A model that fails here is left to fail (and be reported) on
        real faces. With ``spec.propose``, dlib's HOG detector is loaded too (proposals.py: about
        0.5 s, which a stream's first proposal round waited for: its small faces showed that much
        later)."""
        t0 = time.perf_counter()
        if self.spec.propose:
            self._proposer.load()
        if not self.classifiers:
            return time.perf_counter() - t0
        wanted = [k for c in self.classifiers if c.uses_backbone for k in c.meta.features.split("+")]
        for n in sizes or warm_batches():
            try:
                features = None
                if self.backbone is not None and wanted:
                    blank = np.zeros((n, CHIP_SIZE, CHIP_SIZE, 3), np.uint8)
                    features = self.backbone.features(blank, mirrored=needs_mirror(wanted))
                for clf in self.classifiers:
                    if clf.uses_backbone and features is not None:
                        x = np.concatenate([features[k] for k in clf.meta.features.split("+")], axis=1)
                    else:
                        x = np.zeros((n, *clf.meta.input_size, 3), np.uint8)
                    clf.predict_proba(x)
            except Exception as e:
                log.warning("warming the classifiers up at %d faces failed: %s", n, e)
                break
        return time.perf_counter() - t0

    def run(
        self,
        images: Sequence[np.ndarray],
        skip: Sequence[Sequence[Box]] | None = None,
        regions: Sequence[Sequence[Region]] | None = None,
        streams: Sequence[str] | None = None,
    ) -> tuple[list[FrameResult], BatchTimings]:
        """Faces per image. ``skip[i]``: boxes (tracks with settled labels) whose faces in image i
        need no classifying; a detected face overlapping one (IoU >= 0.5) comes back without labels,
        and so does a weak detection (scored under 0, kept down to ``weak_score``: types.FACE_SCORE).
        ``regions[i]``: where to look in image i, each at its scale (empty: the whole image, scaled
        to ``detect_max_side``, at ``upsample``; "propose" ones: where HOG proposes, see
        proposals.py); faces are classified on the full image. ``streams[i]``: image i's stream, whose
        proposals MMOD turned down are remembered (rejected.py; without: one memory for all)."""
        results: list[FrameResult | None] = [None] * len(images)
        good: list[int] = []
        rgb: list[np.ndarray] = []
        for i, im in enumerate(images):
            try:
                rgb.append(as_rgb(im))
                good.append(i)
            except BadImageError as e:
                results[i] = FrameResult(error=str(e))
        t0 = time.perf_counter()
        splits = [0]
        keys = [streams[i] if streams else None for i in good]
        plans = [
            self._proposer.expand(im, regions[i], skip[i] if skip else (), k) if regions else ()
            for i, im, k in zip(good, rgb, keys, strict=True)
        ]  # propose regions: HOG's faces to look at (a settled track's face is looked at on its own turn)
        boxes = self.detect(rgb, plans, splits) if rgb else []
        for im, bs, k in zip(rgb, boxes, keys, strict=True):
            self._proposer.learn(im, bs, k)
        t1 = time.perf_counter()
        wanted = [  # (a weak detection is no face to classify: it only keeps a track, see types.FACE_SCORE)
            [j for j, b in enumerate(bs) if not b.weak and not _overlaps(b, skip[i] if skip else ())]
            for i, bs in zip(good, boxes, strict=True)
        ]
        picked = [[bs[j] for j in w] for bs, w in zip(boxes, wanted, strict=True)]
        some, batches, errors, who = self.classify(rgb, picked, splits)
        labels: list[list[list[Label]]] = [[[] for _ in bs] for bs in boxes]
        identity: list[list[np.ndarray | None]] = [[None for _ in bs] for bs in boxes]
        for k, w in enumerate(wanted):
            for j, lab, d in zip(w, some[k], who[k], strict=True):
                labels[k][j], identity[k][j] = lab, d
        t2 = time.perf_counter()
        n_faces = 0
        for k, i in enumerate(good):
            faces = tuple(
                Face(b, tuple(lab), identity=d)
                for b, lab, d in zip(boxes[k], labels[k], identity[k], strict=True)
            )
            n_faces += len(faces)
            results[i] = FrameResult(faces=faces)
        timings = BatchTimings(t1 - t0, t2 - t1, len(good), n_faces, batches, errors, splits[0])
        return [r if r is not None else FrameResult(error="not processed") for r in results], timings

    def detect(
        self, images: Sequence[np.ndarray], plans: Sequence[Sequence[Region]], splits: list[int]
    ) -> list[list[Box]]:
        """Boxes per (RGB) image in its own pixels: regions cut and detected together, mapped back
        and merged by dlib's rule; images without regions whole."""
        whole = [i for i, p in enumerate(plans) if not p]
        scaled = {i: scale_for_detection(images[i], self.spec.detect_max_side) for i in whole}
        pieces = [
            (i, clip(r, images[i].shape[1], images[i].shape[0])) for i, p in enumerate(plans) for r in p
        ]

        def run(ims: list[np.ndarray], upsample: int, exact: bool = True) -> list[list[Box]]:
            return (
                split_on_oom(lambda xs: self.detector.detect(xs, upsample, exact), ims, splits) if ims else []
            )

        out: list[list[Box]] = [[] for _ in images]
        for i, bs in zip(whole, run([scaled[i][0] for i in whole], self.spec.upsample), strict=True):
            im = images[i]
            out[i] = [unscale_box(b, scaled[i][1], im.shape[1], im.shape[0]) for b in bs]
        # regions are scaled by OpenCV (bilinear up): dlib's own pyramid_up (our numpy port) would
        # cost ~50 ms per region, for boxes within IoU 0.6-0.95 of these
        found: dict[int, tuple[list[list[Face]], list[Region]]] = {}
        # (and their pyramids by OpenCV too: a plan's regions all differ in size, and dlib's exact
        # pyramid costs tables per new size: ~40 ms a round)
        for (i, r), bs in zip(pieces, run([cut(images[i], r) for i, r in pieces], 0, False), strict=True):
            fs, rs = found.setdefault(i, ([], []))
            fs.append([Face(b) for b in bs])
            rs.append(r)
        for i, (fs, rs) in found.items():
            out[i] = [f.box for f in merge(fs, rs, images[i].shape[1], images[i].shape[0])]
        return out

    def classify(
        self, images: Sequence[np.ndarray], boxes: Sequence[Sequence[Box]], splits: list[int] | None = None
    ) -> tuple[list[list[list[Label]]], dict[str, int], dict[str, str], list[list[np.ndarray | None]]]:
        """Labels per face per image; all faces of the batch go through each classifier at once.
        Also each face's identity (``Face.identity``: its descriptor, where the backbone ran).

        A classifier that fails leaves its label off these faces (the error is returned), so
        one broken model never costs the boxes or the other classifiers.
        """
        per_face: list[list[list[Label]]] = [[[] for _ in bs] for bs in boxes]
        who: list[list[np.ndarray | None]] = [[None for _ in bs] for bs in boxes]
        batches: dict[str, int] = {}
        errors: dict[str, str] = {}
        splits = splits if splits is not None else [0]
        n = sum(len(bs) for bs in boxes)
        if n == 0:
            return per_face, batches, errors, who
        features: dict[str, np.ndarray] | None = None
        backbone_error: str | None = None
        if self.backbone is not None and any(c.uses_backbone for c in self.classifiers):
            try:  # one backbone pass per face, shared by every classifier that takes its features
                features = self.face_features(images, boxes, splits)
            except Exception as e:
                log.error("face backbone failed on a batch of %d faces: %s", n, e)
                backbone_error = f"{type(e).__name__}: {e}"[:500]
        if features is not None:
            it = iter(features[IDENTITY])
            who = [[next(it) for _ in bs] for bs in boxes]
        for clf in self.classifiers:
            cond = self.conditions.get(clf.name)  # with a ``when``: only on the faces that meet it
            run_on = [cond is None or met(cond, labs) for labs_im in per_face for labs in labs_im]
            if not any(run_on):
                continue
            try:
                if clf.uses_backbone:
                    if features is None:
                        raise RuntimeError(f"no face features: {backbone_error}")
                    crops = list(np.concatenate([features[k] for k in clf.meta.features.split("+")], axis=1))
                else:
                    crops = [c for im, bs in zip(images, boxes, strict=True) for c in clf.crops(im, bs)]
                crops = [c for c, r in zip(crops, run_on, strict=True) if r]
                probs = split_on_oom(lambda xs, c=clf: list(c.predict_proba(np.stack(xs))), crops, splits)
                labels = clf.to_labels(np.asarray(probs))
            except Exception as e:
                log.error("classifier %s failed on a batch of %d faces: %s", clf.name, n, e)
                errors[clf.name] = f"{type(e).__name__}: {e}"[:500]
                continue
            batches[clf.name] = len(crops)
            it, on = iter(labels), iter(run_on)
            for k, bs in enumerate(boxes):
                for j in range(len(bs)):
                    if next(on):
                        per_face[k][j].append(next(it))
        return per_face, batches, errors, who

    def face_features(
        self, images: Sequence[np.ndarray], boxes: Sequence[Sequence[Box]], splits: list[int] | None = None
    ) -> dict[str, np.ndarray]:
        """The backbone's features of every face of the batch, in order: {name: (n_faces, D)}."""
        if self.backbone is None:
            raise RuntimeError("no face backbone loaded")
        bb = self.backbone
        chips = [c for im, bs in zip(images, boxes, strict=True) for c in bb.chips(im, bs)]
        wanted = [n for c in self.classifiers if c.uses_backbone for n in c.meta.features.split("+")]
        mirrored = needs_mirror(wanted)  # the mirrored pass only when a head takes "_flip" features
        names = list(FEATURES) + ([k + FLIP_SUFFIX for k in FEATURES] if mirrored else [])

        def run(xs: list[np.ndarray]) -> list[tuple[np.ndarray, ...]]:
            out = bb.features(np.stack(xs), mirrored=mirrored)
            return list(zip(*(out[k] for k in names), strict=True))

        rows = split_on_oom(
            run,
            chips,
            splits if splits is not None else [0],
        )
        return {k: np.stack([r[i] for r in rows]) for i, k in enumerate(names)}


def _overlaps(b: Box, others: Sequence[Box], min_iou: float = 0.5) -> bool:
    for o in others:
        iw = min(b.right, o.right) - max(b.left, o.left) + 1
        ih = min(b.bottom, o.bottom) - max(b.top, o.top) + 1
        if iw > 0 and ih > 0:
            inter = iw * ih
            if inter / (b.width * b.height + o.width * o.height - inter) >= min_iou:
                return True
    return False


def check_classifier_config(c: ClassifierConfig, clf: Classifier) -> None:
    if c.labels is not None and tuple(c.labels) != clf.labels:
        raise ValueError(f"config labels {c.labels} differ from the model file's {list(clf.labels)}")
    if c.input_size is not None and tuple(c.input_size) != clf.meta.input_size:
        raise ValueError(f"config input_size {c.input_size} differs from the model's {clf.meta.input_size}")


def _limit_threads(n: int) -> None:
    from streamer.quiet import limit_tensorflow_threads

    cv2.setNumThreads(n)
    limit_tensorflow_threads(n)
