"""Load and soak: cycles of WebRTC peers and API sources connecting, streaming and leaving.

After the cycles nothing is left behind: asyncio tasks, threads, file descriptors and resident
memory return to the level after the first (warm-up) cycle. CI runs a few cycles; `make soak`
runs many (STREAMER_SOAK_CYCLES, STREAMER_SOAK_PEERS) and prints the figures.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import threading
import time

import numpy as np
import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription

from streamer.memory import trim
from streamer.web.keys import PIPELINE
from tests.conftest import CLIP, metric, wait_for
from tests.support.media import read_frames
from tests.test_webrtc import ClipTrack

pytestmark = pytest.mark.slow

CYCLES = int(os.environ.get("STREAMER_SOAK_CYCLES", "3"))
PEERS = int(os.environ.get("STREAMER_SOAK_PEERS", "4"))


def resources() -> dict[str, float]:
    """What the process holds now; freed heap is handed back first, so RSS shows what is really kept."""
    gc.collect()
    trim()
    with open("/proc/self/statm") as f:
        rss_pages = int(f.read().split()[1])
    return {
        "tasks": len(asyncio.all_tasks()),
        "threads": threading.active_count(),
        "fds": len(os.listdir("/proc/self/fd")),
        "rss_mb": rss_pages * os.sysconf("SC_PAGE_SIZE") / 2**20,
    }


async def _peer(client, frames: list[np.ndarray]) -> tuple[RTCPeerConnection, list[int], asyncio.Task]:
    pc = RTCPeerConnection()
    pc.addTrack(ClipTrack(frames))
    got = [0]
    ready: asyncio.Future[object] = asyncio.get_running_loop().create_future()

    @pc.on("track")
    def on_track(track) -> None:
        if not ready.done():
            ready.set_result(track)

    await pc.setLocalDescription(await pc.createOffer())
    r = await client.post("/offer", json={"sdp": pc.localDescription.sdp, "type": "offer"})
    assert r.status == 200, await r.text()
    ans = await r.json()
    await pc.setRemoteDescription(RTCSessionDescription(ans["sdp"], ans["type"]))
    track = await asyncio.wait_for(ready, 10)

    async def read() -> None:
        try:
            while True:
                await track.recv()
                got[0] += 1
        except Exception:
            return

    return pc, got, asyncio.create_task(read())


async def _cycle(client, frames: list[np.ndarray], n_peers: int) -> None:
    app = client.server.app
    peers = [await _peer(client, frames) for _ in range(n_peers)]
    watch = RTCPeerConnection()  # and one viewer of a configured source
    watch.addTransceiver("video", direction="recvonly")
    await watch.setLocalDescription(await watch.createOffer())
    r = await client.post("/streams/clip/offer", json={"sdp": watch.localDescription.sdp, "type": "offer"})
    ans = await r.json()
    await watch.setRemoteDescription(RTCSessionDescription(ans["sdp"], ans["type"]))
    for i in range(2):
        r = await client.post("/streams", json={"id": f"api{i}", "url": "rtsp://127.0.0.1:9/none"})
        assert r.status == 201
    await wait_for(lambda: all(got[0] >= 3 for _, got, _ in peers), 60, "frames back on every peer")
    assert metric(app, "streamer_webrtc_peers") == n_peers + 1
    for pc, _, reader in peers:
        await pc.close()
        reader.cancel()
    await watch.close()
    for i in range(2):
        assert (await client.delete(f"/streams/api{i}")).status == 204
    pipeline = app[PIPELINE]
    await wait_for(
        lambda: set(pipeline.streams) == {"clip"} and metric(app, "streamer_webrtc_peers") == 0,
        30,
        "every peer and API stream to be released",
    )


async def test_soak_cycles_leave_nothing_behind(make_app) -> None:
    client = await make_app(
        sources=[{"id": "clip", "file": str(CLIP), "loop": True}],
        server={"max_peers": PEERS + 2, "offers_per_minute": 1000},
    )
    frames = read_frames(CLIP, 120)[90::6]
    await _cycle(client, frames, PEERS)  # warm-up: pools and caches reach their steady size
    await asyncio.sleep(1)
    before = resources()
    t0 = time.monotonic()
    for _ in range(CYCLES):
        await _cycle(client, frames, PEERS)

    async def settled() -> dict[str, float]:
        for _ in range(50):
            now = resources()
            if now["tasks"] <= before["tasks"] + 2 and now["threads"] <= before["threads"] + 2:
                return now
            await asyncio.sleep(0.2)
        return resources()

    after = await settled()
    report = {
        "cycles": CYCLES,
        "peers_at_once": PEERS + 1,
        "sources_per_cycle": 2,
        "seconds": round(time.monotonic() - t0, 1),
        "before": before,
        "after": after,
    }
    print("\nSOAK " + json.dumps(report))
    assert after["tasks"] <= before["tasks"] + 2, report
    assert after["threads"] <= before["threads"] + 2, report
    assert after["fds"] <= before["fds"] + 8, report
    assert after["rss_mb"] <= before["rss_mb"] + 30 + CYCLES, report
