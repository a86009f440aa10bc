"""The issue-14 probe as a script: hostile requests at the real service on loopback, one line each.

A check of the service's defences, not a benchmark: it prints what each hostile request got and
keeps no figures. Run it against this checkout, and against an older one for a before/after (the
script stands alone, so it runs against any checkout's ``streamer``):

    python scripts/hostile_probe.py CLIP.mp4
    git archive ea80b94 streamer | tar -x -C /tmp/old && cd /tmp && \
        PYTHONPATH=/tmp/old python /path/to/repo/scripts/hostile_probe.py CLIP.mp4

Takes about a minute (the stuck-peer item waits up to 25 s). Loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import struct
import time

import aiortc  # noqa: F401  (before TensorFlow: pylibsrtp)
from aiohttp.test_utils import TestClient, TestServer
from aiortc import RTCPeerConnection

from streamer.config import load_config
from streamer.web.app import create_app
from streamer.web.keys import METRICS


def sample(app, name: str, **labels: str) -> float:
    v = app[METRICS].registry.get_sample_value(name, labels)
    return 0.0 if v is None else v


async def viewer_sdp(sections: int = 1) -> str:
    pc = RTCPeerConnection()
    pc.addTransceiver("video", direction="recvonly")
    await pc.setLocalDescription(await pc.createOffer())
    sdp = pc.localDescription.sdp
    await pc.close()
    if sections == 1:
        return sdp
    head, media = sdp.split("m=video", 1)
    head = head.replace("a=group:BUNDLE 0", "a=group:BUNDLE " + " ".join(map(str, range(sections))))
    return head + "".join(("m=video" + media).replace("a=mid:0", f"a=mid:{i}") for i in range(sections))


async def main(clip: str, sections: int) -> None:
    overrides = {
        "demo": {"enabled": False},
        "server": {"max_peers": 4, "offers_per_minute": 1000},
        "sources": [{"id": "clip", "file": clip, "loop": True}],
    }
    client = TestClient(TestServer(create_app(load_config(None, overrides, environ={})), host="127.0.0.1"))
    await client.start_server()
    app = client.server.app
    port = client.server.port
    try:
        while sample(app, "streamer_frames_out_total", stream="clip") < 10:
            await asyncio.sleep(0.2)
        rss = sample(app, "process_resident_memory_bytes")
        many = await viewer_sdp(sections)
        t = time.perf_counter()
        r = await client.post("/streams/clip/offer", json={"type": "offer", "sdp": many})
        body = await r.read()
        grown = (sample(app, "process_resident_memory_bytes") - rss) / 1e6
        print(
            f"2 offer with {sections} video sections ({len(many) // 1024} KB): {r.status} in "
            f"{time.perf_counter() - t:.2f}s, answer {len(body) // 1024} KB, RSS +{grown:.0f} MB"
        )
        deep = b"[" * 100_000 + b"]" * 100_000
        r = await client.post("/streams", data=deep, headers={"Content-Type": "application/json"})
        print(f"8 JSON nested 100k deep to POST /streams: {r.status}")
        body = json.dumps({"id": "x1", "url": "rtsp://127.0.0.1:9/x"})
        r = await client.post("/streams", data=body, headers={"Content-Type": "text/plain"})
        print(f"7 text/plain POST /streams: {r.status}")
        if r.status == 201:
            await client.delete("/streams/x1")
        r = await client.get("/streams", headers={"Host": "rebind.attacker.example"})
        print(f"7 GET /streams with Host rebind.attacker.example: {r.status}")

        enc0 = sample(app, "streamer_stage_seconds_count", stage="encode")
        out0 = sample(app, "streamer_frames_out_total", stream="clip")
        resps = [await client.get("/streams/clip/mjpeg") for _ in range(10)]

        async def drain(resp) -> None:
            while await resp.content.read(65536):
                pass

        tasks = [asyncio.ensure_future(drain(x)) for x in resps]
        await asyncio.sleep(5)
        for task in tasks:
            task.cancel()
        for x in resps:
            x.close()
        enc = sample(app, "streamer_stage_seconds_count", stage="encode") - enc0
        out = sample(app, "streamer_frames_out_total", stream="clip") - out0
        print(
            f"5 MJPEG, 10 viewers for 5 s: {enc:.0f} JPEG encodes for {out:.0f} frames "
            f"({enc / max(out, 1):.1f}/frame)"
        )

        socks = []
        for _ in range(6):
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.connect(("127.0.0.1", port))
            s.sendall(f"GET /streams/clip/mjpeg HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
            socks.append(s)
        await asyncio.sleep(3)
        for s in socks:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.close()
        await asyncio.sleep(2)
        n500 = sample(app, "streamer_errors_total", kind="http_500")
        print(f"6 six MJPEG clients reset with a full buffer: errors_total{{kind=http_500}} = {n500:.0f}")

        stuck = []
        for _ in range(4):
            pc = RTCPeerConnection()
            stuck.append(pc)
            pc.addTransceiver("video", direction="recvonly")
            await pc.setLocalDescription(await pc.createOffer())
            await client.post("/streams/clip/offer", json={"sdp": pc.localDescription.sdp, "type": "offer"})
        t = time.monotonic()
        while time.monotonic() - t < 25:
            r = await client.post("/streams/clip/offer", json={"sdp": await viewer_sdp(), "type": "offer"})
            if r.status == 200:
                break
            await asyncio.sleep(1)
        waited = time.monotonic() - t
        print(f"1 4 stuck peers (max_peers 4), then a viewer's offer: {r.status} after {waited:.0f}s")
        for pc in stuck:
            await pc.close()
    finally:
        await client.close()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("clip")
    p.add_argument("--sections", type=int, default=35, help="video sections in the amplification offer")
    a = p.parse_args()
    asyncio.run(main(a.clip, a.sections))
