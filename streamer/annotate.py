"""Offline: the service's detection, classification and overlay over one image or video file."""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import cv2
import numpy as np

from streamer.config import Config
from streamer.inference.engine import Engine, engine_spec
from streamer.pipeline.tracking import FaceStage
from streamer.track.evidence import EvidenceRule
from streamer.track.tracker import TrackerRule
from streamer.types import Detections, Frame

log = logging.getLogger(__name__)
# a still image is one look: every detected face shows, with its one classification
STILL = TrackerRule(confirm_hits=1, evidence=EvidenceRule(min_looks=1))
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


def build_engine(config: Config) -> Engine:
    return Engine(engine_spec(config))


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
            frames = iter([cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)])
            return 0 if run_stage(engine, frames, _ImageOut(dst), out_jsonl, 1, 1, 0.0, STILL) else 1
        cap = cv2.VideoCapture(src)
        if not cap.isOpened():
            print(f"streamer annotate: {src}: not a readable video", file=sys.stderr)
            return 1
        fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
        try:
            n = run_stage(engine, _read(cap), _VideoOut(dst, fps), out_jsonl, max(1, every), max_frames, fps)
        finally:
            cap.release()
        if n == 0:
            print(f"streamer annotate: {src}: no decodable frames", file=sys.stderr)
            return 1
        return 0
    finally:
        if out_jsonl:
            out_jsonl.close()


def _read(cap: cv2.VideoCapture) -> Iterator[np.ndarray]:
    while True:
        ok, bgr = cap.read()
        if not ok:
            return
        yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


class _ImageOut:
    def __init__(self, dst: str) -> None:
        self.dst = dst

    def write(self, rgb: np.ndarray) -> None:
        cv2.imwrite(self.dst, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))

    def close(self) -> None:
        pass


class _VideoOut:
    def __init__(self, dst: str, fps: float) -> None:
        self.dst, self.fps = dst, fps
        self.writer: cv2.VideoWriter | None = None

    def write(self, rgb: np.ndarray) -> None:
        if self.writer is None:
            fourcc = cv2.VideoWriter_fourcc(*("MJPG" if self.dst.lower().endswith(".avi") else "mp4v"))
            self.writer = cv2.VideoWriter(self.dst, fourcc, self.fps, (rgb.shape[1], rgb.shape[0]))
        self.writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))

    def close(self) -> None:
        if self.writer is not None:
            self.writer.release()


def run_stage(
    engine: Engine,
    frames: Iterable[np.ndarray],
    out,
    out_jsonl,
    every: int,
    max_frames: int,
    fps: float,
    rule: TrackerRule | None = None,
) -> int:
    """The live streams' face stage over a sequence of frames, the detector run in-process when due.

    Returns the number of frames written. ``fps`` 0: a still image (no ``time_s`` in the JSON lines).
    """
    stage = FaceStage("annotate", every, rule=rule)
    n = 0
    t0 = time.perf_counter()
    try:
        for rgb in frames:
            frame = Frame("annotate", n, rgb, n / fps if fps else 0.0)
            if stage.due(n):
                (res,), _ = engine.run([rgb], [stage.skip_boxes()])
                stage.on_detections(Detections(frame.stream, n, frame.captured_at, res.faces))
            done = stage.process(frame)
            out.write(done.image)
            if out_jsonl:
                line: dict[str, object] = {"frame": n}
                if fps:
                    line["time_s"] = round(n / fps, 3)
                line["faces"] = [f.as_dict() for f in done.faces]
                out_jsonl.write(json.dumps(line) + "\n")
            n += 1
            if max_frames and n >= max_frames:
                break
    finally:
        out.close()
    tr = stage.tracker
    log.info(
        "annotated %d frames in %.1f s: %d detections, %d tracks, %d faces classified, %d not (settled)",
        n,
        time.perf_counter() - t0,
        stage.detections_due,
        tr.started,
        tr.looks,
        tr.looks_skipped,
    )
    return n
