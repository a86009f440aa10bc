"""Offline: the service's detection, classification and overlay over one image or video file."""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path

import cv2

from streamer.config import Config
from streamer.inference.engine import Engine, EngineSpec
from streamer.metrics import Metrics
from streamer.overlay import draw_faces
from streamer.pipeline.manager import usable_classifiers

log = logging.getLogger(__name__)
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


def build_engine(config: Config) -> Engine:
    p = config.pipeline
    return Engine(
        EngineSpec(
            p.detector,
            p.upsample,
            p.detect_max_side,
            tuple(usable_classifiers(config.classifiers, Metrics())),
            runtime=p.runtime,
        )
    )


def annotate_file(
    config: Config, src: str, dst: str, detections_path: str | None, every: int = 1, max_frames: int = 0
) -> int:
    if not Path(src).is_file():
        print(f"streamer annotate: {src}: no such file", file=sys.stderr)
        return 1
    engine = build_engine(config)
    out_jsonl = open(detections_path, "w") if detections_path else None  # noqa: SIM115
    try:
        if Path(src).suffix.lower() in IMAGE_SUFFIXES:
            bgr = cv2.imread(src)
            if bgr is None:
                print(f"streamer annotate: {src}: not a readable image", file=sys.stderr)
                return 1
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            (res,), _ = engine.run([rgb])
            cv2.imwrite(dst, cv2.cvtColor(draw_faces(rgb, res.faces), cv2.COLOR_RGB2BGR))
            if out_jsonl:
                out_jsonl.write(json.dumps({"frame": 0, "faces": [f.as_dict() for f in res.faces]}) + "\n")
            return 0
        return _annotate_video(engine, src, dst, out_jsonl, max(1, every), max_frames)
    finally:
        if out_jsonl:
            out_jsonl.close()


def _annotate_video(engine: Engine, src: str, dst: str, out_jsonl, every: int, max_frames: int) -> int:
    cap = cv2.VideoCapture(src)
    if not cap.isOpened():
        print(f"streamer annotate: {src}: not a readable video", file=sys.stderr)
        return 1
    fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
    writer = None
    faces: tuple = ()
    n = 0
    t0 = time.perf_counter()
    try:
        while True:
            ok, bgr = cap.read()
            if not ok:
                break
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            if n % every == 0:
                (res,), _ = engine.run([rgb])
                faces = res.faces
            if writer is None:
                fourcc = cv2.VideoWriter_fourcc(*("MJPG" if dst.lower().endswith(".avi") else "mp4v"))
                writer = cv2.VideoWriter(dst, fourcc, fps, (rgb.shape[1], rgb.shape[0]))
            writer.write(cv2.cvtColor(draw_faces(rgb, faces), cv2.COLOR_RGB2BGR))
            if out_jsonl:
                out_jsonl.write(
                    json.dumps(
                        {"frame": n, "time_s": round(n / fps, 3), "faces": [f.as_dict() for f in faces]}
                    )
                    + "\n"
                )
            n += 1
            if max_frames and n >= max_frames:
                break
    finally:
        cap.release()
        if writer is not None:
            writer.release()
    if n == 0:
        print(f"streamer annotate: {src}: no decodable frames", file=sys.stderr)
        return 1
    log.info("annotated %d frames in %.1f s -> %s", n, time.perf_counter() - t0, dst)
    return 0
