"""A stream's track events (start / update / end) fanned out to its event clients (SSE).

Publishing never waits: each client has a bounded queue, and a client whose queue is full
(too slow, or gone without saying so) is dropped, its undelivered events counted in
``streamer_events_dropped_total{stream}``. The hub also keeps the stream's open tracks,
for GET /streams and for a client that connects mid-stream.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable

from streamer.metrics import Metrics
from streamer.track.tracker import TrackEvent

QUEUE = 256  # events a client may fall behind before it is dropped


class EventClient:
    def __init__(self, backlog: int = 0) -> None:
        # room for the open tracks it is sent on arrival, then QUEUE events of slack
        self.queue: asyncio.Queue[tuple[str, dict[str, object]] | None] = asyncio.Queue(QUEUE + backlog + 1)
        self.dropped = False

    async def next(self) -> tuple[str, dict[str, object]] | None:
        """(kind, data), or None once the stream ended or this client was dropped."""
        return await self.queue.get()


class EventHub:
    def __init__(self, stream: str, metrics: Metrics | None = None) -> None:
        self.stream = stream
        self.metrics = metrics
        self.clients: set[EventClient] = set()
        self.open: dict[int, dict[str, object]] = {}  # track -> its start event, labels kept current
        self.closed = False
        # called with every event (the event history: streamer/history); quick, never raising
        self.sinks: list[Callable[[TrackEvent, dict[str, object]], None]] = []

    def subscribe(self) -> EventClient:
        c = EventClient(len(self.open))
        for data in self.open.values():
            c.queue.put_nowait(("start", data))
        if self.closed:
            c.queue.put_nowait(None)
        else:
            self.clients.add(c)
        return c

    def unsubscribe(self, c: EventClient) -> None:
        self.clients.discard(c)

    def publish(self, events: Iterable[TrackEvent]) -> None:
        for e in events:
            data = e.as_dict(self.stream)
            if e.kind == "start":
                self.open[e.track] = data
            elif e.kind == "update" and e.track in self.open:
                self.open[e.track] = {**self.open[e.track], "labels": data["labels"]}
            elif e.kind == "end":
                self.open.pop(e.track, None)
            for sink in self.sinks:
                sink(e, data)
            for c in list(self.clients):
                try:
                    c.queue.put_nowait((e.kind, data))
                except asyncio.QueueFull:
                    self._drop(c)

    def _drop(self, c: EventClient) -> None:
        self.clients.discard(c)
        c.dropped = True
        if self.metrics is not None:
            self.metrics.events_dropped.labels(self.stream).inc(c.queue.qsize())
        # make room for the end marker: the client learns it was dropped, not that the stream ended
        while not c.queue.empty():
            c.queue.get_nowait()
        c.queue.put_nowait(None)

    def close(self) -> None:
        self.closed = True
        for c in list(self.clients):
            try:
                c.queue.put_nowait(None)
            except asyncio.QueueFull:
                self._drop(c)
        self.clients.clear()

    def tracks(self) -> list[dict[str, object]]:
        """The open tracks: id, labels, seconds seen so far."""
        now = time.time()
        return [
            {"track": t, "labels": d["labels"], "seen_s": round(max(0.0, now - float(d["time"])), 1)}  # type: ignore[arg-type]
            for t, d in self.open.items()
        ]
