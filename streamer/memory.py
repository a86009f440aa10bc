"""Giving freed memory back to the operating system.

Video codecs allocate and free large buffers per peer; glibc keeps freed blocks in its
arenas, so a long-running service's resident memory ratchets up with every peer that
comes and goes although nothing leaks (measured: +15 MB a cycle of 5 peers, flat after
a trim). ``malloc_trim`` returns that memory; it runs after a stream or peer ends.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import functools


@functools.cache
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return libc if libc is not None and hasattr(libc, "malloc_trim") else None


def trim() -> bool:
    """Release free heap memory to the OS (glibc only; a no-op elsewhere)."""
    libc = _libc()
    return bool(libc.malloc_trim(0)) if libc is not None else False


async def trim_soon() -> None:
    """``trim`` off the event loop (it can take a few milliseconds on a large heap)."""
    await asyncio.get_running_loop().run_in_executor(None, trim)
