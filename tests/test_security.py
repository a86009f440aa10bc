"""Security: loopback by default, a token for changes off loopback, allowed schemes, limits, no leaks."""

from __future__ import annotations

import logging

import pytest
from aiortc import RTCPeerConnection

from streamer.config import ConfigError, load_config
from streamer.web.guard import RateLimiter, token_ok
from streamer.web.keys import PIPELINE
from tests.conftest import CLIP, loopback_peer, metric, wait_for

TOKEN = "correct-horse-battery-staple"


def test_exposing_the_service_needs_a_token() -> None:
    assert load_config(None, environ={}).server.host == "127.0.0.1"
    with pytest.raises(ConfigError, match="api_token"):
        load_config(None, {"server": {"host": "0.0.0.0"}}, environ={})
    with pytest.raises(ConfigError, match="api_token"):
        load_config(None, {"server": {"host": "0.0.0.0", "api_token": "short"}}, environ={})
    c = load_config(None, {"server": {"host": "0.0.0.0"}}, environ={"STREAMER_SERVER_API_TOKEN": TOKEN})
    assert c.server.api_token == TOKEN
    with pytest.raises(ConfigError, match="schemes not allowed"):
        load_config(None, {"server": {"allowed_schemes": ["rtsp", "file"]}}, environ={})


def test_token_comparison_and_rate_limiter() -> None:
    assert token_ok("", "anything") and token_ok(TOKEN, TOKEN)
    assert not token_ok(TOKEN, "") and not token_ok(TOKEN, TOKEN[:-1]) and not token_ok(TOKEN, TOKEN + "x")
    rl = RateLimiter(per_minute=2, max_keys=2)
    assert rl.allow("a", 0) and rl.allow("a", 1) and not rl.allow("a", 2)
    assert rl.allow("b", 2)
    assert rl.allow("a", 61.5)  # the window moved on
    rl.allow("c", 62)
    assert len(rl._events) == 2  # bounded memory


async def _offer(pc: RTCPeerConnection) -> dict[str, str]:
    pc.addTransceiver("video", direction="recvonly")
    await pc.setLocalDescription(await pc.createOffer())
    return {"sdp": pc.localDescription.sdp, "type": "offer"}


@pytest.mark.slow
async def test_token_guards_changes_and_video_but_not_health(make_app) -> None:
    client = await make_app(
        server={"api_token": TOKEN}, sources=[{"id": "clip", "file": str(CLIP), "loop": True}]
    )
    app = client.server.app
    for method, path in (
        ("POST", "/streams"),
        ("DELETE", "/streams/clip"),
        ("POST", "/offer"),
        ("POST", "/streams/clip/offer"),
        ("GET", "/streams/clip/mjpeg"),
        ("GET", "/streams"),
    ):
        for headers in ({}, {"Authorization": "Bearer wrong-token-wrong-token"}):
            r = await client.request(method, path, headers=headers, json={"url": "rtsp://x/y"})
            assert r.status == 401, (method, path, headers)
            assert "token" in (await r.json())["error"]
    assert metric(app, "streamer_errors_total", kind="unauthorized") == 12
    for path in ("/", "/healthz", "/metrics", "/static/app.js"):
        assert (await client.get(path)).status == 200, path
    assert "clip" in app[PIPELINE].streams  # nothing changed
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert (await client.get("/streams", headers=auth)).status == 200
    assert (await client.get("/streams", headers={"X-API-Token": TOKEN})).status == 200
    r = await client.get(f"/streams/clip/mjpeg?token={TOKEN}")  # for <img> tags, which cannot send headers
    assert r.status == 200
    r.close()
    r = await client.post("/streams", headers=auth, json={"id": "cam", "url": "rtsp://127.0.0.1:9/x"})
    assert r.status == 201
    assert (await client.delete("/streams/cam", headers=auth)).status == 204


@pytest.mark.slow
async def test_limits_answer_429_with_a_metric(make_app) -> None:
    client = await make_app(
        server={"max_streams": 2, "max_peers": 1, "offers_per_minute": 3, "allowed_schemes": ["rtsp"]},
        sources=[{"id": "clip", "file": str(CLIP), "loop": True}],
    )
    app = client.server.app
    r = await client.post("/streams", json={"url": "http://127.0.0.1:9/mjpeg"})
    assert r.status == 400 and "not allowed" in (await r.json())["error"]
    assert (await client.post("/streams", json={"id": "b", "url": "rtsp://127.0.0.1:9/x"})).status == 201
    r = await client.post("/streams", json={"id": "c", "url": "rtsp://127.0.0.1:9/x"})
    assert r.status == 429 and "limit 2" in (await r.json())["error"]
    assert metric(app, "streamer_errors_total", kind="too_many_streams") == 1

    pcs = [loopback_peer() for _ in range(4)]
    try:
        first = await client.post("/streams/clip/offer", json=await _offer(pcs[0]))
        assert first.status == 200
        second = await client.post("/streams/clip/offer", json=await _offer(pcs[1]))
        assert second.status == 429 and "limit 1" in (await second.json())["error"]
        third = await client.post("/streams/clip/offer", json=await _offer(pcs[2]))
        assert third.status == 429
        fourth = await client.post("/streams/clip/offer", json=await _offer(pcs[3]))
        assert fourth.status == 429 and "a minute" in (await fourth.json())["error"]
    finally:
        for pc in pcs:
            await pc.close()
    assert metric(app, "streamer_errors_total", kind="too_many_peers") == 2
    assert metric(app, "streamer_errors_total", kind="rate_limited") == 1


@pytest.mark.slow
async def test_camera_credentials_never_leak_and_big_frames_are_refused(
    make_app,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    secret = "pa55word-XYZ"
    client = await make_app(
        sources=[
            {"id": "cam", "url": f"rtsp://admin:{secret}@127.0.0.1:9/live"},
            {"id": "big", "file": str(CLIP), "loop": True},
        ],
        source_defaults={"reconnect_initial_s": 0.2, "reconnect_max_s": 0.4, "max_frame_side": 320},
    )
    app = client.server.app
    streams = app[PIPELINE].streams
    await wait_for(lambda: metric(app, "streamer_source_reconnects_total", stream="cam") >= 2, 30, "retries")
    await wait_for(lambda: streams["big"].source.state.error is not None, 30, "the big-frame error")
    texts = [await (await client.get(p)).text() for p in ("/streams", "/metrics", "/")]
    assert all(secret not in t for t in texts)
    assert secret not in caplog.text and "admin" not in caplog.text
    assert "rtsp://***@127.0.0.1:9/live" in texts[0]
    assert "exceed max_frame_side 320" in streams["big"].source.state.error
    await wait_for(
        lambda: metric(app, "streamer_frames_dropped_total", stream="big", reason="too_large") > 30,
        30,
        "every too-large frame to be counted as dropped",
    )
    assert metric(app, "streamer_frames_in_total", stream="big") == 0
