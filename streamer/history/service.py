"""The event history: a sink on every stream's event hub that keeps what happened.

``attach`` (Pipeline.add_stream) gives a stream's stage a LookKeeper (its tracks' best looks) and
subscribes to its hub. Every event goes to the live sinks (MQTT, webhook); a track's end (not one
merged into a remembered track: its looks go on under that one) becomes a record with its best
look, queued for the writer thread. All of it is quick and on the event loop; nothing here waits
for a database, a broker or a web server, and nothing here raises into the stream.

Reads for the API run in a small thread pool, each thread on its own connection.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from streamer.config import Config
from streamer.history.db import EventStore, Record
from streamer.history.looks import LookKeeper
from streamer.history.schema import Database
from streamer.history.writer import EventWriter, Pending
from streamer.metrics import Metrics
from streamer.people.recognize import person_of

log = logging.getLogger(__name__)
T = TypeVar("T")


class History:
    def __init__(self, config: Config, metrics: Metrics) -> None:
        self.cfg = config.store
        self.metrics = metrics
        self.db: Database | None = None
        self.store: EventStore | None = None
        self.writer: EventWriter | None = None
        if self.cfg.enabled:
            self.db = Database(self.cfg.url, self.cfg.dir)
            self.store = EventStore(self.db)
            self.writer = EventWriter(self.store, metrics, self.cfg)
        self.sinks: list[Any] = []
        if config.mqtt.enabled:
            from streamer.history.mqtt import MqttSink

            self.sinks.append(MqttSink(config.mqtt, metrics))
        if config.webhook.url:
            from streamer.history.webhook import WebhookSink

            self.sinks.append(WebhookSink(config.webhook, metrics))
        self._starts: dict[tuple[str, int], float] = {}  # (stream, track) -> first seen
        self._readers = ThreadPoolExecutor(2, thread_name_prefix="event-read")
        self._sink_failed = False

    @property
    def enabled(self) -> bool:
        return self.store is not None

    def health(self) -> dict[str, object]:
        """For /healthz: the store ("off", "ok" or "failing", with its records waiting) and, where
        configured, whether the MQTT broker is connected."""
        out: dict[str, object] = {"store": "off"}
        if self.writer is not None:
            out["store"] = "failing" if self.writer.failing else "ok"
            out["store_queue"] = self.writer.q.qsize()
        for s in self.sinks:
            if getattr(s, "name", "") == "mqtt":
                out["mqtt"] = "up" if s.connected.is_set() else "down"
        return out

    def start(self) -> None:
        if self.writer is not None:
            self.writer.start()
            log.info("event store: %s", self.db.where if self.db else "")
        for s in self.sinks:
            s.start()

    def attach(self, stream: Any) -> None:
        """Keep ``stream``'s track events (a pipeline.stream.Stream)."""
        keeper = None
        if self.enabled:
            keeper = LookKeeper(self.cfg.face_max_side, self.cfg.thumb_width)
            stream.stage.looks = keeper
        sid = stream.id

        def on_event(e: Any, data: dict[str, object]) -> None:
            try:
                self._on_event(sid, keeper, e, data)
            except Exception:  # (the stream goes on whatever a sink does)
                self.metrics.errors.labels("event_sink").inc()
                if not self._sink_failed:
                    self._sink_failed = True
                    log.exception("event history: handling a track event failed")

        stream.events.sinks.append(on_event)

    def _on_event(self, sid: str, keeper: LookKeeper | None, e: Any, data: dict[str, object]) -> None:
        for s in self.sinks:
            s.publish(sid, e.kind, data)
        if self.writer is None or keeper is None:
            return
        key = (sid, e.track)
        if e.kind == "start":
            self._starts[key] = e.time - e.duration_s
            return
        if e.kind != "end":
            return
        first = self._starts.pop(key, e.time - e.duration_s)
        if e.merged_into is not None:
            return
        look, looks = keeper.take(e.track)
        labels = {
            lab.classifier: {"label": lab.label, "p": round(float(lab.probability), 4)} for lab in e.labels
        }
        record = Record(
            stream=sid,
            track=int(e.track),
            started_at=round(first, 3),
            ended_at=round(first + e.duration_s, 3),
            duration_s=round(float(e.duration_s), 3),
            labels=labels,
            looks=looks,
            identity=person_of(e.labels),
        )
        self.writer.put(Pending(record, look))

    async def read(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn(store, connection, *args, **kwargs)`` in a reader thread."""
        assert self.store is not None and self.db is not None
        store, db = self.store, self.db

        def call() -> T:
            try:
                return fn(store, db.local(), *args, **kwargs)
            except Exception:
                db.drop_local()  # (a broken connection is not kept)
                raise

        return await asyncio.get_running_loop().run_in_executor(self._readers, call)

    async def close(self) -> None:
        """Deliver and write what is queued, then stop (after the streams have ended)."""
        for s in self.sinks:
            try:
                if asyncio.iscoroutinefunction(s.close):
                    await s.close()
                else:
                    await asyncio.to_thread(s.close)
            except Exception:
                log.exception("event sink %s: closing failed", s.name)
        if self.writer is not None:
            await asyncio.to_thread(self.writer.close)
        if self.db is not None:
            db = self.db

            def drop() -> None:
                db.drop_local()

            for _ in range(2):
                await asyncio.get_running_loop().run_in_executor(self._readers, drop)
        self._readers.shutdown(wait=False)
