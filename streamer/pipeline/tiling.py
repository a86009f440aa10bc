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


def strips(width: int, height: int, scale: float, area_px: int, side_px: int, why: str) -> list[Region]:
    """The fewest regions (then the fewest pixels) of at most ``area_px`` detector pixels, and
    ``side_px`` a side, covering the frame at ``scale``, overlapping as ``tiles``' do. Not square:
    a 720p frame at scale 2 in 1.6 Mpx pieces is three full-height strips (4.1 Mpx in all), where
    squares of that area take six (9.6 Mpx: two rows for 720 px overlap by 544)."""
    fw, fh, seam = width * scale, height * scale, 2 * FACE_PX
    best: tuple[int, float, int, int] | None = None
    for ny in range(1, max(1, math.ceil(fh / max(1, side_px - seam))) + 2):
        th = (fh + (ny - 1) * seam) / ny
        if th > side_px:
            continue
        nx = max(1, math.ceil((fw - seam) / max(1.0, min(side_px, area_px / th) - seam)))
        tw = (fw + (nx - 1) * seam) / nx
        if tw * th > area_px * 1.001 or tw > side_px:
            continue
        key = (nx * ny, tw * th * nx * ny, nx, ny)
        if best is None or key < best:
            best = key
    if best is None:  # (pieces smaller than two seams: square tiles)
        return tiles(width, height, scale, max(1, math.isqrt(area_px)), why)
    _, _, nx, ny = best
    tw, th = (width + (nx - 1) * seam / scale) / nx, (height + (ny - 1) * seam / scale) / ny
    xs = [round(i * (width - tw) / (nx - 1)) if nx > 1 else 0 for i in range(nx)]
    ys = [round(j * (height - th) / (ny - 1)) if ny > 1 else 0 for j in range(ny)]
    return [
        Region(x, y, min(width, x + math.ceil(tw)) - 1, min(height, y + math.ceil(th)) - 1, scale, why)
        for y in ys
        for x in xs
    ]


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
