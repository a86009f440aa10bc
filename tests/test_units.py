"""Fast checks of the pieces: hub fan-out, crops, overlay, URLs, inputs, a stream's frame counting."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

import aiortc  # noqa: F401  (before TensorFlow: pylibsrtp segfaults otherwise)
import numpy as np
import pytest

from streamer.crop import crop_box, crop_face, whole_image_box
from streamer.detect import BadImageError, as_rgb
from streamer.inference.engine import scale_for_detection, unscale_box
from streamer.metrics import Metrics
from streamer.outputs.hub import AnnotatedFrame, FrameHub
from streamer.overlay import draw_faces, face_caption
from streamer.pipeline.batcher import DetectionBatcher
from streamer.pipeline.stream import Stream
from streamer.sources.base import SourceState, redact_url
from streamer.types import Box, Face, Frame, Label
from tests.annotations import green_pixels
from tests.conftest import wait_for
from tests.test_batcher import FakePool, frame


async def test_hub_slow_consumer_skips_to_newest_and_counts() -> None:
    m = Metrics()
    hub = FrameHub("s", m)
    sub = hub.subscribe()
    img = np.zeros((2, 2, 3), np.uint8)
    await hub.publish(AnnotatedFrame(frame("s", 1, 0), img, None, hub.next_seq()))
    assert (await sub.next()).seq == 1  # type: ignore[union-attr]
    for i in range(2, 6):
        await hub.publish(AnnotatedFrame(frame("s", i, 0), img, None, hub.next_seq()))
    item = await sub.next()
    assert item is not None and item.seq == 5
    assert (
        m.registry.get_sample_value(
            "streamer_frames_dropped_total", {"stream": "s", "reason": "slow_consumer"}
        )
        == 3
    )
    await hub.close()
    assert await sub.next() is None


def test_crop_is_square_expanded_and_clamped() -> None:
    b = Box(100, 200, 119, 239, 1.0)  # 20 wide, 40 high
    assert crop_box(b, 1000, 1000, margin=0.25) == (80, 190, 140, 250)  # square, +25% of 40 each side
    assert crop_box(b, 130, 240, 0.25) == (80, 190, 130, 240)  # clamped to the image
    img = np.zeros((300, 200, 3), np.uint8)
    assert crop_face(img, b, (32, 24)).shape == (32, 24, 3)
    with pytest.raises(ValueError, match="outside"):
        crop_box(b, 50, 50)
    assert crop_box(whole_image_box(img), 200, 300) == (0, 0, 200, 300)


def test_detection_scaling_round_trip() -> None:
    img = np.zeros((720, 1280, 3), np.uint8)
    small, s = scale_for_detection(img, 640)
    assert small.shape == (360, 640, 3) and s == 0.5
    assert unscale_box(Box(100, 50, 149, 99, 1.0), s, 1280, 720) == Box(200, 100, 299, 199, 1.0)
    assert scale_for_detection(img, 0)[1] == 1.0


def test_overlay_draws_box_and_caption_without_touching_input() -> None:
    img = np.full((240, 320, 3), 40, np.uint8)
    face = Face(Box(100, 80, 179, 159, 1.05))
    out = draw_faces(img, [face])
    assert green_pixels(img) == 0
    assert green_pixels(out) > 300
    assert (out[80, 100:180] != 40).all(axis=-1).mean() > 0.9  # the top edge is drawn
    assert face_caption(face) == "face 1.05"
    labelled = Face(face.box, (Label("gender", "male", 0.93), Label("beard", "?", 0.51)))
    assert face_caption(labelled) == "male 0.93 | beard?"
    assert face_caption(Face(labelled.box, labelled.labels, track=7)) == "#7 male 0.93 | beard?"
    # legible at any size: a 1080p frame gets thicker lines than a 240p one
    big = draw_faces(np.full((1080, 1920, 3), 40, np.uint8), [Face(Box(400, 300, 799, 699, 1.0))])
    assert (big[300:306, 600] != 40).any(axis=-1).sum() >= 4


def test_captions_of_small_faces_are_small_and_do_not_cover_each_other() -> None:
    """A 1080p street: 50 px faces side by side with long captions, and a near 400 px face."""
    from streamer.overlay import layout

    labels = (Label("gender", "female", 0.99), Label("beard", "shaved", 0.97))
    small = [
        Face(Box(900 + 60 * k, 500 + 3 * k, 949 + 60 * k, 549 + 3 * k, 1.0), labels, track=k)
        for k in range(4)
    ]
    near = Face(Box(200, 400, 599, 799, 1.0), labels, track=9)
    placed = layout([*small, near], 1920, 1080)
    rects = [c.rect for _, c in placed]
    for i, a in enumerate(rects):
        for b in rects[i + 1 :]:
            assert not (a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]), (a, b)
    width = {f.track: c.width for f, c in placed}
    assert max(width[k] for k in range(4)) < 0.7 * width[9]
    out = draw_faces(np.full((1080, 1920, 3), 40, np.uint8), [*small, near])
    for _, c in placed:  # every plate is drawn where the layout put it
        assert (out[c.y - 1, c.x + 1 : c.x + c.width] != 40).any(axis=-1).mean() > 0.9


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("rtsp://admin:s3cret@10.0.0.5:554/live", "rtsp://***@10.0.0.5:554/live"),
        ("rtsp://10.0.0.5/live", "rtsp://10.0.0.5/live"),
        ("http://user@cam/mjpeg", "http://***@cam/mjpeg"),
    ],
)
def test_redact_url_hides_credentials(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_as_rgb_accepts_gray_and_rgba_and_rejects_junk() -> None:
    assert as_rgb(np.zeros((5, 6), np.uint8)).shape == (5, 6, 3)
    assert as_rgb(np.zeros((5, 6, 4), np.uint8)).shape == (5, 6, 3)
    for bad in (
        np.zeros((0, 5, 3), np.uint8),
        np.zeros((5, 5, 3), np.float32),
        np.zeros((5, 5, 2), np.uint8),
        np.zeros((5000, 10, 3), np.uint8),
    ):
        with pytest.raises(BadImageError):
            as_rgb(bad)


class QueueSource:
    """A source whose frames come when the test puts them."""

    kind = "file"

    def __init__(self, id: str) -> None:
        self.id = id
        self.state = SourceState()
        self.queue: asyncio.Queue[Frame | None] = asyncio.Queue()

    async def frames(self):
        while (f := await self.queue.get()) is not None:
            yield f

    async def close(self) -> None:
        self.queue.put_nowait(None)

    def describe(self) -> str:
        return "queue"


async def test_stream_counts_a_frame_shown_while_the_detector_was_busy_and_never_sent() -> None:
    """Frames 1 and 2 come while the detector works on frame 0: frame 1 is superseded before the
    detector is free, so it never goes there and is counted as skipped; frame 2 goes."""
    pool = FakePool(delay=0.5)
    b = DetectionBatcher(pool, Metrics(), max_batch=1, max_wait_s=0.0)  # type: ignore[arg-type]
    b.start()
    render = ThreadPoolExecutor(1)
    src = QueueSource("s")
    stream = Stream(src, b, Metrics(), render)  # type: ignore[arg-type]
    stream.start()
    skipped = lambda: stream.metrics.registry.get_sample_value(  # noqa: E731
        "streamer_frames_dropped_total", {"stream": "s", "reason": "detect_skipped"}
    )
    try:
        for i in range(3):
            src.queue.put_nowait(Frame("s", i, np.full((64, 64, 3), 10 + i, np.uint8), time.time()))
            if i == 0:
                await wait_for(lambda: pool.batches == [[10]], 5, "frame 0 at the detector")
        await wait_for(lambda: len(pool.batches) == 2, 5, "the next frame at the detector")
        assert pool.batches == [[10], [12]]
        assert skipped() == 1
    finally:
        await stream.stop()
        await b.stop()
        render.shutdown()


async def test_stream_sends_the_frame_shown_last_once_the_detector_is_free() -> None:
    """The detector answers between two frames: the frame shown last goes to it at once rather than
    the next one (a frame interval of idle detector later), and no frame goes twice."""
    pool = FakePool(delay=0.2)
    b = DetectionBatcher(pool, Metrics(), max_batch=1, max_wait_s=0.0)  # type: ignore[arg-type]
    b.start()
    render = ThreadPoolExecutor(1)
    src = QueueSource("s")
    stream = Stream(src, b, Metrics(), render)  # type: ignore[arg-type]
    stream.start()

    def put(i: int) -> None:
        src.queue.put_nowait(Frame("s", i, np.full((64, 64, 3), 10 + i, np.uint8), time.time()))

    try:
        put(0)
        await wait_for(lambda: pool.batches == [[10]], 5, "frame 0 at the detector")
        put(1)  # the detector is busy with frame 0: frame 1 is shown with the tracked boxes
        await wait_for(lambda: len(pool.batches) == 2, 5, "frame 1 at the detector without a frame 2")
        d = lambda: stream.detections  # noqa: E731
        await wait_for(lambda: d() is not None and d().frame_index == 1, 5, "frame 1's answer")
        await asyncio.sleep(0.3)
        assert pool.batches == [[10], [11]]  # frame 1's answer came: nothing is sent again
        skipped = stream.metrics.registry.get_sample_value(
            "streamer_frames_dropped_total", {"stream": "s", "reason": "detect_skipped"}
        )
        assert not skipped  # frame 1 went to the detector after all: not counted as skipped
        put(2)
        await wait_for(lambda: len(pool.batches) == 3, 5, "frame 2 at the detector")
        assert pool.batches[-1] == [12]
    finally:
        await stream.stop()
        await b.stop()
        render.shutdown()


async def test_a_stream_draws_only_while_something_shows_it() -> None:
    """Nobody watching: frames are published undrawn (tracking, counting and events go on); a viewer
    gets drawn frames from its first one, and when it leaves drawing stops again."""
    b = DetectionBatcher(FakePool(delay=0.01), Metrics(), max_batch=1, max_wait_s=0.0)  # type: ignore[arg-type]
    b.start()
    render = ThreadPoolExecutor(1)
    src = QueueSource("s")
    stream = Stream(src, b, Metrics(), render)  # type: ignore[arg-type]
    published: list[AnnotatedFrame] = []
    stream.hub.taps.append(published.append)
    stream.start()

    async def put(i: int) -> None:
        src.queue.put_nowait(Frame("s", i, np.full((64, 64, 3), 100, np.uint8), time.time()))
        await wait_for(lambda: len(published) == i + 1, 5, f"frame {i} published")

    try:
        for i in range(3):
            await put(i)
        assert stream.stage.faces  # the detector's face is tracked ...
        assert not any(p.drawn for p in published)  # ... and not drawn: nobody looks
        assert all(p.image is p.frame.image for p in published)
        sub = stream.hub.subscribe()
        await put(3)
        item = await asyncio.wait_for(sub.next(), 5)
        assert item is not None and item.frame.index == 3 and item.drawn
        assert not np.array_equal(item.image, item.frame.image)  # the tracked face's box
        sub.close()
        await put(4)
        assert not published[-1].drawn
    finally:
        await stream.stop()
        await b.stop()
        render.shutdown()


async def test_a_failing_late_plan_is_counted_and_the_stream_goes_on() -> None:
    pool = FakePool(delay=0.1)
    b = DetectionBatcher(pool, Metrics(), max_batch=1, max_wait_s=0.0)  # type: ignore[arg-type]
    b.start()
    render = ThreadPoolExecutor(1)
    src = QueueSource("s")
    m = Metrics()
    stream = Stream(src, b, m, render)  # type: ignore[arg-type]

    def broken(frame: Frame):
        raise RuntimeError("planner bug")

    stream.stage.plan_last = broken  # type: ignore[method-assign]
    stream.start()

    def put(i: int) -> None:
        src.queue.put_nowait(Frame("s", i, np.full((64, 64, 3), 10 + i, np.uint8), time.time()))

    try:
        put(0)
        put(1)  # shown while frame 0 is at the detector; its late plan fails when the answer comes
        await wait_for(
            lambda: m.registry.get_sample_value("streamer_errors_total", {"kind": "stream"}) == 1, 5, "error"
        )
        put(2)  # the next frame goes to the detector as usual
        await wait_for(lambda: len(pool.batches) == 2 and pool.batches[-1] == [12], 5, "frame 2 detected")
    finally:
        await stream.stop()
        await b.stop()
        render.shutdown()


async def test_a_closed_webrtc_viewer_no_longer_has_its_stream_drawn() -> None:
    from streamer.outputs.webrtc import AnnotatedTrack
    from streamer.web.peers import Peers

    hub = FrameHub("s", Metrics())
    peers = Peers([], Metrics())
    pc = peers.create()
    pc.addTrack(AnnotatedTrack(hub))
    assert hub.watched
    await peers.close(pc)
    assert not hub.watched
