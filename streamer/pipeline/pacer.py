"""``sync_output``: a stream's annotated frames go out in order, each a steady delay after it came.

With ``sync_output`` a stream holds the frames that come while its detector works on one of
them, and they are all ready at once when the answer comes (stream.py). Published as they are
ready, a viewer (newest frame wins) would see one of them and skip the rest; the pacer sends
each at the time it came plus ``delay``, the hold of the newest answered round, so the video
goes out at the source's frame rate, late by about one detection.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger(__name__)


class Pacer:
    def __init__(self, publish: Callable[[Any], Awaitable[None]], max_wait_s: float) -> None:
        self.publish = publish  # sends one item (called in order, one at a time)
        self.max_wait_s = max_wait_s  # no item waits longer than this for its time
        self.delay = 0.0  # how late the video goes out (seconds after each frame came)
        self._queue: asyncio.Queue[tuple[Any, float] | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="pacer")

    def put(self, item: Any, came: float) -> None:
        """``item`` goes out at ``came`` (``time.monotonic()`` when its frame came) + ``delay``."""
        self._queue.put_nowait((item, came + self.delay))

    async def _run(self) -> None:
        while (got := await self._queue.get()) is not None:
            item, at = got
            wait = at - time.monotonic()
            if wait > 0 and self.delay > 0:
                await asyncio.sleep(min(wait, self.max_wait_s))
            try:
                await self.publish(item)
            except Exception:  # the next frames still go out
                log.exception("publishing a held frame failed")

    async def close(self) -> None:
        """Send what is queued at once, then stop."""
        self.delay = 0.0
        self._queue.put_nowait(None)
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
