"""The planner's geometry: a frame cut into overlapping tiles at a scale, whether one region covers
another, and overlapping boxes united (planner.py plans with them)."""

from __future__ import annotations

import math

from streamer.detect.regions import FACE_PX
from streamer.types import Region


def tiles(width: int, height: int, scale: float, tile_px: int, why: str) -> list[Region]:
    """Regions of at most ``tile_px`` detector pixels a side covering the frame at ``scale``;
    neighbours overlap by two ``FACE_PX`` so a face at a seam lies whole in one of them."""
    out = []
    side = tile_px / scale  # source pixels per tile
    step = max(1.0, (tile_px - 2 * FACE_PX) / scale)

    def starts(n: int) -> list[int]:
        if n <= side:
            return [0]
        k = math.ceil((n - side) / step)
        return [round(i * (n - side) / k) for i in range(k + 1)]

    for y in starts(height):
        for x in starts(width):
            out.append(
                Region(
                    x,
                    y,
                    min(width, x + math.ceil(side)) - 1,
                    min(height, y + math.ceil(side)) - 1,
                    scale,
                    why,
                )
            )
    return out


def inside(r: Region, p: Region) -> bool:
    """Whether ``p`` covers most of ``r`` at a scale at least as fine."""
    iw = min(r.right, p.right) - max(r.left, p.left) + 1
    ih = min(r.bottom, p.bottom) - max(r.top, p.top) + 1
    area = (r.right - r.left + 1) * (r.bottom - r.top + 1)
    return iw > 0 and ih > 0 and iw * ih >= 0.8 * area and p.scale >= r.scale


def merge_overlapping(boxes: list[list[float]]) -> list[list[float]]:
    """Unite overlapping boxes until none overlap."""
    boxes = [b[:] for b in boxes]
    merged = True
    while merged:
        merged = False
        out: list[list[float]] = []
        for b in boxes:
            for o in out:
                if b[0] <= o[2] and o[0] <= b[2] and b[1] <= o[3] and o[1] <= b[3]:
                    o[:] = [min(o[0], b[0]), min(o[1], b[1]), max(o[2], b[2]), max(o[3], b[3])]
                    merged = True
                    break
            else:
                out.append(b)
        boxes = out
    return boxes
