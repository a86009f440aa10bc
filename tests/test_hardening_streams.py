"""Issue 34, what the probe did not reach: event-stream clients that never read under a high event
rate, too many event-stream clients, and simultaneous WebRTC offers over the stream limit."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Callable
from types import SimpleNamespace

import pytest
from aiohttp.test_utils import TestClient, TestServer
from aiortc import RTCPeerConnection, VideoStreamTrack

from streamer.config import load_config
from streamer.pipeline.events import QUEUE, EventHub
from streamer.track.tracker import TrackEvent
from streamer.types import Box, Label
from streamer.web.app import create_app
from streamer.web.keys import METRICS, PIPELINE
from tests.conftest import CLIP, metric, wait_for


@pytest.fixture
async def events_app() -> AsyncIterator[Callable[..., object]]:
    """The real app, pipeline not started, with a stand-in stream "s" whose event hub we drive."""
    clients: list[TestClient] = []

    async def make(**output: object) -> tuple[TestClient, EventHub]:
        app = create_app(load_config(None, {"demo": {"enabled": False}, "output": output}, environ={}))
        app.on_startup.clear()
        hub = EventHub("s", app[METRICS])
        app[PIPELINE].streams["s"] = SimpleNamespace(events=hub)  # type: ignore[assignment]
        client = TestClient(TestServer(app, host="127.0.0.1"))
        await client.start_server()
        clients.append(client)
        return client, hub

    yield make
    for c in clients:
        c.server.app[PIPELINE].streams.clear()
        await c.close()


LABELS = tuple(Label(f"classifier_{i:02d}_" + "x" * 40, "label", 0.5) for i in range(24))  # ~2 KB an event


def _events(n: int, t0: int) -> list[TrackEvent]:
    return [
        TrackEvent("update", t0 + i, time.time(), Box(10, 20, 110, 120, 1.0), LABELS, 1.0) for i in range(n)
    ]


def _stalled_client(port: int) -> socket.socket:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", port))
    s.sendall(f"GET /streams/s/events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
    return s


async def test_an_event_client_that_never_reads_is_dropped_under_a_high_event_rate(events_app) -> None:
    # a write timeout well above a busy machine's scheduling hiccups: the reading client (in this same
    # process) must never look stalled, the one that never reads always does
    client, hub = await events_app(events_write_timeout_s=3.0)
    app = client.server.app
    stalled = _stalled_client(client.server.port)
    reader = await client.get("/streams/s/events")  # a good client, reading everything
    got = 0

    async def read_all() -> None:
        nonlocal got
        async for line in reader.content:
            got += line.startswith(b"event: ")

    reading = asyncio.ensure_future(read_all())
    await wait_for(lambda: len(hub.clients) == 2, 60, "both clients to subscribe")
    t0 = time.monotonic()
    n = 0
    try:
        # about 2,000 events a second, 4 MB/s: the stalled client's socket fills in a few seconds
        # (slower on a loaded machine: the deadline only bounds a hang)
        while time.monotonic() - t0 < 120 and not metric(
            app, "streamer_output_disconnects_total", output="events", reason="stalled"
        ):
            # paced by the reading client, never half its queue behind (a fixed rate would outrun it
            # on a loaded machine: dropped for falling behind); the one that never reads still fills
            if n - got < QUEUE // 2:
                hub.publish(_events(20, n))
                n += 20
            await asyncio.sleep(0.01)
        # the socket fills, then write_timeout_s: dropped (and only it) well before the loop's end
        assert metric(app, "streamer_output_disconnects_total", output="events", reason="stalled") == 1
        # its connection is closed: the service holds no socket for it any more
        stalled.setblocking(False)
        await wait_for(lambda: metric(app, "streamer_event_clients") == 1, 60, "the stalled client to go")
        assert len(hub.clients) == 1  # the reading client is still subscribed and served
        before = got
        hub.publish(_events(10, n))
        await wait_for(lambda: got >= before + 10, 60, "the good client to get new events")
    finally:
        reading.cancel()
        reader.close()
        stalled.close()


async def test_event_clients_are_capped(events_app) -> None:
    client, _ = await events_app(events_max_clients=2)
    app = client.server.app
    ok = [await client.get("/streams/s/events") for _ in range(2)]
    assert all(r.status == 200 for r in ok)
    r = await client.get("/streams/s/events")
    assert r.status == 429 and "limit 2" in (await r.json())["error"]
    assert metric(app, "streamer_errors_total", kind="too_many_event_clients") == 1
    assert metric(app, "streamer_event_clients") == 2
    for x in ok:
        x.close()
    await wait_for(lambda: metric(app, "streamer_event_clients") == 0, 5, "the clients to be let go")
    again = await client.get("/streams/s/events")
    assert again.status == 200
    again.close()


@pytest.mark.slow
async def test_simultaneous_camera_offers_never_exceed_the_stream_limit(make_app) -> None:
    client = await make_app(
        server={"max_streams": 2, "offers_per_minute": 1000, "max_pending_peers_per_client": 16},
        sources=[{"id": "clip", "file": str(CLIP), "loop": True}],
    )
    app = client.server.app
    pcs = [RTCPeerConnection() for _ in range(6)]
    try:
        offers = []
        for pc in pcs:
            pc.addTrack(VideoStreamTrack())
            await pc.setLocalDescription(await pc.createOffer())
            offers.append({"sdp": pc.localDescription.sdp, "type": "offer"})
        answers = await asyncio.gather(*(client.post("/offer", json=o) for o in offers))
        statuses = sorted(r.status for r in answers)
        assert statuses == [200] + [429] * 5, statuses  # one free slot: one camera
        assert len(app[PIPELINE].streams) == 2
        assert app[PIPELINE].reserved == 0
        assert metric(app, "streamer_errors_total", kind="too_many_streams") == 5
    finally:
        for pc in pcs:
            await pc.close()
