"""WebRTC in and out: a real aiortc client, and a real headless Chromium on the real page."""

from __future__ import annotations

import asyncio
from pathlib import Path

import cv2
import numpy as np
import pytest
from aiortc import RTCSessionDescription, VideoStreamTrack
from av import VideoFrame

from streamer.track.scene import SceneWatch
from streamer.web.keys import PIPELINE
from tests.annotations import green_pixels
from tests.conftest import CLIP, loopback_peer, metric, wait_for
from tests.support.browser import GREEN_IN_VIDEO, Browser
from tests.support.media import read_frames, write_y4m

pytestmark = pytest.mark.slow


class ClipTrack(VideoStreamTrack):
    """Sends the given frames in a loop at 30 fps, as a camera would."""

    def __init__(self, frames: list[np.ndarray]) -> None:
        super().__init__()
        self.frames = frames
        self.sent = 0

    async def recv(self) -> VideoFrame:
        pts, time_base = await self.next_timestamp()
        frame = VideoFrame.from_ndarray(self.frames[self.sent % len(self.frames)], format="rgb24")
        frame.pts, frame.time_base = pts, time_base
        self.sent += 1
        return frame


@pytest.fixture(scope="module")
def face_frames() -> list[np.ndarray]:
    """A face in every frame, looped back and forth: no scene cut, not even at the loop's end.

    (A cut ends every track and drops answers for frames before it. A loop that cut every 0.3 to
    0.7 s, as one with the clip's cut at frame 211 did, showed no box at all on a machine whose
    detector answered later than that.)"""
    frames = read_frames(CLIP, 210)[90::3]  # between the clip's cuts at frames 82 and 211
    assert len(frames) == 40
    loop = frames + frames[-2:0:-1]
    watch = SceneWatch()
    assert not [i for i, f in enumerate(loop * 2) if watch.is_cut(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY))]
    return loop


async def test_aiortc_client_gets_its_video_back_annotated(make_app, face_frames) -> None:
    client = await make_app()
    app = client.server.app
    pipeline = app[PIPELINE]
    pc = loopback_peer()
    sender = ClipTrack(face_frames)
    pc.addTrack(sender)
    received: list[np.ndarray] = []
    readers: list[asyncio.Task[None]] = []

    @pc.on("track")
    def on_track(track) -> None:
        async def read() -> None:
            while True:
                received.append((await track.recv()).to_ndarray(format="rgb24"))
                del received[:-50]

        readers.append(asyncio.ensure_future(read()))

    try:
        await pc.setLocalDescription(await pc.createOffer())
        r = await client.post("/offer", json={"sdp": pc.localDescription.sdp, "type": "offer"})
        assert r.status == 200, await r.text()
        answer = await r.json()
        await pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], answer["type"]))
        stream_id = answer["stream"]
        assert stream_id in pipeline.streams

        await wait_for(
            lambda: any(green_pixels(f) > 300 for f in received[-10:]),
            90,
            lambda: (
                f"annotated frames back from the service (connection {pc.connectionState}, "
                f"ICE {pc.iceConnectionState}, sent {sender.sent}, received {len(received)}, "
                f"frames in {metric(app, 'streamer_frames_in_total', stream=stream_id):g}, "
                f"out {metric(app, 'streamer_frame_latency_seconds_count', stream=stream_id):g}, "
                f"detected {getattr(pipeline.streams.get(stream_id), 'detections', None) is not None})"
            ),
        )
        stream = pipeline.streams[stream_id]
        # the faces come from tracks (the last detection round may have looked only where something
        # moved, and found no face there)
        await wait_for(lambda: bool(stream.stage.faces), 30, "tracked faces on the stream")
        assert stream.detections is not None
        assert received[-1].shape[:2] == face_frames[0].shape[:2]
        # and frames keep coming in and going out (on a loaded machine the first ones come slowly)
        await wait_for(
            lambda: (
                metric(app, "streamer_frames_in_total", stream=stream_id) > 10
                and metric(app, "streamer_frame_latency_seconds_count", stream=stream_id) > 10
            ),
            30,
            "more than 10 frames in and out",
        )
        assert metric(app, "streamer_webrtc_peers") == 1
    finally:
        await pc.close()
        for t in readers:
            t.cancel()
    # the peer said goodbye: its stream and connection are released
    await wait_for(lambda: stream_id not in pipeline.streams, 30, "the peer's stream to be removed")
    assert metric(app, "streamer_webrtc_peers") == 0


@pytest.mark.system
async def test_chromium_page_camera_and_watch(make_app, chromium: str, face_frames, tmp_path: Path) -> None:
    y4m = write_y4m(face_frames, tmp_path / "camera.y4m", fps=10)
    # with an API token set, as when exposed beyond loopback: the page takes it from the URL fragment
    token = "page-token-0123456789"
    # (the worker at the test's own niceness: on a machine loaded by other tests a niced worker can
    # detect next to nothing for a minute, and the page then shows video without a box)
    client = await make_app(
        server={"api_token": token},
        sources=[{"id": "clip", "file": str(CLIP), "loop": True}],
        pipeline={"worker_nice": 0},
    )
    app = client.server.app
    pipeline = app[PIPELINE]
    url = str(client.make_url("/")) + f"#token={token}"
    async with Browser(chromium, tmp_path / "profile", y4m) as browser:
        await browser.goto(url)
        # 1. the user's own camera, annotated, back in the same page
        await browser.eval("document.getElementById('start').click()")
        last = await browser.poll(GREEN_IN_VIDEO % "document.getElementById('annotated')", lambda v: v > 300)
        await browser.screenshot(tmp_path / "page-camera.png")
        assert last > 300, f"no annotated frame in the page (green={last}); log: {browser.log[-5:]}"
        peers = [s for s in pipeline.streams if s.startswith("webrtc-")]
        assert len(peers) == 1 and pipeline.streams[peers[0]].detections is not None
        status = await browser.eval("document.getElementById('mine-status').textContent")
        assert peers[0] in status

        # 2. the configured source's card says it is up; watch it over WebRTC from there
        card = (
            "[...document.querySelectorAll('.card')]"
            ".find(c => c.querySelector('h3').textContent.startsWith('clip'))"
        )
        assert (
            await browser.poll(f"{card}?.querySelector('.badge')?.textContent", lambda v: v == "up", 10)
            == "up"
        )
        await wait_for(lambda: pipeline.streams["clip"].detections is not None, 60, "clip detections")
        await browser.eval(f"{card}.querySelector('.watch').click()")
        last = await browser.poll(GREEN_IN_VIDEO % f"{card}.querySelector('video')", lambda v: v > 300)
        await browser.screenshot(tmp_path / "page-watch.png")
        if last <= 300:  # what the stream was doing, for a failure seen once on a loaded machine
            streams = (await (await client.get("/streams")).json())["streams"]
            info = next(s for s in streams if s["id"] == "clip")
            raise AssertionError(f"the watched stream showed no annotated frame (green={last}): {info}")
        # its card lists the tracks, and its face count is the list's, read at the same moment
        # (it was the 2-second /streams poll's: "0 faces" beside a boxed, listed face)
        listed = f"{card}.querySelectorAll('.tracks li').length"
        assert await browser.poll(listed, lambda n: n > 0, 30) > 0
        n, meta = await browser.eval(f"[{listed}, {card}.querySelector('.meta').textContent]")
        assert f" · {n} face{'' if n == 1 else 's'}" in meta, (n, meta)
        assert metric(app, "streamer_webrtc_peers") == 2
        assert metric(app, "streamer_errors_total", kind="unauthorized") == 0
