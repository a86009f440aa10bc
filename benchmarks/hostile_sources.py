"""The issue-34 source probe as a script: hostile loopback cameras against the real service, one line each.

    python -m benchmarks.hostile_sources

Before/after: run it with an older checkout's ``streamer`` first on PYTHONPATH (this script and
tests/support/cameras.py only use the HTTP API and /streams), e.g.

    mkdir -p /tmp/old && git archive 3e2942b streamer | tar -x -C /tmp/old
    cd /tmp && PYTHONPATH=/tmp/old:/path/to/repo python -m benchmarks.hostile_sources

Items: a 16000x16000 MJPEG camera (peak RSS, time until /streams shows an error); a good camera
added after N cameras that pass the pre-check and stall (HTTP, RTSP); 24 add/delete cycles of a
stalled camera (source threads left, then how long a good camera takes). About 3 minutes; loopback.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import threading
import time
from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer

from streamer.config import load_config
from streamer.web.app import create_app
from streamer.web.keys import METRICS
from tests.support.cameras import Camera, big_jpeg, small_jpeg


def rss_mb() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 2**20


async def service(**defaults: float) -> TestClient:
    overrides = {"demo": {"enabled": False}, "source_defaults": {"open_timeout_s": 10.0, **defaults}}
    client = TestClient(TestServer(create_app(load_config(None, overrides, environ={})), host="127.0.0.1"))
    await client.start_server()
    return client


async def frames_in(client: TestClient, sid: str) -> float:
    v = client.server.app[METRICS].registry.get_sample_value("streamer_frames_in_total", {"stream": sid})
    return v or 0.0


async def until_up(client: TestClient, sid: str, limit: float) -> str:
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit:
        if await frames_in(client, sid) > 0:
            return f"{time.monotonic() - t0:.1f} s"
        await asyncio.sleep(0.1)
    return f"not up after {limit:.0f} s"


def source_threads() -> int:
    return sum(t.name.startswith("source-") for t in threading.enumerate())


async def huge_camera(tmp: Path) -> None:
    cam = Camera("mjpeg", big_jpeg(tmp / "huge.jpg"), fps=2)
    client = await service()
    try:
        base = peak = rss_mb()
        t0 = time.monotonic()
        await client.post("/streams", json={"id": "huge", "url": cam.url()})
        shown = None
        while time.monotonic() - t0 < 30:
            peak = max(peak, rss_mb())
            if shown is None:
                s = (await (await client.get("/streams")).json())["streams"][0]
                if s["error"]:
                    shown = (time.monotonic() - t0, s["error"])
            await asyncio.sleep(0.05)
        when = f"error after {shown[0]:.1f} s: {shown[1]!r}" if shown else "no error in 30 s"
        print(f"2: one 16000x16000 MJPEG camera for 30 s: RSS {base} -> peak {peak} MB; {when}", flush=True)
    finally:
        await client.close()
        cam.close()


async def stalled_then_good(n: int, mode: str) -> None:
    stalled = [Camera(mode) for _ in range(n)]
    good = Camera("mjpeg", small_jpeg())
    scheme = "rtsp" if mode == "rtsp_stall" else "http"
    client = await service()
    try:
        for i, c in enumerate(stalled):
            await client.post("/streams", json={"id": f"stall{i}", "url": c.url(scheme)})
        await asyncio.sleep(1.0)
        await client.post("/streams", json={"id": "good", "url": good.url()})
        up = await until_up(client, "good", 45)
        print(f"3: good camera after {n} stalled {scheme} camera(s): up in {up}", flush=True)
    finally:
        await client.close()
        for c in [*stalled, good]:
            c.close()


async def churn(mode: str, cycles: int = 24) -> None:
    stall, good = Camera(mode), Camera("mjpeg", small_jpeg())
    scheme = "rtsp" if mode == "rtsp_stall" else "http"
    client = await service()
    try:
        before = source_threads()
        t0 = time.monotonic()
        for i in range(cycles):
            await client.post("/streams", json={"id": f"s{i}", "url": stall.url(scheme)})
            await asyncio.sleep(0.05)
            await client.delete(f"/streams/s{i}")
        took = time.monotonic() - t0
        await asyncio.sleep(2.0)
        left = source_threads() - before
        await client.post("/streams", json={"id": "good", "url": good.url()})
        up = await until_up(client, "good", 45)
        await asyncio.sleep(10.0)  # open_timeout_s
        later = source_threads() - before - 1
        print(
            f"3: {cycles} add/delete cycles of a stalled {scheme} camera in {took:.1f} s: {left} source "
            f"threads left 2 s later, {later} 12 s later; a good camera then up in {up}",
            flush=True,
        )
    finally:
        await client.close()
        stall.close()
        good.close()


async def main(skip_huge: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        if not skip_huge:
            await huge_camera(Path(tmp))
    for n, mode in ((1, "stall"), (3, "stall"), (3, "rtsp_stall")):
        await stalled_then_good(n, mode)
    await churn("stall")
    await churn("rtsp_stall")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--skip-huge", action="store_true", help="leave out the 16000x16000 camera (GBs on old code)"
    )
    asyncio.run(main(ap.parse_args().skip_huge))
