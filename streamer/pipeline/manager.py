"""The running pipeline: worker pool, detection batcher, render threads and the streams."""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor

from streamer.config import Config, PipelineConfig, SourceConfig
from streamer.history.service import History
from streamer.inference.engine import EngineStatus, engine_spec
from streamer.inference.pool import WorkerPool
from streamer.inference.triton_client import TritonPool
from streamer.memory import trim_soon
from streamer.metrics import Metrics
from streamer.people.service import People
from streamer.pipeline.batcher import DetectionBatcher
from streamer.pipeline.planner import planner_for
from streamer.pipeline.stream import Stream
from streamer.pipeline.tracking import between_for, rule_for
from streamer.sources.base import Source
from streamer.sources.capture import CaptureSource

log = logging.getLogger(__name__)


def sync_hold_s(p: PipelineConfig, kind: str) -> float:
    """The longest hold of a stream of ``kind`` under ``sync_output`` (0: not held). ``auto``: a
    browser camera's self-view wants low lag; a camera or file someone watches, boxes on time."""
    on = p.sync_output == "on" or (p.sync_output == "auto" and kind != "webrtc")
    return p.sync_max_hold_s if on else 0.0


class StreamExists(KeyError):
    pass


class TooManyStreams(RuntimeError):
    pass


class Pipeline:
    def __init__(self, config: Config, metrics: Metrics) -> None:
        self.config = config
        self.metrics = metrics
        p = config.pipeline
        self.spec = engine_spec(config, metrics, nice=p.worker_nice)
        self.pool: WorkerPool | TritonPool
        if p.backend == "triton":
            self.pool = TritonPool(
                p.triton_urls,
                metrics,
                p.detect_max_side,
                p.triton_timeout_ms / 1000.0,
                [c.name for c in self.spec.classifiers],
                transport=p.triton_transport,
            )
        else:
            self.pool = WorkerPool(
                self.spec, p.workers, on_restart=lambda: metrics.errors.labels("worker_died").inc()
            )
        self.batcher = DetectionBatcher(
            self.pool,
            metrics,
            p.max_batch,
            p.max_wait_ms / 1000.0,
            concurrency=p.triton_in_flight if p.backend == "triton" else p.workers,
            active_streams=self.live_streams,
        )
        self.render_pool = ThreadPoolExecutor(p.render_threads, thread_name_prefix="render")
        self.streams: dict[str, Stream] = {}
        self.status: EngineStatus | None = None
        self.max_streams = config.server.max_streams
        self.reserved = 0  # slots held by WebRTC offers being answered (their stream comes with the answer)
        self.history = History(config, metrics)  # track records, snapshots, MQTT, webhook
        # face library, names, privacy (#33); photos are described by the model stage
        self.people = People(config, metrics, self.history, self.pool)

    def full(self) -> bool:
        return len(self.streams) + self.reserved >= self.max_streams

    def live_streams(self) -> set[str]:
        return {sid for sid, s in self.streams.items() if s.source.state.up}

    async def start(self) -> EngineStatus:
        self.status = await self.pool.start()
        for name, err in self.status.failed.items():
            log.error("classifier %r failed to load in the worker: %s", name, err)
            self.metrics.errors.labels("classifier_unavailable").inc()
        self.batcher.start()
        self.history.start()
        await self.people.start(wait=False)  # (the library is read while the streams start)
        sources = list(self.config.sources)
        if not sources and self.config.demo.enabled:
            log.info("no source configured: serving the demo video as stream 'demo'")
            sources = [SourceConfig(id="demo", file=self.config.demo.file, loop=True)]
        for s in sources:
            await self.add_source(s)
        return self.status

    def make_source(self, cfg: SourceConfig) -> Source:
        return CaptureSource(cfg, self.config.source_defaults, self.metrics)

    async def add_source(self, cfg: SourceConfig) -> Stream:
        return self.add_stream(self.make_source(cfg))

    def add_stream(self, source: Source, force: bool = False) -> Stream:
        """Start a stream; ``force`` skips the stream limit (checked earlier by the caller)."""
        if source.id in self.streams:
            raise StreamExists(source.id)
        if self.full() and not force:
            raise TooManyStreams(f"too many streams (limit {self.max_streams})")
        p = self.config.pipeline
        stream = Stream(
            source,
            self.batcher,
            self.metrics,
            self.render_pool,
            p.detect_every,
            planner_for(p),
            rule_for(p, self.config.classifiers),
            between_for(p),
            sync_hold_s(p, source.kind),
        )
        self.streams[source.id] = stream
        self.history.attach(stream)
        self.people.attach(stream)
        stream.start()
        log.info("stream %s added (%s: %s)", source.id, source.kind, source.describe())
        return stream

    async def remove(self, stream_id: str) -> bool:
        stream = self.streams.pop(stream_id, None)
        if stream is None:
            return False
        await stream.stop()
        self.batcher.forget(stream_id)
        self.metrics.forget_stream(stream_id)
        log.info("stream %s removed", stream_id)
        await trim_soon()
        return True

    async def close(self) -> None:
        await asyncio.gather(*(self.remove(s) for s in list(self.streams)), return_exceptions=True)
        self.people.close()
        await self.history.close()  # (after the streams: their tracks' ends are written)
        await self.batcher.stop()
        await self.pool.close()
        self.render_pool.shutdown(wait=False, cancel_futures=True)
