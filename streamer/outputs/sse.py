"""A stream's track events as Server-Sent Events: ``event: start|update|end`` + one JSON ``data:`` line.

Each client reads from its own bounded queue (pipeline/events.py): a slow client is dropped
(its undelivered events counted), it never holds up the stream. Clients are capped
(``max_clients``, all streams together, 429 beyond), and a client whose socket has not drained
within ``write_timeout_s`` is disconnected and counted
(``output_disconnects_total{output="events",reason="stalled"}``): a client that never reads holds
its connection for a bounded time. A client going away is normal.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging

from aiohttp import web

from streamer.metrics import Metrics
from streamer.pipeline.events import EventHub

log = logging.getLogger(__name__)
KEEPALIVE_S = 15.0  # a comment line this often keeps proxies from closing an idle connection
OUTPUT = "events"


class TooManyEventClients(RuntimeError):
    pass


class EventsOutput:
    def __init__(self, metrics: Metrics, max_clients: int = 64, write_timeout_s: float = 5.0) -> None:
        self.metrics = metrics
        self.max_clients = max_clients
        self.write_timeout_s = write_timeout_s
        self.clients = 0

    async def serve(self, request: web.Request, hub: EventHub) -> web.StreamResponse:
        if self.clients >= self.max_clients:
            raise TooManyEventClients(f"too many event-stream clients (limit {self.max_clients})")
        self.clients += 1
        self.metrics.event_clients.set(self.clients)
        try:
            return await serve_events(request, hub, self.write_timeout_s, self.metrics)
        finally:
            self.clients -= 1
            self.metrics.event_clients.set(self.clients)


async def serve_events(
    request: web.Request, hub: EventHub, write_timeout_s: float = 5.0, metrics: Metrics | None = None
) -> web.StreamResponse:
    resp = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    )
    await resp.prepare(request)
    client = hub.subscribe()

    async def send(data: bytes) -> None:
        await asyncio.wait_for(resp.write(data), write_timeout_s)

    try:
        await send(b": tracks of stream " + hub.stream.encode() + b"\n\n")
        while True:
            try:
                item = await asyncio.wait_for(client.next(), KEEPALIVE_S)
            except TimeoutError:
                await send(b": keepalive\n\n")
                continue
            if item is None:  # the stream ended, or this client fell too far behind
                break
            kind, data = item
            await send(f"event: {kind}\ndata: {json.dumps(data)}\n\n".encode())
    except TimeoutError:
        if metrics is not None:
            metrics.output_disconnects.labels(OUTPUT, "stalled").inc()
        log.info("event client of %s: socket not drained in %gs; dropped", hub.stream, write_timeout_s)
        if request.transport is not None:
            request.transport.abort()
        return resp
    except (ConnectionError, asyncio.CancelledError):
        if metrics is not None:
            metrics.output_disconnects.labels(OUTPUT, "left").inc()
        return resp  # the client went away
    finally:
        hub.unsubscribe(client)
    if client.dropped and metrics is not None:  # fell too far behind (its events are counted too)
        metrics.output_disconnects.labels(OUTPUT, "stalled").inc()
    with contextlib.suppress(ConnectionError):
        await resp.write_eof()
    return resp
