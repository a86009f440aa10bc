"""Issue 34, web items 5, 9 and 11: hostile text in the API and in the log, tokens (6 and 7:
test_hardening_ids.py).

The app here is the real one (routes, guard, outputs) with its pipeline not started: every
request below is answered before a source would be opened.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest
from aiohttp.test_utils import TestClient, TestServer

from streamer.config import load_config
from streamer.web.app import create_app
from streamer.web.keys import PIPELINE
from tests.conftest import metric

TOKEN = "correct-horse-battery-staple"


@pytest.fixture
async def api() -> AsyncIterator[Callable[..., object]]:
    clients: list[TestClient] = []

    async def make(**overrides: object) -> TestClient:
        overrides.setdefault("demo", {"enabled": False})
        app = create_app(load_config(None, overrides, environ={}))
        app.on_startup.clear()  # no worker, no sources: the answers come before any of that
        app[PIPELINE].reserved = app[PIPELINE].max_streams  # a valid camera gets 429, never opened
        client = TestClient(TestServer(app, host="127.0.0.1"))
        await client.start_server()
        clients.append(client)
        return client

    yield make
    for c in clients:
        await c.close()


# --- 5: log forging --------------------------------------------------------------------------------

FORGED = "rtsp://cam/x\r\n2026-01-01 00:00:00,000 ERROR streamer: disk on fire"


async def test_control_characters_in_urls_and_ids_are_refused(api) -> None:
    client = await api()
    app = client.server.app
    cases = [
        {"id": "cam", "url": FORGED},
        {"id": "cam", "url": "rtsp://cam/x\x1b[2J"},
        {"id": "cam\r\nERROR", "url": "rtsp://cam/x"},
        {"id": "cam\n", "url": "rtsp://cam/x"},  # item 6: "$" matched before a final newline
    ]
    for body in cases:
        r = await client.post("/streams", json=body)
        assert r.status == 400, body
        assert "control characters" in (await r.json())["error"], body
    assert metric(app, "streamer_errors_total", kind="bad_source") == len(cases)
    r = await client.post("/streams", json={"id": "cam", "url": "rtsp://cam/x"})
    assert r.status == 429  # a clean one gets as far as the stream limit


# --- 9: URL length ---------------------------------------------------------------------------------


async def test_long_urls_are_refused_with_the_limit_named(api) -> None:
    client = await api(server={"max_url_chars": 1000})
    app = client.server.app
    r = await client.post("/streams", json={"id": "big", "url": "rtsp://cam/" + "a" * 250_000})
    assert r.status == 400
    error = (await r.json())["error"]
    assert "250011 characters" in error and "limit is 1000" in error and "max_url_chars" in error
    assert len(await r.read()) < 200  # the answer does not echo the URL
    r = await client.post("/streams", json={"id": "ok", "url": "rtsp://cam/" + "a" * 980})
    assert r.status == 429  # within the limit: as far as the stream limit
    assert metric(app, "streamer_errors_total", kind="bad_source") == 1
    assert load_config(None, environ={}).server.max_url_chars == 2048


# --- 11: tokens: guessing, and ?token= only where a browser needs it ------------------------------


async def test_wrong_tokens_are_rate_limited_per_address(api) -> None:
    client = await api(server={"api_token": TOKEN, "auth_failures_per_minute": 5})
    app = client.server.app
    wrong = {"Authorization": "Bearer wrong-token-wrong-token"}
    statuses = [(await client.get("/streams", headers=wrong)).status for _ in range(8)]
    assert statuses == [401] * 5 + [429] * 3
    # while refused, even the right token is not compared: a guess cannot be confirmed
    r = await client.get("/streams", headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status == 429 and "too many wrong API tokens" in (await r.json())["error"]
    assert (await client.get("/healthz")).status in (200, 503)  # open paths are unaffected
    assert metric(app, "streamer_errors_total", kind="unauthorized") == 5
    assert metric(app, "streamer_errors_total", kind="auth_rate_limited") == 4


async def test_query_token_only_on_video_and_event_gets(api) -> None:
    client = await api(server={"api_token": TOKEN})
    q = f"?token={TOKEN}"
    for method, path in (
        ("GET", "/streams"),
        ("POST", "/streams"),
        ("DELETE", "/streams/cam"),
        ("POST", "/offer"),
        ("POST", "/streams/cam/offer"),
    ):
        r = await client.request(method, path + q, json={"url": "rtsp://cam/x"})
        assert r.status == 401, (method, path)
    for path in ("/streams/cam/mjpeg", "/streams/cam/events"):
        r = await client.get(path + q)
        assert r.status == 404, path  # past the token check: there is no such stream
    r = await client.get("/streams", headers={"X-API-Token": TOKEN})
    assert r.status == 200


def test_the_page_sends_the_query_token_only_for_video_and_events() -> None:
    from streamer.web.routes import STATIC

    lines = [line for f in sorted(STATIC.glob("*.js")) for line in f.read_text().splitlines()]
    uses = [line for line in lines if "withToken(" in line and "function withToken" not in line]
    assert uses and all("/mjpeg`" in u or "/events`" in u for u in uses), uses


async def test_a_trickled_body_gets_408_within_the_deadline(api) -> None:
    """Headers complete, body never finished: the handler gives up after header_timeout_s."""
    import asyncio
    import time

    client = await api(server={"header_timeout_s": 1.0})
    reader, writer = await asyncio.open_connection("127.0.0.1", client.server.port)
    writer.write(
        b"POST /streams HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b'Content-Length: 100\r\n\r\n{"url": '
    )
    await writer.drain()
    t = time.monotonic()
    head = await asyncio.wait_for(reader.read(4096), 10)
    assert head.startswith(b"HTTP/1.1 408") and b"not received within 1s" in head, head
    assert time.monotonic() - t < 5
    assert metric(client.server.app, "streamer_errors_total", kind="http_408") == 1
    writer.close()
