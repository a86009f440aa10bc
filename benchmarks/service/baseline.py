"""Service part ``baseline``: the tutorial-style sequential loop against the streamer service,
same models and video.

Two loops when the service runs the MMOD port: the tutorial's own (dlib-bin's detector, the
issue's baseline) and the same loop with the port, which separates what the architecture
gains from what the faster detector gains.

The loop: read a frame, detect with the detector, classify each face one at a time
with each classifier, draw, "show" (JPEG-encode: there is no display here). Its
source is a virtual live camera paced at the file's frame rate: when the loop asks
for a frame it gets the newest one (capture time = start + index / fps); the
frames that went by meanwhile are dropped, as with a real camera. Latency is
capture to shown.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import cv2
import numpy as np

from benchmarks.clips.video import video_fps
from benchmarks.report import percentiles, progress
from benchmarks.service import harness
from benchmarks.service.options import Options, classifier_configs
from streamer.classify import Classifier
from streamer.classify.backbone import FaceBackbone
from streamer.classify.face_resnet import needs_mirror
from streamer.detect import make_detector
from streamer.outputs.mjpeg import encode_jpeg
from streamer.overlay import draw_faces
from streamer.types import Face


def sequential_loop(opts: Options, seconds: float, detector_name: str | None = None) -> dict[str, Any]:
    detector_name = detector_name or opts.detector
    detector = make_detector(detector_name)
    classifiers = [Classifier(c.name, c.model, c.threshold) for c in classifier_configs(opts)]
    backbone = FaceBackbone() if any(c.uses_backbone for c in classifiers) else None

    def inputs(clf: Classifier, rgb: Any, boxes: list[Any]) -> Any:
        """The classifier's input for these faces: pixel crops, or (for a head on the face
        backbone) the backbone's features, computed for this classifier alone, as a sequential
        loop of separate models would."""
        if not clf.uses_backbone:
            return clf.crops(rgb, boxes)
        assert backbone is not None
        if not boxes:
            return []
        out = backbone.features(
            np.stack(backbone.chips(rgb, boxes)), mirrored=needs_mirror(clf.meta.features)
        )
        return np.concatenate([out[k] for k in clf.meta.features.split("+")], axis=1)

    fps = video_fps(opts.video)
    cap = cv2.VideoCapture(str(opts.video))
    ok, bgr = cap.read()  # warm the models on the first frame
    faces_warm = detector.detect([bgr[:, :, ::-1].copy()])
    for clf in classifiers:
        warm = inputs(clf, bgr[:, :, ::-1].copy(), faces_warm[0][:1])
        if len(warm):
            clf.predict_proba(warm)
    pos, shown, lat, n_faces = 1, 0, [], 0
    t0 = time.time()
    while time.time() - t0 < seconds:
        newest = int((time.time() - t0) * fps) + 1  # frames the camera has produced so far
        while pos < newest:  # skip to the newest frame (frames that went by are dropped)
            ok = cap.grab()
            if not ok:
                cap.release()
                cap = cv2.VideoCapture(str(opts.video))
                ok = cap.grab()
            pos += 1
        captured = t0 + (pos - 1) / fps
        ok, bgr = cap.retrieve()
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        boxes = detector.detect([rgb])[0]
        faces = []
        for b in boxes:
            labels = []
            for clf in classifiers:  # one face, one classifier at a time
                labels.append(clf.to_labels(clf.predict_proba(inputs(clf, rgb, [b])))[0])
            faces.append(Face(b, tuple(labels)))
        encode_jpeg(draw_faces(rgb, faces), 80)  # "show"
        lat.append(time.time() - captured)
        shown += 1
        n_faces += len(faces)
        progress(
            f"baseline ({detector_name}): {shown} frames shown in {time.time() - t0:.0f}/{seconds:.0f} s",
            end="\r",
        )
    dt = time.time() - t0
    produced = int(dt * fps)
    progress(f"baseline ({detector_name}): {shown} frames shown in {dt:.0f} s")
    return {
        "detector": detector_name,
        "seconds": round(dt, 2),
        "input_fps": round(fps, 2),
        "output_fps": round(shown / dt, 3),
        "drop_rate": round(1.0 - shown / max(1, produced), 4),
        "detections_per_s": round(shown / dt, 3),
        "faces": n_faces,
        "latency_s": percentiles(lat),
        "latency_samples": [round(x, 4) for x in lat],
        "frames_measured": shown,
    }


def _ratio(service: dict[str, Any], loop: dict[str, Any]) -> float | None:
    return round(service["output_fps"] / loop["output_fps"], 1) if loop["output_fps"] else None


def run(opts: Options) -> dict[str, Any]:
    seconds = max(3.0, 1.5 * opts.seconds) if opts.quick else max(20.0, opts.seconds)
    progress(f"baseline: sequential loop for {seconds:.0f} s ({opts.detector})")
    base = sequential_loop(opts, seconds)
    tutorial = None
    if opts.detector != "dlib":
        progress(f"baseline: the tutorial's loop, dlib-bin's detector, for {seconds:.0f} s")
        tutorial = sequential_loop(opts, seconds, "dlib")
    progress("baseline: the service on the same video")
    svc = asyncio.run(harness.run_options(opts))
    return {
        "detector": opts.detector,
        "video": opts.video.name,
        "baseline": base,
        "tutorial": tutorial,  # None when the service itself runs dlib-bin: then it is `baseline`
        "service": svc,
        "output_fps_ratio": _ratio(svc, base),
        "tutorial_output_fps_ratio": _ratio(svc, tutorial or base),
        "p95_latency_ratio": (
            round(base["latency_s"]["p95"] / svc["latency_s"]["p95"], 2)
            if svc["latency_s"]["p95"] and base["latency_s"]["p95"]
            else None
        ),
    }
