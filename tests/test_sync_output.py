"""``sync_output``: a stream holds the frames that come while its detector works, and each goes out
with the boxes as of its own content; a detector that never answers does not stall the video."""

from __future__ import annotations

import asyncio
import contextlib
import time
from concurrent.futures import ThreadPoolExecutor

import aiortc  # noqa: F401  (before TensorFlow: pylibsrtp segfaults otherwise)
import numpy as np

from streamer.config import PipelineConfig
from streamer.inference.engine import FrameResult
from streamer.metrics import Metrics
from streamer.outputs.hub import AnnotatedFrame
from streamer.pipeline.batcher import DetectionBatcher
from streamer.pipeline.manager import sync_hold_s
from streamer.pipeline.stream import Stream
from streamer.types import BatchTimings, Box, Face, Frame
from tests.conftest import wait_for
from tests.test_units import QueueSource

FACE = Box(20, 20, 59, 59, 1.0)  # what the detector finds on every frame it is given
TEXTURE = np.random.default_rng(0).integers(0, 255, (96, 96, 3), dtype=np.uint8)


class GatedPool:
    """A detector that answers one frame per ``answer()`` the test calls (never, if it does not)."""

    detect_max_side = 640

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.permits = asyncio.Semaphore(0)

    def answer(self) -> None:
        self.permits.release()

    async def run(self, images, skip=None, regions=None, streams=None):
        self.batches.append([int(im[0, 0, 0]) for im in images])
        await self.permits.acquire()
        faces = (Face(FACE),)
        return [FrameResult(faces=faces) for _ in images], BatchTimings(0.0, 0.0, len(images), len(images))


def image(i: int) -> np.ndarray:
    img = TEXTURE.copy()
    img[0, 0, 0] = i  # the pool reads which frame it was given here
    return img


class Rig:
    def __init__(self, hold_s: float) -> None:
        self.pool = GatedPool()
        self.metrics = Metrics()
        self.batcher = DetectionBatcher(self.pool, self.metrics, max_batch=1, max_wait_s=0.0)  # type: ignore[arg-type]
        self.render = ThreadPoolExecutor(1)
        self.src = QueueSource("s")
        self.stream = Stream(self.src, self.batcher, self.metrics, self.render, sync_max_hold_s=hold_s)  # type: ignore[arg-type]
        self.shown: dict[int, list[Box]] = {}  # frame index -> boxes it went out with
        self.order: list[int] = []
        self.stream.hub.taps.append(self.tap)

    def tap(self, item: AnnotatedFrame) -> None:
        self.order.append(item.frame.index)
        d = item.detections
        self.shown[item.frame.index] = [f.box for f in d.faces] if d is not None else []

    def start(self) -> None:
        self.batcher.start()
        self.stream.start()

    def put(self, i: int) -> None:
        self.src.queue.put_nowait(Frame("s", i, image(i), time.time()))

    def sample(self, name: str, **labels: str) -> float:
        return self.metrics.registry.get_sample_value(name, {"stream": "s", **labels}) or 0.0

    async def close(self) -> None:
        for _ in range(8):  # (a frame still at the detector at the end is answered)
            self.pool.answer()
        await self.stream.stop()
        await self.batcher.stop()
        self.render.shutdown()


@contextlib.asynccontextmanager
async def frame_0_at_the_detector(hold_s: float):
    """A started rig whose frame 0 is at the (unanswered) detector; closed on the way out."""
    rig = Rig(hold_s)
    rig.start()
    try:
        rig.put(0)
        await wait_for(lambda: rig.pool.batches == [[0]], 5, "frame 0 at the detector")
        yield rig
    finally:
        await rig.close()


async def test_with_sync_output_a_face_is_boxed_on_the_frame_its_late_detection_was_taken_from() -> None:
    async with frame_0_at_the_detector(hold_s=60.0) as rig:
        for i in (1, 2, 3):
            rig.put(i)
        await wait_for(lambda: len(rig.stream._held) == 3, 5, "frames 1-3 held behind it")
        assert rig.order == []  # nothing goes out before frame 0's answer
        rig.pool.answer()
        await wait_for(lambda: rig.order == [0, 1, 2], 5, "frames 0-2 out, in order")
        # frame 0's detection is on frame 0 and the frames after it, tracked forward
        assert all(rig.shown[i] and rig.shown[i][0].iou(FACE) > 0.5 for i in (0, 1, 2)), rig.shown
        # the newest held frame went to the (free) detector and is held for its own answer
        assert rig.pool.batches == [[0], [3]]
        assert rig.sample("streamer_output_delay_seconds") > 0
        assert rig.sample("streamer_sync_released_total") == 0
        rig.pool.answer()
        await wait_for(lambda: rig.order == [0, 1, 2, 3], 5, "frame 3 out")
        assert rig.shown[3] and rig.shown[3][0].iou(FACE) > 0.5


async def test_without_sync_output_frames_go_out_at_once_and_the_answer_lands_later() -> None:
    async with frame_0_at_the_detector(hold_s=0.0) as rig:
        for i in (1, 2, 3):
            rig.put(i)
        await wait_for(lambda: rig.order == [0, 1, 2, 3], 5, "frames 0-3 out while the detector works")
        assert all(not rig.shown[i] for i in range(4))  # shown before any detection: no box
        rig.pool.answer()
        await wait_for(lambda: rig.pool.batches == [[0], [3]], 5, "the frame shown last sent")
        rig.put(4)
        await wait_for(lambda: 4 in rig.shown, 5, "frame 4 out")
        assert rig.shown[4] and rig.shown[4][0].iou(FACE) > 0.5  # frame 0's answer, on a later frame
        assert rig.sample("streamer_sync_released_total") == 0


async def test_the_hold_cap_lets_frames_go_when_the_detector_never_answers() -> None:
    async with frame_0_at_the_detector(hold_s=0.05) as rig:
        await asyncio.sleep(0.1)  # past the cap: the next frame to come lets the held ones go
        for i in (1, 2, 3):
            rig.put(i)
        await wait_for(lambda: rig.order == [0, 1, 2, 3], 5, "every frame out, in order, unanswered")
        assert rig.sample("streamer_sync_released_total") >= 2  # frame 0 and the one that came past the cap
        assert rig.pool.batches == [[0]]  # (the detector is still busy: nothing else sent)


def test_sync_output_auto_holds_cameras_and_files_not_browser_cameras() -> None:
    auto = PipelineConfig()
    assert sync_hold_s(auto, "rtsp") == sync_hold_s(auto, "file") == auto.sync_max_hold_s > 0
    assert sync_hold_s(auto, "webrtc") == 0
    assert sync_hold_s(PipelineConfig(sync_output="on"), "webrtc") > 0
    assert sync_hold_s(PipelineConfig(sync_output="off"), "rtsp") == 0
