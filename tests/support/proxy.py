"""A TCP proxy on loopback that can corrupt the bytes flowing from server to client for a while."""

from __future__ import annotations

import asyncio
import random
import time


class CorruptingProxy:
    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.corrupt_until = 0.0  # monotonic time; bytes are flipped while now < corrupt_until
        self.flipped = 0
        self.server: asyncio.Server | None = None
        self.port = 0
        self._rng = random.Random(7)
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    def corrupt_for(self, seconds: float) -> None:
        self.corrupt_until = time.monotonic() + seconds

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, corrupt: bool) -> None:
        try:
            while data := await reader.read(4096):
                if corrupt and time.monotonic() < self.corrupt_until:
                    buf = bytearray(data)
                    for _ in range(max(1, len(buf) // 512)):
                        buf[self._rng.randrange(len(buf))] ^= 0xFF
                        self.flipped += 1
                    data = bytes(buf)
                writer.write(data)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            server_r, server_w = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            client_w.close()
            return
        for t in (
            asyncio.create_task(self._pipe(client_r, server_w, False)),
            asyncio.create_task(self._pipe(server_r, client_w, True)),
        ):
            self._tasks.add(t)
            t.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
