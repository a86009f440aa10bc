"""A one-item mailbox where the newest item wins: the hand-off between live stages."""

from __future__ import annotations

import asyncio
from typing import Generic, TypeVar

T = TypeVar("T")


class LatestSlot(Generic[T]):
    """Holds at most one item. ``put`` replaces (and returns) an unread item.

    Event-loop only: threads hand items over with ``loop.call_soon_threadsafe(slot.put, x)``.
    """

    def __init__(self) -> None:
        self._item: T | None = None
        self._has = asyncio.Event()
        self._closed = False

    def put(self, item: T) -> T | None:
        replaced, self._item = self._item, item
        self._has.set()
        return replaced

    def take_nowait(self) -> T | None:
        item, self._item = self._item, None
        self._has.clear()
        return item

    async def get(self) -> T | None:
        """The next item, or None once the slot is closed and empty."""
        while self._item is None:
            if self._closed:
                return None
            await self._has.wait()
        return self.take_nowait()

    def close(self) -> None:
        self._closed = True
        self._has.set()

    @property
    def closed(self) -> bool:
        return self._closed

    def __bool__(self) -> bool:
        return self._item is not None
