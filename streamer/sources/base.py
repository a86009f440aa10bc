"""What every source offers the pipeline: frames, a state, and a way to stop."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from streamer.redact import redact_text, redact_url
from streamer.types import Frame

__all__ = ["Source", "SourceState", "redact_text", "redact_url"]


@dataclass
class SourceState:
    up: bool = False
    error: str | None = None
    reconnects: int = 0
    frames: int = 0
    width: int = 0
    height: int = 0
    fps: float = 0.0


class Source(Protocol):
    id: str
    kind: str
    state: SourceState

    def frames(self) -> AsyncIterator[Frame]:
        """Newest-wins frames until the source is closed (or a finite file ends)."""
        ...

    async def close(self) -> None: ...

    def describe(self) -> str:
        """A human-readable origin with credentials redacted."""
        ...
