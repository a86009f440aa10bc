"""Fast checks of the frame plumbing: the latest-frame slot and the detection batcher."""

from __future__ import annotations

import asyncio
import gc
import time
import weakref

import aiortc  # noqa: F401  (before TensorFlow: pylibsrtp segfaults otherwise)
import numpy as np

from streamer.inference.engine import FrameResult
from streamer.metrics import Metrics
from streamer.pipeline.batcher import DetectionBatcher
from streamer.pipeline.slot import LatestSlot
from streamer.types import BatchTimings, Box, Face, Frame


async def test_latest_slot_newest_wins_and_close_ends_readers() -> None:
    slot: LatestSlot[int] = LatestSlot()
    assert slot.put(1) is None
    assert slot.put(2) == 1  # the unread 1 is replaced and handed back for counting
    assert await slot.get() == 2
    reader = asyncio.create_task(slot.get())
    await asyncio.sleep(0)
    slot.close()
    assert await reader is None


class FakePool:
    """Records batches; answers one face per frame after a delay."""

    def __init__(self, delay: float = 0.05) -> None:
        self.batches: list[list[int]] = []
        self.streams: list[list[str]] = []  # each batch's images' streams (their proposal memories)
        self.delay = delay
        self.detect_max_side = 640

    async def run(self, images, skip=None, regions=None, streams=None):
        self.batches.append([int(im[0, 0, 0]) for im in images])
        self.streams.append(list(streams or []))
        await asyncio.sleep(self.delay)
        faces = (Face(Box(1, 1, 5, 5, 1.0)),)
        return [FrameResult(faces=faces) for _ in images], BatchTimings(
            self.delay, 0.0, len(images), len(images)
        )


def frame(stream: str, i: int, value: int) -> Frame:
    return Frame(stream, i, np.full((4, 4, 3), value, np.uint8), time.time())


async def test_batcher_batches_across_streams_and_counts_skipped_frames() -> None:
    m = Metrics()
    pool = FakePool()
    live = {"a", "b", "c"}
    b = DetectionBatcher(pool, m, max_batch=8, max_wait_s=0.5, active_streams=lambda: live)  # type: ignore[arg-type]
    got: list[tuple[str, int]] = []
    b.start()
    try:
        b.submit(frame("a", 1, 1), lambda d: got.append((d.stream, d.frame_index)))
        b.submit(frame("a", 2, 2), lambda d: got.append((d.stream, d.frame_index)))  # replaces a/1
        b.submit(frame("b", 1, 3), lambda d: got.append((d.stream, d.frame_index)))
        t0 = time.monotonic()
        b.submit(frame("c", 1, 4), lambda d: got.append((d.stream, d.frame_index)))
        for _ in range(100):
            if len(got) == 3:
                break
            await asyncio.sleep(0.01)
        # all three live streams had a frame: the batch left at once, not after max_wait
        assert time.monotonic() - t0 < 0.4
    finally:
        await b.stop()
    assert pool.batches == [[2, 3, 4]]
    assert pool.streams == [["a", "b", "c"]]
    assert sorted(got) == [("a", 2), ("b", 1), ("c", 1)]
    assert (
        m.registry.get_sample_value(
            "streamer_frames_dropped_total", {"stream": "a", "reason": "detect_skipped"}
        )
        == 1
    )
    assert m.registry.get_sample_value("streamer_detections_total", {"stream": "a"}) == 1


async def test_batcher_keeps_one_frame_in_flight_per_stream_and_respects_max_batch() -> None:
    m = Metrics()
    pool = FakePool(delay=0.1)
    b = DetectionBatcher(pool, m, max_batch=2, max_wait_s=0.01)  # type: ignore[arg-type]
    b.start()
    try:
        for s, v in (("a", 1), ("b", 2), ("c", 3)):
            b.submit(frame(s, 1, v), lambda d: None)
        await asyncio.sleep(0.03)
        b.submit(frame("a", 2, 5), lambda d: None)  # a/1 is in flight: this one waits
        await asyncio.sleep(0.4)
    finally:
        await b.stop()
    assert pool.batches[0] == [1, 2]
    assert all(len(x) <= 2 for x in pool.batches)
    assert sorted(v for x in pool.batches for v in x) == [1, 2, 3, 5]


class GatedPool(FakePool):
    """Answers a batch only when the test opens the gate: batches in flight are under test control."""

    def __init__(self) -> None:
        super().__init__(delay=0.0)
        self.gate: asyncio.Queue[None] = asyncio.Queue()
        self.answered = 0

    async def run(self, images, skip=None, regions=None, streams=None):
        self.batches.append([int(im[0, 0, 0]) for im in images])
        await self.gate.get()
        self.answered += 1
        faces = (Face(Box(1, 1, 5, 5, 1.0)),)
        return [FrameResult(faces=faces) for _ in images], BatchTimings(0.0, 0.0, len(images), len(images))

    async def answer_one(self) -> None:
        """Let one batch through and wait until the batcher has handled its answer."""
        n = self.answered
        self.gate.put_nowait(None)
        while self.answered == n:
            await asyncio.sleep(0)
        for _ in range(5):
            await asyncio.sleep(0)


async def wait_batches(pool: FakePool, n: int) -> None:
    while len(pool.batches) < n:
        await asyncio.sleep(0)


async def test_batcher_serves_every_stream_in_turn() -> None:
    """8 cameras, batches of 4: the same early cameras must not win every batch (their frames are
    always a moment older), or the late cameras' boxes are never refreshed."""
    pool = GatedPool()
    b = DetectionBatcher(pool, Metrics(), max_batch=4, max_wait_s=1.0)  # type: ignore[arg-type]
    got: dict[str, int] = {}
    b.start()
    try:
        for k in range(12):  # each round every camera offers a newer frame, always in the same order
            for i in range(8):
                b.submit(frame(f"s{i}", k, i), lambda d: got.__setitem__(d.stream, got.get(d.stream, 0) + 1))
            await wait_batches(pool, k + 1)  # 8 waiting, 4 taken
            await pool.answer_one()
    finally:
        await b.stop()
    assert got == {f"s{i}": 6 for i in range(8)}


async def test_batcher_drops_the_answer_for_a_stream_that_left_meanwhile() -> None:
    m = Metrics()
    pool = GatedPool()
    b = DetectionBatcher(pool, m, max_batch=2, max_wait_s=1.0)  # type: ignore[arg-type]
    got: list[str] = []
    b.start()
    try:
        b.submit(frame("gone", 1, 1), lambda d: got.append(d.stream))
        b.submit(frame("stays", 1, 2), lambda d: got.append(d.stream))
        await wait_batches(pool, 1)  # both in flight now
        b.forget("gone")
        m.forget_stream("gone")
        await pool.answer_one()
    finally:
        await b.stop()
    assert got == ["stays"]
    # no labelled series comes back for the departed stream (label sets must stay bounded)
    assert "gone" not in m.render().decode()
    assert m.registry.get_sample_value("streamer_detections_total", {"stream": "stays"}) == 1


async def test_batcher_lets_go_of_a_batch_once_it_is_answered() -> None:
    """The last peer leaves: its frame and stream must not stay alive waiting for a next batch."""
    b = DetectionBatcher(FakePool(delay=0.01), Metrics(), max_batch=2, max_wait_s=0.01)  # type: ignore[arg-type]
    b.start()
    try:
        f = frame("a", 1, 1)
        answered = asyncio.Event()

        class Callback:
            def __call__(self, d) -> None:
                answered.set()

        callback = Callback()
        image, cb = weakref.ref(f.image), weakref.ref(callback)
        b.submit(f, callback)
        del f, callback
        await asyncio.wait_for(answered.wait(), 5)
        while b._tasks:  # the batch's task has finished
            await asyncio.sleep(0)
        gc.collect()
        assert image() is None and cb() is None, gc.get_referrers(image() if image() is not None else cb())
    finally:
        await b.stop()
