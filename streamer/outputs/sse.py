"""A stream's track events as Server-Sent Events: ``event: start|update|end`` + one JSON ``data:`` line.

Each client reads from its own bounded queue (pipeline/events.py): a slow client is dropped
(its undelivered events counted), it never holds up the stream. A client going away is normal.
"""

from __future__ import annotations

import asyncio
import contextlib
import json

from aiohttp import web

from streamer.pipeline.events import EventHub

KEEPALIVE_S = 15.0  # a comment line this often keeps proxies from closing an idle connection


async def serve_events(request: web.Request, hub: EventHub) -> web.StreamResponse:
    resp = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    )
    await resp.prepare(request)
    client = hub.subscribe()
    try:
        await resp.write(b": tracks of stream " + hub.stream.encode() + b"\n\n")
        while True:
            try:
                item = await asyncio.wait_for(client.next(), KEEPALIVE_S)
            except TimeoutError:
                await resp.write(b": keepalive\n\n")
                continue
            if item is None:  # the stream ended, or this client fell too far behind
                break
            kind, data = item
            await resp.write(f"event: {kind}\ndata: {json.dumps(data)}\n\n".encode())
    except (ConnectionError, asyncio.CancelledError):
        pass  # the client went away
    finally:
        hub.unsubscribe(client)
    with contextlib.suppress(ConnectionError):
        await resp.write_eof()
    return resp
