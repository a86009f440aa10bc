"""Out of memory in a model call: recognised in any backend's words, and the batch halved until it fits."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")
R = TypeVar("R")


def is_out_of_memory(e: BaseException) -> bool:
    """MemoryError, TensorFlow's ResourceExhaustedError, or XLA/JAX's RESOURCE_EXHAUSTED."""
    if isinstance(e, MemoryError):
        return True
    text = f"{type(e).__name__} {e}"
    return "ResourceExhausted" in text or "RESOURCE_EXHAUSTED" in text or "out of memory" in text.lower()


def split_on_oom(fn: Callable[[list[T]], list[R]], items: list[T], counter: list[int]) -> list[R]:
    """``fn(items)``; if that runs out of memory, halve the batch and retry each half (recursively).

    A single item that still does not fit re-raises. ``counter[0]`` counts the splits.
    """
    try:
        return fn(items)
    except Exception as e:
        if len(items) < 2 or not is_out_of_memory(e):
            raise
        counter[0] += 1
        log.warning("batch of %d ran out of memory; splitting it in two", len(items))
        mid = len(items) // 2
        return split_on_oom(fn, items[:mid], counter) + split_on_oom(fn, items[mid:], counter)
