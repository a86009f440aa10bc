"""The issue-34 source probe: hostile loopback cameras against the real service, one figure each.

    python -m benchmarks hardening --parts sources [--skip-huge]

Items: a 16000x16000 MJPEG camera (peak RSS, time until /streams shows an error); a good camera
added after N cameras that pass the pre-check and stall (HTTP, RTSP); 24 add/delete cycles of a
stalled camera (source threads left, then how long a good camera takes). The service runs in this
process (the real app on aiohttp's test server; RSS is this process's). About 3 minutes; loopback.

Before/after: run it with an older checkout's ``streamer`` first on PYTHONPATH (this part and
tests/support/cameras.py only use the HTTP API and /streams), from outside the checkout (``python
-m`` puts the working directory first on sys.path) and with ``--out`` elsewhere, e.g.

    mkdir -p /tmp/old && git archive 3e2942b streamer | tar -x -C /tmp/old
    cd /tmp && PYTHONPATH=/tmp/old:/path/to/repo \
        python -m benchmarks hardening --parts sources --out /tmp/old-results
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from benchmarks.report import progress
from streamer.config import load_config
from streamer.web.app import create_app
from streamer.web.keys import METRICS
from tests.support.cameras import Camera, big_jpeg, small_jpeg

STALLED = ((1, "stall"), (3, "stall"), (3, "rtsp_stall"))
CYCLES = 24


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


async def until_up(client: TestClient, sid: str, limit: float) -> float | None:
    """Seconds until ``sid`` has its first frame in, or None if not within ``limit``."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit:
        if await frames_in(client, sid) > 0:
            return round(time.monotonic() - t0, 1)
        await asyncio.sleep(0.1)
    return None


def up_text(up: float | None, limit: float = 45) -> str:
    return f"up in {up:.1f} s" if up is not None else f"not up after {limit:.0f} s"


def source_threads() -> int:
    return sum(t.name.startswith("source-") for t in threading.enumerate())


def scheme_of(mode: str) -> str:
    return "rtsp" if mode == "rtsp_stall" else "http"


async def huge_camera(tmp: Path) -> dict[str, Any]:
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
        progress(f"2: one 16000x16000 MJPEG camera for 30 s: RSS {base} -> peak {peak} MB; {when}")
        return {
            "rss_mb_before": base,
            "rss_mb_peak": peak,
            "error_after_s": round(shown[0], 1) if shown else None,
            "error": shown[1] if shown else None,
        }
    finally:
        await client.close()
        cam.close()


async def stalled_then_good(n: int, mode: str) -> dict[str, Any]:
    stalled = [Camera(mode) for _ in range(n)]
    good = Camera("mjpeg", small_jpeg())
    scheme = scheme_of(mode)
    client = await service()
    try:
        for i, c in enumerate(stalled):
            await client.post("/streams", json={"id": f"stall{i}", "url": c.url(scheme)})
        await asyncio.sleep(1.0)
        await client.post("/streams", json={"id": "good", "url": good.url()})
        up = await until_up(client, "good", 45)
        progress(f"3: good camera after {n} stalled {scheme} camera(s): {up_text(up)}")
        return {"stalled": n, "scheme": scheme, "good_up_s": up}
    finally:
        await client.close()
        for c in [*stalled, good]:
            c.close()


async def churn(mode: str, cycles: int = CYCLES) -> dict[str, Any]:
    stall, good = Camera(mode), Camera("mjpeg", small_jpeg())
    scheme = scheme_of(mode)
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
        progress(
            f"3: {cycles} add/delete cycles of a stalled {scheme} camera in {took:.1f} s: {left} source "
            f"threads left 2 s later, {later} 12 s later; a good camera then {up_text(up)}"
        )
        return {
            "scheme": scheme,
            "cycles": cycles,
            "seconds": round(took, 1),
            "threads_left_2s": left,
            "threads_left_12s": later,
            "good_up_s": up,
        }
    finally:
        await client.close()
        stall.close()
        good.close()


async def probe(skip_huge: bool) -> dict[str, Any]:
    fig: dict[str, Any] = {}
    if not skip_huge:
        with tempfile.TemporaryDirectory() as tmp:
            fig["huge_camera"] = await huge_camera(Path(tmp))
    fig["stalled_then_good"] = [await stalled_then_good(n, mode) for n, mode in STALLED]
    fig["churn"] = [await churn("stall"), await churn("rtsp_stall")]
    return fig


def run(a: argparse.Namespace) -> dict[str, Any]:
    return asyncio.run(probe(a.skip_huge))


def rows(f: dict[str, Any]) -> list[dict[str, str]]:
    out = []
    if h := f.get("huge_camera"):
        when = (
            f"`/streams` shows `{h['error']}` after {h['error_after_s']:.1f} s"
            if h["error"]
            else ("no error in `/streams` after 30 s")
        )
        out.append(
            {
                "attack": "an MJPEG camera sending 16000x16000 JPEGs, 30 s",
                "now": f"RSS {h['rss_mb_before']} → {h['rss_mb_peak']} MB; {when}",
                "limit": "`source_defaults.max_frame_side` (4096)",
            }
        )
    for s in f["stalled_then_good"]:
        out.append(
            {
                "attack": f"a good camera added after {s['stalled']} stalled {s['scheme']} camera(s)",
                "now": up_text(s["good_up_s"]),
                "limit": "`source_defaults.open_timeout_s` (10 s)",
            }
        )
    for c in f["churn"]:
        out.append(
            {
                "attack": f"{c['cycles']} add/delete cycles of a stalled {c['scheme']} camera",
                "now": f"cycles take {c['seconds']:.1f} s; {c['threads_left_2s']} source threads left 2 s "
                f"later, {c['threads_left_12s']} 12 s later; a good camera then "
                f"{up_text(c['good_up_s'])}",
                "limit": "`source_defaults.max_abandoned_opens` (16)" if c["scheme"] == "rtsp" else "—",
            }
        )
    return out
