"""The harness of the service scenario: the real service on videos paced at their frame rate,
watched over MJPEG.

Measures what a viewer gets: input FPS (frames the source decoded), output FPS
(frames the viewer received), capture-to-receive latency per frame (from each
MJPEG part's X-Capture-Time), detections per second and the age of the boxes.
``Service``: start the real app, add paced file streams, measure a window; ``run``: the
service alone on one video (the ``live`` part, and the service side of ``baseline``).
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from aiohttp import ClientSession, web

from benchmarks.processes import cpu_s, free_port
from benchmarks.report import percentiles, progress
from benchmarks.scoring import BoxScore, score_looped
from benchmarks.service.options import Options, classifier_configs
from streamer.config import ClassifierConfig, SourceConfig, load_config
from streamer.outputs.hub import FrameHub
from streamer.types import Box
from streamer.web.app import METRICS, PIPELINE, create_app


def _sample(app: web.Application, name: str, **labels: str) -> float:
    v = app[METRICS].registry.get_sample_value(name, labels)
    return float(v or 0.0)


def _ages(app: web.Application) -> dict[str, float]:
    """``streamer_detection_age_seconds`` of every stream, from that gauge alone: a registry lookup
    per stream collects every metric (and /proc for the process collector) each time, which at
    16 streams sampled 4 times a second took a fifth of a core from the service it measures."""
    return {
        s.labels["stream"]: s.value
        for m in app[METRICS].detection_age.collect()
        for s in m.samples
        if "stream" in s.labels
    }


async def _watch_mjpeg(url: str, samples: list[tuple[float, float]]) -> None:
    """Read the MJPEG stream; record (receive time, capture time) per frame."""
    async with ClientSession() as s, s.get(url) as r:
        captured, n = 0.0, None
        while True:
            line = await r.content.readline()
            if not line:
                return
            if line.startswith(b"X-Capture-Time:"):
                captured = float(line.split(b":", 1)[1])
            elif line.startswith(b"Content-Length:"):
                n = int(line.split(b":", 1)[1])
            elif line == b"\r\n" and n is not None:
                await r.content.readexactly(n + 2)
                samples.append((time.time(), captured))
                n = None


async def _record_boxes(
    hub: FrameHub, out: list[tuple[int, tuple[Box, ...]]], recording: Callable[[], bool]
) -> None:
    """(frame index, boxes drawn) of each annotated frame the stream publishes, while recording.

    Only references are kept here; scoring waits until the window is over, off the event loop's
    busy time."""
    sub = hub.subscribe()
    while (item := await sub.next()) is not None:
        if recording():
            d = item.detections
            out.append((item.frame.index, tuple(f.box for f in d.faces) if d is not None else ()))


class Service:
    """The real app on a loopback port, with paced file streams each watched by an MJPEG client."""

    def __init__(
        self,
        detector: str = "mmod",
        max_batch: int = 4,
        workers: int = 1,
        classifiers: list[ClassifierConfig] | None = None,
        worker_nice: int = 10,
        strategy: str = "regions",
        sync_output: str = "off",
        pipeline: dict[str, Any] | None = None,
    ) -> None:
        # sync_output off by default: these parts measure how fast the service processes and sends a
        # frame; sync_output's hold is a delay chosen on top (`benchmarks real` reports it)
        self.config = load_config(
            None,
            {
                "pipeline": {
                    "detector": detector,
                    "max_batch": max_batch,
                    "workers": workers,
                    "worker_nice": worker_nice,
                    "strategy": strategy,
                    "sync_output": sync_output,
                    **(pipeline or {}),  # (any other [pipeline] setting a part compares)
                },
                "classifiers": [c.model_dump() for c in classifiers or []],
                "demo": {"enabled": False},
                "output": {"mjpeg_max_fps": 240.0},
                # the sweep finds where the machine stops keeping up, not where the default limit is
                "server": {"max_streams": 1024, "max_peers": 1024},
            },
            environ={},
        )
        self.app = create_app(self.config)
        self.runner = web.AppRunner(self.app)
        self.port = 0
        self.samples: dict[str, list[tuple[float, float]]] = {}
        self._watchers: list[asyncio.Task[None]] = []
        # streams whose video has known true boxes: the boxes drawn on them, recorded while measuring
        self.truth: dict[str, Sequence[Sequence[Box]]] = {}
        self.drawn: dict[str, list[tuple[int, tuple[Box, ...]]]] = {}
        self._recording = False

    async def __aenter__(self) -> Service:
        await self.runner.setup()  # starts the worker and loads the models
        self.port = free_port()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        for t in self._watchers:
            t.cancel()
        await asyncio.gather(*self._watchers, return_exceptions=True)
        await self.runner.cleanup()

    async def add_streams(
        self, video: Path, n: int, prefix: str = "s", truth: Sequence[Sequence[Box]] | None = None
    ) -> list[str]:
        """``truth``: the true boxes of each frame of ``video`` (played in a loop) to score the drawn
        boxes against."""
        ids = []
        for _ in range(n):
            self._count = getattr(self, "_count", 0) + 1
            sid = f"{prefix}{self._count}"
            await self.app[PIPELINE].add_source(
                SourceConfig(id=sid, file=str(video), loop=True, realtime=True)
            )
            self.samples[sid] = []
            url = f"http://127.0.0.1:{self.port}/streams/{sid}/mjpeg"
            self._watchers.append(asyncio.create_task(_watch_mjpeg(url, self.samples[sid])))
            if truth is not None:
                self.truth[sid], self.drawn[sid] = truth, []
                hub = self.app[PIPELINE].streams[sid].hub
                rec = asyncio.create_task(_record_boxes(hub, self.drawn[sid], lambda: self._recording))
                self._watchers.append(rec)
            ids.append(sid)
        return ids

    async def remove_all(self) -> None:
        for t in self._watchers:
            t.cancel()
        await asyncio.gather(*self._watchers, return_exceptions=True)
        self._watchers.clear()
        for sid in list(self.samples):
            await self.app[PIPELINE].remove(sid)
        self.samples.clear()
        self.truth.clear()
        self.drawn.clear()

    def set_max_batch(self, n: int) -> None:
        self.app[PIPELINE].batcher.max_batch = n

    async def wait_detections(self, timeout: float = 120.0, strict: bool = True) -> bool:
        """Until every stream has had a frame through the detector (models warm, caches full).

        Not strict: give up quietly after ``timeout`` (many streams on a slow detector)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(_sample(self.app, "streamer_detections_total", stream=s) > 0 for s in self.samples):
                return True
            await asyncio.sleep(0.2)
        if strict:
            raise TimeoutError(f"no detections after {timeout:.0f}s")
        progress(f"not every stream had a detection after {timeout:.0f} s; measuring anyway")
        return False

    def _snap(self, sid: str) -> dict[str, float]:
        a = self.app
        return {
            "in": _sample(a, "streamer_frames_in_total", stream=sid),
            "overrun": _sample(a, "streamer_frames_dropped_total", stream=sid, reason="source_overrun"),
            "out": _sample(a, "streamer_frames_out_total", stream=sid),
            "det": _sample(a, "streamer_detections_total", stream=sid),
            "recv": float(len(self.samples[sid])),
        }

    def _stage(self, stage: str) -> tuple[float, float]:
        a = self.app
        return (
            _sample(a, "streamer_stage_seconds_sum", stage=stage),
            _sample(a, "streamer_stage_seconds_count", stage=stage),
        )

    async def measure(self, seconds: float, label: str = "measuring") -> dict[str, Any]:
        """Every figure over one window of ``seconds``, per stream and over all streams."""
        ids = list(self.samples)
        stages = ("detect", "classify", "track", "overlay", "encode")
        a = {s: self._snap(s) for s in ids}
        st_a = {s: self._stage(s) for s in stages}
        workers = self.app[PIPELINE].pool.worker_pids()
        cpu_a = (time.process_time(), sum(cpu_s(p) for p in workers))
        for v in self.drawn.values():
            v.clear()
        self._recording = True
        t0, w0 = time.monotonic(), time.time()
        steps = max(1, round(seconds * 4))
        ages: list[float] = []  # age of the boxes drawn on the newest frame, sampled 4 times a second
        for i in range(steps):
            await asyncio.sleep(seconds / steps)
            now = _ages(self.app)
            ages += [now.get(s, 0.0) for s in ids]
            got = sum(len(v) for v in self.samples.values())
            if (i + 1) % 4 == 0 or i + 1 == steps:
                progress(
                    f"{label}: {(i + 1) * seconds / steps:.1f}/{seconds:.0f} s, {got} frames received",
                    end="\r",
                )
        print(file=sys.stderr)
        self._recording = False
        b = {s: self._snap(s) for s in ids}
        st_b = {s: self._stage(s) for s in stages}
        dt, w1 = time.monotonic() - t0, time.time()
        cpu_b = (time.process_time(), sum(cpu_s(p) for p in workers))
        per: list[dict[str, float]] = []
        lat: list[float] = []
        for s in ids:
            d = {k: b[s][k] - a[s][k] for k in a[s]}
            produced = d["in"] + d["overrun"]
            per.append(
                {
                    "input_fps": produced / dt,
                    "output_fps": d["recv"] / dt,
                    "drop_rate": max(0.0, 1.0 - d["recv"] / produced) if produced else 1.0,
                    "detections_per_s": d["det"] / dt,
                }
            )
            lat += [r - c for r, c in self.samples[s] if w0 <= r <= w1]
        n = len(ids)
        boxes = self._box_accuracy()
        stage_ms = {}
        for s in stages:
            cnt = st_b[s][1] - st_a[s][1]
            stage_ms[s] = round(1000 * (st_b[s][0] - st_a[s][0]) / cnt, 2) if cnt else None
        return {
            "streams": n,
            "seconds": round(dt, 2),
            "input_fps": round(sum(p["input_fps"] for p in per) / n, 2),
            "output_fps": round(sum(p["output_fps"] for p in per) / n, 2),
            "output_fps_min": round(min(p["output_fps"] for p in per), 2),
            "output_fps_total": round(sum(p["output_fps"] for p in per), 2),
            "drop_rate": round(sum(p["drop_rate"] for p in per) / n, 4),
            "detections_per_s": round(sum(p["detections_per_s"] for p in per) / n, 3),
            "latency_s": percentiles(lat),
            "latency_samples": [round(x, 4) for x in lat],
            "frames_measured": len(lat),
            "output_vs_input": round(
                sum(p["output_fps"] for p in per) / max(1e-9, sum(p["input_fps"] for p in per)), 3
            ),
            "detections_per_s_min": round(min(p["detections_per_s"] for p in per), 3),
            **boxes,
            "detection_age_s": percentiles(ages),
            "detection_age_samples": [round(x, 3) for x in ages],
            "stage_ms_per_call": stage_ms,
            # 100 = one core busy: the service process (event loop, sources, render threads, and the
            # benchmark's own MJPEG clients) and the inference workers
            "cpu_service_pct": round(100 * (cpu_b[0] - cpu_a[0]) / dt, 1),
            "cpu_workers_pct": round(100 * (cpu_b[1] - cpu_a[1]) / dt, 1),
        }

    def _box_accuracy(self) -> dict[str, Any]:
        """Recall and mean IoU of the boxes drawn against the truth, over the streams that have one
        (all together, and the worst stream's recall); empty when none has."""
        scored = {s: score_looped(self.drawn[s], self.truth[s]) for s in self.drawn}
        if not scored:
            return {}
        total = BoxScore()
        for sc in scored.values():
            total.merge(sc)
        worst = [sc.as_dict()["box_recall"] for sc in scored.values() if sc.true_faces]
        return {**total.as_dict(), "box_recall_min": min(worst) if worst else None}


def realtime(r: dict[str, Any], fps: float, p95_limit: float = 0.5) -> bool:
    """Keeps real time: >= 95% of the source frame rate out, and p95 latency under the limit."""
    p95 = r["latency_s"]["p95"]
    return r["output_fps_min"] >= 0.95 * fps and p95 is not None and p95 <= p95_limit


async def run_options(
    opts: Options,
    streams: int = 1,
    classifiers: list[ClassifierConfig] | None = None,
    pipeline: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """``run`` with the service scenario's options: ``streams`` copies of ``opts.video``, with
    ``classifiers`` (default: config.toml's) and any other ``pipeline`` settings."""
    return await run(
        opts.seconds,
        opts.warmup,
        opts.detector,
        opts.video,
        opts.max_batch,
        streams,
        opts.workers,
        classifier_configs(opts) if classifiers is None else classifiers,
        opts.worker_nice,
        opts.sync_output,
        opts.strategy,
        pipeline,
    )


async def run(
    seconds: float,
    warmup: float,
    detector: str,
    video: Path,
    max_batch: int,
    streams: int = 1,
    workers: int = 1,
    classifiers: list[ClassifierConfig] | None = None,
    worker_nice: int = 10,
    sync_output: str = "off",
    strategy: str = "regions",
    pipeline: dict[str, Any] | None = None,
) -> dict[str, Any]:
    async with Service(
        detector, max_batch, workers, classifiers, worker_nice, strategy, sync_output, pipeline
    ) as svc:
        await svc.add_streams(video, streams)
        progress("waiting for the first detections ...")
        await svc.wait_detections()
        await asyncio.sleep(warmup)
        r = await svc.measure(seconds)
    return {
        "detector": detector,
        "video": video.name,
        "max_batch": max_batch,
        "workers": workers,
        "worker_nice": worker_nice,
        **r,
    }
