"""The real service under abuse, on loopback: a fuzzer on the HTTP API, hostile WebRTC peers,
and MJPEG viewers that stall, crawl or race. Each test is bounded in time and stops by itself."""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
import sys
from pathlib import Path

import numpy as np
import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription

from streamer.config import load_config
from streamer.web.app import create_app
from streamer.web.keys import MJPEG, PEERS, PIPELINE
from streamer.web.openapi import SPEC, routes_of, spec_routes
from tests.conftest import CLIP, free_port, metric, wait_for

SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"


def test_openapi_describes_every_route_and_only_those() -> None:
    app = create_app(load_config(None, {"demo": {"enabled": False}}, environ={}))
    assert routes_of(app) == spec_routes()
    assert SPEC["openapi"].startswith("3.")


def _no_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    bad = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert not bad, [r.getMessage() for r in bad][:5]


@pytest.mark.slow
async def test_fuzzed_api_never_fails_and_leaks_nothing(
    make_app, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    """schemathesis against the running service: no 5xx, every error JSON with a reason."""
    if not SCHEMATHESIS.exists():
        pytest.fail("schemathesis is not installed (pip install -e '.[dev]')")
    caplog.set_level(logging.INFO)
    refused = free_port()  # nothing listens there
    secret_url = f"rtsp://admin:p@ss:w0rd@127.0.0.1:{refused}/live?pwd=T0pSecret&channel=1"
    client = await make_app(
        # the stream limit is reached at start: a fuzzed but valid POST /streams never opens a URL
        server={"max_streams": 2},
        sources=[{"id": "clip", "file": str(CLIP), "loop": True}, {"id": "cam", "url": secret_url}],
        source_defaults={"reconnect_initial_s": 0.5, "reconnect_max_s": 1.0},
    )
    app = client.server.app
    streams = app[PIPELINE].streams
    await wait_for(lambda: streams["cam"].source.state.error is not None, 30, "the camera's error")
    assert "camera unreachable" in streams["cam"].source.state.error  # (refused and silent read alike)

    pages = [await (await client.get(p)).text() for p in ("/streams", "/metrics", "/")]
    for secret in ("p@ss", "w0rd", "T0pSecret", "admin"):
        assert all(secret not in t for t in pages), secret
        assert secret not in caplog.text, secret
    assert f"rtsp://***@127.0.0.1:{refused}/live?pwd=***&channel=1" in pages[0]

    # hand-made hostile bodies first
    deep = b"[" * 100_000 + b"]" * 100_000
    for path in ("/streams", "/offer", "/streams/clip/offer"):
        r = await client.post(path, data=deep, headers={"Content-Type": "application/json"})
        assert r.status == 400 and "nested too deeply" in (await r.json())["error"], path
        r = await client.post(path, data=b'{"url": "rtsp://x/y"}', headers={"Content-Type": "text/plain"})
        assert r.status == 415, path
    unparsable = {"type": "offer", "sdp": "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n"}
    r = await client.post("/streams/clip/offer", json=unparsable)
    reason = (await r.json())["error"]
    assert r.status == 400 and len(reason.split("cannot use this offer:", 1)[1].strip()) > 3, reason

    base = str(client.make_url("")).rstrip("/")
    proc = await asyncio.create_subprocess_exec(
        str(SCHEMATHESIS),
        "run",
        f"{base}/openapi.json",
        "--max-time",
        "20",
        "--exclude-path",
        "/streams/{id}/mjpeg",  # an endless response; watched by the MJPEG tests instead
        "--exclude-path",
        "/streams/{id}/events",  # endless too (SSE); tests/test_tracking_end_to_end.py reads it
        "--exclude-method",
        "DELETE",  # the stream limit must stay reached, so no fuzzed URL is ever opened (loopback only)
        "--checks",
        "not_a_server_error,content_type_conformance,response_schema_conformance,status_code_conformance",
        "--generation-database",
        "none",
        "--seed",
        "14",
        "--workers",
        "1",
        # a fuzzer checks answers, not speed: naming a person from an event's snapshot loads the
        # detector and backbone in the web process on first use (over 10 s on a loaded machine)
        "--request-timeout",
        "60",
        "--no-color",
        "--report",
        "ndjson",
        "--report-dir",
        str(tmp_path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=tmp_path,  # its cache folder (.schemathesis/) stays out of the repository
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 240)
    text = out.decode(errors="replace")
    assert proc.returncode == 0, text[-4000:]
    assert "generated" in text
    assert metric(app, "streamer_errors_total", kind="http_500") == 0

    _no_tracebacks(caplog)
    assert set(streams) == {"clip", "cam"} and (await client.get("/healthz")).status == 200


async def _viewer_offer(pc: RTCPeerConnection) -> dict[str, str]:
    pc.addTransceiver("video", direction="recvonly")
    await pc.setLocalDescription(await pc.createOffer())
    return {"sdp": pc.localDescription.sdp, "type": "offer"}


def _many_sections(sdp: str, n: int) -> str:
    """The offer's video section repeated ``n`` times (distinct mids), as an attacker would."""
    head, media = sdp.split("m=video", 1)
    media = "m=video" + media
    sections = [media.replace("a=mid:0", f"a=mid:{i}") for i in range(n)]
    head = head.replace("a=group:BUNDLE 0", "a=group:BUNDLE " + " ".join(map(str, range(n))))
    return head + "".join(sections)


@pytest.mark.slow
async def test_webrtc_abuse_cannot_lock_out_a_real_viewer(make_app) -> None:
    client = await make_app(
        server={
            "max_peers": 3,
            "max_pending_peers_per_client": 2,
            "peer_connect_timeout_s": 3.0,
            "offers_per_minute": 1000,
        },
        sources=[{"id": "clip", "file": str(CLIP), "loop": True}],
    )
    app = client.server.app
    pcs: list[RTCPeerConnection] = []

    def new_pc() -> RTCPeerConnection:
        pcs.append(RTCPeerConnection())
        return pcs[-1]

    try:
        # stuck peers: an offer, then nothing (the answer is never applied; ICE never completes)
        for _ in range(2):
            assert (
                await client.post("/streams/clip/offer", json=await _viewer_offer(new_pc()))
            ).status == 200
        r = await client.post("/streams/clip/offer", json=await _viewer_offer(new_pc()))
        assert r.status == 429 and "still connecting" in (await r.json())["error"]

        # amplification: many sections (about 40 KB), and too large
        offer = await _viewer_offer(new_pc())
        many = _many_sections(offer["sdp"], 30)
        assert 20_000 < len(many) < 64 * 1024
        for path in ("/streams/clip/offer", "/offer"):
            r = await client.post(path, json={"type": "offer", "sdp": many})
            assert r.status == 400 and "30 video section(s)" in (await r.json())["error"]
        r = await client.post("/offer", json={"type": "offer", "sdp": offer["sdp"] + "a=x:" + "y" * 70_000})
        assert r.status == 400 and "larger than" in (await r.json())["error"]
        assert len(app[PEERS].pcs) == 2  # nothing was built for the refused offers

        # the stuck peers are released by the connect deadline
        await wait_for(lambda: not app[PEERS].pcs, 20, "stuck peers to be released")
        assert metric(app, "streamer_errors_total", kind="peer_connect_timeout") == 2
        assert metric(app, "streamer_webrtc_peers") == 0

        # a real viewer still gets video
        viewer = new_pc()
        got: list[np.ndarray] = []
        received = [0]
        tasks: list[asyncio.Task[None]] = []

        @viewer.on("track")
        def on_track(track) -> None:
            async def read() -> None:
                while True:
                    got.append((await track.recv()).to_ndarray(format="rgb24"))
                    received[0] += 1
                    del got[:-5]

            tasks.append(asyncio.ensure_future(read()))

        r = await client.post("/streams/clip/offer", json=await _viewer_offer(viewer))
        assert r.status == 200
        answer = await r.json()
        await viewer.setRemoteDescription(RTCSessionDescription(answer["sdp"], answer["type"]))
        await wait_for(lambda: received[0] >= 5, 60, "frames at the real viewer")
        assert got[-1].std() > 1  # real pictures, not blank frames
        assert viewer.connectionState == "connected"

        # more peers than the limit: two more (still connecting) fill it; the next is refused
        for _ in range(2):
            assert (
                await client.post("/streams/clip/offer", json=await _viewer_offer(new_pc()))
            ).status == 200
        r = await client.post("/streams/clip/offer", json=await _viewer_offer(new_pc()))
        assert r.status == 429 and "limit 3" in (await r.json())["error"]
        await wait_for(lambda: len(app[PEERS].pcs) == 1, 20, "the extra stuck peers to be released")
        n = received[0]
        await wait_for(lambda: received[0] > n + 5 or viewer.connectionState != "connected", 20, "more video")
        assert viewer.connectionState == "connected"
        for t in tasks:
            t.cancel()
    finally:
        for pc in pcs:
            await pc.close()


def _raw_viewer(port: int, path: str) -> socket.socket:
    """An MJPEG client that asks and then never reads, with a small receive buffer."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", port))
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
    return s


def _reset(s: socket.socket) -> None:
    """Close with a TCP reset, as a killed client does."""
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


async def _count_parts(resp, counts: list[int], pause: float = 0.0) -> None:
    tail = b""
    while True:
        chunk = await resp.content.read(2048 if pause else 65536)
        if not chunk:
            return
        data = tail + chunk
        counts[0] += data.count(b"--streamerframe")
        tail = data[-20:]
        if pause:
            await asyncio.sleep(pause)  # a slow client: about 100 KB/s


@pytest.mark.slow
async def test_mjpeg_stalled_slow_and_fast_viewers(make_app, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    client = await make_app(
        sources=[{"id": "clip", "file": str(CLIP), "loop": True}],
        output={"mjpeg_max_viewers": 11, "mjpeg_write_timeout_s": 2.0, "mjpeg_max_fps": 15.0},
    )
    app = client.server.app
    port = client.server.port
    path = "/streams/clip/mjpeg"

    def out() -> float:
        return metric(app, "streamer_frames_out_total", stream="clip")

    def disconnects(reason: str) -> float:
        return metric(app, "streamer_output_disconnects_total", output="mjpeg", reason=reason)

    await wait_for(lambda: out() > 10, 60, "the stream's first frames")

    # clients that go away with a full buffer (reset): normal departures, no traceback, no 500
    gone = [_raw_viewer(port, path) for _ in range(4)]
    await wait_for(lambda: metric(app, "streamer_mjpeg_viewers") == 4, 10, "four viewers")
    start = out()
    await wait_for(lambda: out() > start + 10, 20, "frames to fill their buffers")
    for s in gone:
        _reset(s)
    await wait_for(lambda: metric(app, "streamer_mjpeg_viewers") == 0, 20, "the gone viewers to leave")
    assert disconnects("left") + disconnects("stalled") == 4
    assert metric(app, "streamer_errors_total", kind="http_500") == 0

    # stalled, slow and fast viewers together
    rss0 = metric(app, "process_resident_memory_bytes")
    encodes0 = app[MJPEG].encodes
    stalled = [_raw_viewer(port, path) for _ in range(8)]
    fast_resp = await client.get(path)
    slow_resps = [await client.get(path) for _ in range(2)]
    fast, slow = [0], [[0], [0]]
    readers = [asyncio.ensure_future(_count_parts(fast_resp, fast))]
    readers += [
        asyncio.ensure_future(_count_parts(r, c, 0.02)) for r, c in zip(slow_resps, slow, strict=True)
    ]
    try:
        await wait_for(lambda: metric(app, "streamer_mjpeg_viewers") == 11, 10, "eleven viewers")
        r = await client.get(path)
        assert r.status == 429 and "limit 11" in (await r.json())["error"]
        assert metric(app, "streamer_errors_total", kind="too_many_viewers") == 1

        out0, fast0 = out(), fast[0]
        await wait_for(lambda: disconnects("stalled") >= 8, 40, "the stalled viewers to be dropped")
        await wait_for(lambda: out() > out0 + 30, 30, "more frames")
        frames, seen = out() - out0, fast[0] - fast0
        # the fast viewer sees the stream's rate (up to mjpeg_max_fps), stalled viewers or not
        assert seen >= 0.5 * frames * min(1.0, 15.0 / 30.0), (seen, frames)
        assert all(c[0] >= 3 for c in slow), slow
        assert metric(app, "streamer_mjpeg_viewers") == 3  # the slow ones are not dropped
        # each frame is encoded once, not once per viewer
        assert app[MJPEG].encodes - encodes0 <= out() - out0 + 40
        grown = metric(app, "process_resident_memory_bytes") - rss0
        assert grown < 150e6, f"RSS grew {grown / 1e6:.0f} MB"
    finally:
        for t in readers:
            t.cancel()
        for resp in (fast_resp, *slow_resps):
            resp.close()
        for s in stalled:
            s.close()
    assert metric(app, "streamer_errors_total", kind="http_500") == 0
    _no_tracebacks(caplog)
