"""A real RTSP camera (GStreamer rtsp-server in its own process): read, cut off, reconnect."""

from __future__ import annotations

import pytest

from streamer.web.keys import PIPELINE
from tests.conftest import RtspServer, metric, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.system]

FAST_RECONNECT = {
    "reconnect_initial_s": 0.3,
    "reconnect_max_s": 1.0,
    "read_timeout_s": 2.0,
    "open_timeout_s": 3.0,
}


async def test_rtsp_camera_drops_and_comes_back(make_app, rtsp_server: RtspServer) -> None:
    client = await make_app(source_defaults=FAST_RECONNECT)
    app = client.server.app
    # added through the API, as a user would; credentials in the URL must not come back
    url = rtsp_server.url.replace("rtsp://", "rtsp://viewer:hunter2@")
    r = await client.post("/streams", json={"id": "cam", "url": url})
    assert r.status == 201, await r.text()
    assert "hunter2" not in await r.text()
    stream = app[PIPELINE].streams["cam"]

    await wait_for(
        lambda: stream.source.state.up and stream.detections is not None and len(stream.detections.faces) > 0,
        60,
        "camera up and faces detected",
    )
    assert metric(app, "streamer_stream_up", stream="cam") == 1
    frames_before = metric(app, "streamer_frames_in_total", stream="cam")
    assert frames_before > 0

    rtsp_server.stop()  # the camera goes away
    await wait_for(lambda: not stream.source.state.up, 20, "the stream to be marked down")
    assert metric(app, "streamer_stream_up", stream="cam") == 0
    listed = (await (await client.get("/streams")).json())["streams"][0]
    assert listed["up"] is False and listed["error"]
    assert "hunter2" not in str(listed)
    await wait_for(
        lambda: metric(app, "streamer_source_reconnects_total", stream="cam") >= 2,
        20,
        "reconnect attempts while the camera is down",
    )

    rtsp_server.start()  # and comes back on the same address
    await wait_for(lambda: stream.source.state.up, 30, "the stream to come back up")
    await wait_for(
        lambda: metric(app, "streamer_frames_in_total", stream="cam") > frames_before + 30,
        20,
        "frames after the reconnect",
    )
    assert metric(app, "streamer_stream_up", stream="cam") == 1
    assert metric(app, "streamer_errors_total", kind="source") >= 1
    metrics_text = await (await client.get("/metrics")).text()
    assert "hunter2" not in metrics_text
