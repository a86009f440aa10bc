"""Fan-out of one stream's annotated frames to any number of outputs, newest frame wins.

A subscriber that falls behind skips to the newest frame; the frames it skipped
are counted as drops with reason ``slow_consumer``. One slow output never
slows the stream or another output.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from streamer.metrics import DROP_SLOW_CONSUMER, Metrics
from streamer.types import Detections, Frame


@dataclass(frozen=True, slots=True)
class AnnotatedFrame:
    frame: Frame  # the source frame (its image is the raw one)
    image: np.ndarray  # RGB with boxes and labels drawn (if ``drawn``; else the source's image)
    detections: Detections | None
    seq: int
    drawn: bool = True  # False: nothing showed the image when it was made, so it was not drawn on


class FrameHub:
    def __init__(self, stream: str, metrics: Metrics) -> None:
        self.stream = stream
        self.metrics = metrics
        self._latest: AnnotatedFrame | None = None
        self._seq = 0
        self._changed = asyncio.Condition()
        self._closed = False
        # called with every frame as it is published (``streamer annotate --realtime`` records
        # them all); a tap must be quick and must not raise
        self.taps: list[Callable[[AnnotatedFrame], None]] = []
        self.image_taps = 0  # how many of the taps use the image (a recording)
        self._watchers = 0  # open subscriptions that show the image

    @property
    def watched(self) -> bool:
        """Whether anything shows this stream's images: if not, the stream need not draw them
        (a camera nobody watches is still tracked, counted and reported; drawing a 1080p frame
        costs a few milliseconds of CPU, 25 times a second)."""
        return self._watchers > 0 or self.image_taps > 0

    @property
    def latest(self) -> AnnotatedFrame | None:
        return self._latest

    def next_seq(self) -> int:
        self._seq += 1
        return self._seq

    async def publish(self, item: AnnotatedFrame) -> None:
        self._latest = item
        for tap in self.taps:
            tap(item)
        async with self._changed:
            self._changed.notify_all()

    async def close(self) -> None:
        self._closed = True
        async with self._changed:
            self._changed.notify_all()

    def subscribe(self) -> Subscription:
        """Frames for an output that shows them (drawn from the next frame on); ``close`` it when
        the output ends."""
        return Subscription(self)


class Subscription:
    def __init__(self, hub: FrameHub) -> None:
        self.hub = hub
        self.last_seq = hub.latest.seq - 1 if hub.latest else 0
        self.skipped = 0
        self._seen = False
        self._open = True
        hub._watchers += 1

    def close(self) -> None:
        if self._open:
            self._open = False
            self.hub._watchers -= 1

    async def next(self) -> AnnotatedFrame | None:
        """The newest drawn frame not yet seen; None when the stream has ended."""
        hub = self.hub
        async with hub._changed:
            await hub._changed.wait_for(
                lambda: (
                    hub._closed
                    or (hub.latest is not None and hub.latest.seq > self.last_seq and hub.latest.drawn)
                )
            )
        item = hub.latest
        if hub._closed or item is None:
            return None
        gap = item.seq - self.last_seq - 1
        if gap > 0 and self._seen:  # (frames before the first one drawn for it are not its drops)
            self.skipped += gap
            hub.metrics.frames_dropped.labels(hub.stream, DROP_SLOW_CONSUMER).inc(gap)
        self.last_seq = item.seq
        self._seen = True
        return item

    def sent(self, item: AnnotatedFrame) -> None:
        """Record that ``item`` has left the service (latency: capture to send)."""
        self.hub.metrics.frame_latency.labels(self.hub.stream).observe(
            max(0.0, time.time() - item.frame.captured_at)
        )
