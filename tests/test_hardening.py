"""What a hostile-input and fault probe found (issue 14), each checked so it stays fixed.

Fast checks of the pieces; the real-service checks (WebRTC abuse, MJPEG load, fuzzing) are in
test_abuse.py.
"""

from __future__ import annotations

import asyncio
import json
import random
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from streamer.config import ConfigError, SourceConfig, SourcesDefaults, load_config
from streamer.metrics import Metrics
from streamer.redact import redact_text, redact_url
from streamer.sources.capture import CaptureSource, backoff_wait
from streamer.sources.probe import SourceUnavailable, probe
from streamer.web.keys import CONFIG, METRICS
from streamer.web.peers import CAMERA_MEDIA, VIEWER_MEDIA, BadOffer, parse_offer
from streamer.web.routes import guard_middleware
from tests.conftest import CLIP, metric, wait_for

# --- 3: secrets in URLs ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "shown", "secrets"),
    [
        (
            "rtsp://admin:p@ss:w0rd@10.0.0.5:554/live",
            "rtsp://***@10.0.0.5:554/live",
            ["p@ss", "w0rd", "admin"],
        ),
        ("rtsp://admin:a:b:c@cam/x", "rtsp://***@cam/x", ["a:b:c", "admin"]),
        ("rtsp://onlyuser@cam/x", "rtsp://***@cam/x", ["onlyuser"]),
        (
            "http://cam/snap.mjpg?user=admin&pwd=S3cret&res=hd",
            "http://cam/snap.mjpg?user=***&pwd=***&res=hd",
            ["admin", "S3cret"],
        ),
        (
            "https://cam/v?api_key=K3y&Password=P4ss#f",
            "https://cam/v?api_key=***&Password=***#f",
            ["K3y", "P4ss"],
        ),
        ("rtsp://u:pa/ss@cam/x", "rtsp://***@cam/x", ["pa/ss"]),
        ("rtsp://cam:554/x?channel=1", "rtsp://cam:554/x?channel=1", []),
    ],
)
def test_every_userinfo_and_credential_parameter_is_hidden(url: str, shown: str, secrets: list[str]) -> None:
    assert redact_url(url) == shown
    text = redact_text(f"source x: cannot open {url}: refused")
    assert shown in text
    for s in secrets:
        assert s not in redact_url(url) and s not in text


# --- 9: token from the environment ----------------------------------------------------------------


def test_token_from_the_environment_is_a_string_and_weak_ones_are_refused() -> None:
    digits = "4815162342108015"
    c = load_config(None, {"server": {"host": "0.0.0.0"}}, environ={"STREAMER_SERVER_API_TOKEN": digits})
    assert c.server.api_token == digits
    for bad, why in ((" " * 16, "blank"), ("a" * 20, "too weak"), ("short-1", "too short")):
        with pytest.raises(ConfigError, match=why):
            load_config(None, environ={"STREAMER_SERVER_API_TOKEN": bad})
    assert load_config(None, environ={"STREAMER_SERVER_PORT": "9000"}).server.port == 9000  # others: TOML


# --- backoff jitter -------------------------------------------------------------------------------


def test_reconnect_backoff_never_exceeds_its_cap() -> None:
    rng = random.Random(0)
    delay, cap = 1.0, 30.0
    waits = []
    for _ in range(200):
        waits.append(backoff_wait(delay, cap, rng))
        delay = min(delay * 2, cap)
    assert max(waits) <= cap
    assert min(waits) >= 0.8  # jitter never below 80% of the first delay
    assert len({round(w, 3) for w in waits[-50:]}) > 1  # still jittered at the cap (no herd)


# --- 2: offer amplification -----------------------------------------------------------------------


def _sdp(*kinds: str) -> bytes:
    lines = ["v=0", "o=- 1 1 IN IP4 127.0.0.1", "s=-", "t=0 0"]
    lines += [f"m={k} 9 UDP/TLS/RTP/SAVPF 96" for k in kinds]
    return json.dumps({"type": "offer", "sdp": "\r\n".join(lines) + "\r\n"}).encode()


def test_offers_carry_only_the_media_sections_the_endpoint_needs() -> None:
    parse_offer(_sdp("video"), VIEWER_MEDIA)
    parse_offer(_sdp("video", "audio"), CAMERA_MEDIA)
    for body, allowed, why in (
        (_sdp(*["video"] * 500), VIEWER_MEDIA, "500 video"),
        (_sdp("video", "audio"), VIEWER_MEDIA, "1 audio"),
        (_sdp("video", "video"), CAMERA_MEDIA, "2 video"),
        (_sdp("video", "audio", "audio"), CAMERA_MEDIA, "2 audio"),
        (_sdp("video", "application"), CAMERA_MEDIA, "application"),
    ):
        with pytest.raises(BadOffer, match=why):
            parse_offer(body, allowed)


# --- 8: deeply nested JSON ------------------------------------------------------------------------


def test_deeply_nested_json_is_a_bad_offer() -> None:
    with pytest.raises(BadOffer, match="nested too deeply"):
        parse_offer(b"[" * 100_000 + b"]" * 100_000)


# --- 7: cross-site requests, Host -----------------------------------------------------------------


@pytest.fixture
async def guarded() -> AsyncIterator[TestClient]:
    """Only the guard middleware in front of a state-changing route and a read-only one."""

    async def handler(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app = web.Application(middlewares=[guard_middleware])
    app[CONFIG] = load_config(None, {"server": {"allowed_hosts": ["cams.example.lan"]}}, environ={})
    app[METRICS] = Metrics()
    app.router.add_post("/streams", handler)
    app.router.add_delete("/streams/{id}", handler)
    app.router.add_get("/streams", handler)
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    yield client
    await client.close()


async def test_cross_site_posts_and_foreign_hosts_are_refused(guarded: TestClient) -> None:
    own = str(guarded.make_url("")).rstrip("/")
    ok = await guarded.post("/streams", json={}, headers={"Origin": own})
    assert ok.status == 200
    cases = [
        ("POST", {"Content-Type": "text/plain"}, 415, "application/json"),
        ("POST", {"Content-Type": "application/x-www-form-urlencoded"}, 415, "application/json"),
        ("POST", {"Content-Type": "application/json", "Origin": "http://evil.example"}, 403, "cross-origin"),
        ("DELETE", {"Origin": "http://evil.example"}, 403, "cross-origin"),
        ("POST", {"Content-Type": "application/json", "Origin": "null"}, 403, "cross-origin"),
        ("GET", {"Host": "rebind.attacker.example"}, 421, "Host"),
        ("POST", {"Content-Type": "application/json", "Host": "rebind.attacker.example:80"}, 421, "Host"),
    ]
    for method, headers, status, why in cases:
        path = "/streams/x" if method == "DELETE" else "/streams"
        r = await guarded.request(method, path, data=b"{}", headers=headers)
        assert r.status == status, (method, headers, r.status)
        assert why in (await r.json())["error"]
    for host in ("localhost:8080", "127.0.0.1", "[::1]:8080", "cams.example.lan:8080"):
        assert (await guarded.get("/streams", headers={"Host": host})).status == 200, host
    app = guarded.server.app
    assert metric(app, "streamer_errors_total", kind="cross_site") == 5
    assert metric(app, "streamer_errors_total", kind="bad_host") == 2


# --- 10 and 4: camera failures told apart, and opened independently --------------------------------


class TinyServer:
    """A loopback TCP server answering each connection with ``reply`` (None: silent) and holding it."""

    def __init__(self, reply: bytes | None) -> None:
        self.reply = reply
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.conns: list[socket.socket] = []
        self._stop = False
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)
            if self.reply is not None:
                conn.settimeout(2)
                try:
                    conn.recv(4096)
                    conn.sendall(self.reply)
                except OSError:
                    pass

    def close(self) -> None:
        self._stop = True
        self.sock.close()
        for c in self.conns:
            c.close()


@pytest.fixture
def servers() -> Iterator[list[TinyServer]]:
    made: list[TinyServer] = []
    yield made
    for s in made:
        s.close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_camera_failures_say_which(servers: list[TinyServer]) -> None:
    silent = TinyServer(None)
    html = TinyServer(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n<html>")
    auth = TinyServer(b'RTSP/1.0 401 Unauthorized\r\nCSeq: 1\r\nWWW-Authenticate: Basic realm="c"\r\n\r\n')
    garbage = TinyServer(b"\x00\x01garbage\r\n\r\n")
    ok_rtsp = TinyServer(b"RTSP/1.0 200 OK\r\nCSeq: 1\r\nContent-Type: application/sdp\r\n\r\n")
    servers += [silent, html, auth, garbage, ok_rtsp]
    cases = [
        (f"rtsp://127.0.0.1:{_closed_port()}/x", "camera unreachable"),  # refused and silent alike (issue 34)
        (f"rtsp://127.0.0.1:{silent.port}/x", "camera unreachable"),
        (f"http://127.0.0.1:{html.port}/cam", "not a camera"),
        (f"rtsp://127.0.0.1:{auth.port}/x", "needs credentials (RTSP 401)"),
        (f"rtsp://127.0.0.1:{garbage.port}/x", "not an RTSP server"),
        (f"rtsp://127.0.0.1:{html.port}/x", "not an RTSP server"),
    ]
    for url, why in cases:
        with pytest.raises(SourceUnavailable, match=why.replace("(", r"\(").replace(")", r"\)")):
            probe(url, 1.0)
    assert probe(f"rtsp://127.0.0.1:{ok_rtsp.port}/x", 1.0) is None
    note = probe(f"rtsp://admin:S3cret@127.0.0.1:{auth.port}/x", 1.0)
    assert note is not None and "did not accept the credentials" in note and "S3cret" not in note


async def test_a_silent_camera_does_not_hold_up_other_sources(servers: list[TinyServer]) -> None:
    silent = TinyServer(None)
    servers.append(silent)
    metrics = Metrics()
    defaults = SourcesDefaults(open_timeout_s=20.0, read_timeout_s=20.0, reconnect_initial_s=5.0)
    stuck = CaptureSource(
        SourceConfig(id="stuck", url=f"rtsp://127.0.0.1:{silent.port}/x"), defaults, metrics
    )
    good = CaptureSource(SourceConfig(id="good", file=str(CLIP)), defaults, metrics)
    stuck_frames = stuck.frames()
    first = asyncio.ensure_future(stuck_frames.__anext__())
    await wait_for(lambda: len(silent.conns) > 0, 10, "the silent camera to be connected to")
    t0 = time.monotonic()
    frames = good.frames()
    try:
        # with OpenCV's open lock held by the silent camera, this took open_timeout_s (20 s)
        await asyncio.wait_for(frames.__anext__(), 10)
        assert time.monotonic() - t0 < 10
        assert not first.done()
    finally:
        first.cancel()
        await good.close()
        await stuck.close()
        await frames.aclose()
