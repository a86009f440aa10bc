"""The service's detection, tracking, classification and overlay over image or video files.

Offline (``annotate_file``): every frame (or every Nth) detected in-process, at full cost.
Live (``annotate_realtime``, ``--realtime``): files played at their own frame rate through the
live pipeline (the service's streams, batcher and workers): detection as often as the machine
allows, tracks in between; every frame published is written, exactly what a viewer saw.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import queue
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np

from streamer.config import Config, SourceConfig
from streamer.inference.engine import Engine, engine_spec
from streamer.metrics import Metrics
from streamer.outputs.hub import AnnotatedFrame
from streamer.pipeline.manager import Pipeline
from streamer.pipeline.planner import RegionPlanner, planner_for
from streamer.pipeline.tracking import BetweenLooks, FaceStage, between_for, rule_for
from streamer.sources.base import SourceState
from streamer.sources.capture import frame_rate
from streamer.track.evidence import EvidenceRule
from streamer.track.tracker import TrackerRule
from streamer.types import Detections, Face, Frame

log = logging.getLogger(__name__)
# a still image is one look: every detected face shows, with its one classification
STILL = TrackerRule(confirm_hits=1, evidence=EvidenceRule(min_looks=1))
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


def unwritable(path: str) -> str | None:
    """Why ``path`` (an output file) cannot be written, or None (``os.devnull`` is writable)."""
    if path == os.devnull:
        return None
    folder = Path(path).expanduser().resolve().parent
    if not folder.is_dir():
        return f"no such folder {folder}"
    if not os.access(folder, os.W_OK):
        return f"folder {folder} is not writable"
    return None


def build_engine(config: Config) -> Engine:
    return Engine(engine_spec(config))


def annotate_file(
    config: Config, src: str, dst: str, detections_path: str | None, every: int = 1, max_frames: int = 0
) -> int:
    if not Path(src).is_file():
        print(f"streamer annotate: {src}: no such file", file=sys.stderr)
        return 1
    engine = build_engine(config)
    planner = planner_for(config.pipeline)
    out_jsonl = open(detections_path, "w") if detections_path else None  # noqa: SIM115
    try:
        if Path(src).suffix.lower() in IMAGE_SUFFIXES:
            bgr = cv2.imread(src)
            if bgr is None:
                print(f"streamer annotate: {src}: not a readable image", file=sys.stderr)
                return 1
            frames = iter([cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)])
            image_out = _ImageOut(dst)
            done = run_stage(engine, frames, image_out, out_jsonl, 1, 1, 0.0, STILL, planner)
            return 0 if done and not image_out.failed() else 1
        cap = cv2.VideoCapture(src)
        if not cap.isOpened():
            print(f"streamer annotate: {src}: not a readable video", file=sys.stderr)
            return 1
        fps = frame_rate(cap)
        try:
            out = _VideoOut(dst, fps)
            n = run_stage(
                engine,
                _read(cap),
                out,
                out_jsonl,
                max(1, every),
                max_frames,
                fps,
                rule_for(config.pipeline, config.classifiers),
                planner,
                between_for(config.pipeline),
            )
        finally:
            cap.release()
        if n == 0:
            print(f"streamer annotate: {src}: no decodable frames", file=sys.stderr)
            return 1
        return 1 if out.failed() else 0
    finally:
        if out_jsonl:
            out_jsonl.close()


def frame_line(n: int, time_s: float | None, faces: Iterable[Face]) -> dict[str, object]:
    """One ``--detections`` JSON line."""
    line: dict[str, object] = {"frame": n}
    if time_s is not None:
        line["time_s"] = round(time_s, 3)
    line["faces"] = [f.as_dict() for f in faces]
    return line


def _read(cap: cv2.VideoCapture) -> Iterator[np.ndarray]:
    while True:
        ok, bgr = cap.read()
        if not ok:
            return
        yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _nothing_written(dst: str, written: bool, why: str) -> bool:
    """Whether an output could not be written to ``dst`` (said on stderr); /dev/null is no failure."""
    bad = not written and dst != os.devnull
    if bad:
        print(f"streamer annotate: {dst}: {why}", file=sys.stderr)
    return bad


class _ImageOut:
    def __init__(self, dst: str) -> None:
        self.dst = dst
        self.written = False

    def write(self, rgb: np.ndarray) -> None:
        try:
            self.written = bool(cv2.imwrite(self.dst, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)))
        except cv2.error:  # (an extension OpenCV writes no image for)
            self.written = False

    def close(self) -> None:
        pass

    def failed(self) -> bool:
        return _nothing_written(self.dst, self.written, "no image written (use .jpg or .png)")


class _VideoOut:
    def __init__(self, dst: str, fps: float) -> None:
        self.dst, self.fps = dst, fps
        self.writer: cv2.VideoWriter | None = None
        self.unopened = False  # (the writer could not open dst)

    def write(self, rgb: np.ndarray) -> None:
        if self.writer is None:
            fourcc = cv2.VideoWriter_fourcc(*("MJPG" if self.dst.lower().endswith(".avi") else "mp4v"))
            self.writer = cv2.VideoWriter(self.dst, fourcc, self.fps, (rgb.shape[1], rgb.shape[0]))
            self.unopened = not self.writer.isOpened()
        if self.writer.isOpened():  # (one that could not open, as on /dev/null, writes nothing)
            self.writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))

    def close(self) -> None:
        if self.writer is not None:
            self.writer.release()

    def failed(self) -> bool:
        return _nothing_written(self.dst, not self.unopened, "no video written (use .mp4 or .avi)")


def run_stage(
    engine: Engine,
    frames: Iterable[np.ndarray],
    out,
    out_jsonl,
    every: int,
    max_frames: int,
    fps: float,
    rule: TrackerRule | None = None,
    planner: RegionPlanner | None = None,
    between: BetweenLooks | None = None,
) -> int:
    """The live streams' face stage over a sequence of frames, the detector run in-process when due.

    Returns the number of frames written. ``fps`` 0: a still image (no ``time_s`` in the JSON
    lines), looked at whole: with a planner, its full sweep (every part at every scale).
    """
    still = not fps
    stage = FaceStage("annotate", every, rule=rule, planner=planner, between=between)
    n = 0
    t0 = time.perf_counter()
    try:
        for rgb in frames:
            frame = Frame("annotate", n, rgb, n / fps if fps else 0.0)
            due = stage.due(n)
            regions = stage.prepare(frame, due)
            if due and still and planner is not None:  # one look at a photo: all of it
                regions = (planner.still(rgb.shape[1], rgb.shape[0]),)
            if due:
                (res,), _ = engine.run([rgb], [stage.skip_boxes()], [regions])
                stage.on_detections(Detections(frame.stream, n, frame.captured_at, res.faces, regions))
            done = stage.finish(frame)
            out.write(done.image)
            if out_jsonl:
                out_jsonl.write(json.dumps(frame_line(n, n / fps if fps else None, done.faces)) + "\n")
            n += 1
            if max_frames and n >= max_frames:
                break
    finally:
        out.close()
    tr = stage.tracker
    log.info(
        "annotated %d frames in %.1f s: %d detections (%d of them looks between rounds), %d tracks, "
        "%d faces classified, %d not (settled)",
        n,
        time.perf_counter() - t0,
        stage.detections_due,
        stage.looks_between,
        tr.started,
        tr.looks,
        tr.looks_skipped,
    )
    return n


def annotate_realtime(
    config: Config,
    jobs: Sequence[tuple[str, str, str | None]],
    max_s: float = 0.0,
    metrics: Metrics | None = None,
    max_frames: int = 0,
) -> int:
    """Play each (src, dst, detections) file at its own frame rate as one live stream of a service
    (all of them at once, sharing its batcher and workers) and record every frame published.

    ``max_s``: stop after this many seconds (0: when every file has ended); ``max_frames``: after
    as long as the first file takes to play that many frames. ``metrics``: the live pipeline's
    metrics (to read while it runs)."""
    for src, _, _ in jobs:
        if not Path(src).is_file():
            print(f"streamer annotate: {src}: no such file", file=sys.stderr)
            return 1
    if max_frames:
        cap = cv2.VideoCapture(jobs[0][0])
        fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
        cap.release()
        max_s = min(max_s or float("inf"), max_frames / fps)
    return asyncio.run(_realtime(config, jobs, max_s, metrics or Metrics()))


async def _realtime(
    config: Config, jobs: Sequence[tuple[str, str, str | None]], max_s: float, metrics: Metrics
) -> int:
    live = config.model_copy(
        update={"sources": [], "demo": config.demo.model_copy(update={"enabled": False})}
    )
    manager = Pipeline(live, metrics)
    await manager.start()
    recorders: list[_Recorder] = []
    try:
        streams = []
        for k, (src, dst, detections) in enumerate(jobs):
            stream = await manager.add_source(
                SourceConfig(id=f"file{k}", file=src, loop=False, realtime=True)
            )
            rec = _Recorder(dst, detections, stream.source.state)
            stream.hub.taps.append(rec.put)
            if dst != os.devnull:  # the recording shows the drawn frames
                stream.hub.image_taps += 1
            recorders.append(rec)
            streams.append(stream)
        tasks = [s.task for s in streams if s.task is not None]
        await asyncio.wait(tasks, timeout=max_s or None)
        errors = [
            s.source.state.error or f"{src}: no frame played"
            for s, (src, _, _) in zip(streams, jobs, strict=True)
            if s.source.state.frames == 0
        ]
        for e in errors:
            print(f"streamer annotate: {e}", file=sys.stderr)
    finally:
        await manager.close()
        for rec in recorders:
            rec.close()  # (the frames still queued are written first)
    log.info(
        "realtime: %s frames written; %d detection batches",
        ", ".join(str(r.written) for r in recorders),  # (one count a file)
        manager.batcher.batches,
    )
    unwritten = [rec for rec in recorders if rec.video.failed()]
    return 1 if errors or unwritten else 0


class _Recorder:
    """Writes a live stream's published frames (video and JSON lines) in its own thread."""

    def __init__(self, dst: str, detections: str | None, source: SourceState) -> None:
        self.source = source  # its frame rate is known once the file is open, before any frame
        self.video = _VideoOut(dst, 0.0)
        self.jsonl = open(detections, "w") if detections else None  # noqa: SIM115
        self.queue: queue.Queue[AnnotatedFrame | None] = queue.Queue()
        self.written = 0
        self.t0: float | None = None
        self.thread = threading.Thread(target=self._run, name=f"record-{dst}", daemon=True)
        self.thread.start()

    def put(self, item: AnnotatedFrame) -> None:
        self.queue.put(item)

    def _run(self) -> None:
        while (item := self.queue.get()) is not None:
            f = item.frame
            if self.t0 is None:
                self.t0 = f.captured_at
                self.video.fps = self.source.fps or 30.0
            self.video.write(item.image)
            if self.jsonl:
                faces = item.detections.faces if item.detections else ()
                self.jsonl.write(json.dumps(frame_line(f.index, f.captured_at - self.t0, faces)) + "\n")
            self.written += 1

    def close(self) -> None:
        self.queue.put(None)
        self.thread.join()
        self.video.close()
        if self.jsonl:
            self.jsonl.close()
