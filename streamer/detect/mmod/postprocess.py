"""From the network's score map to boxes, as dlib's loss_mmod::to_label does it.

For every output cell with score > threshold: the canvas point is ``scale*c + offset``
(8c + 14 for the face net), the window is ``centered_drect(p, 80, 80)``; the tile is the
pyramid level nearest to the window's centre (``nearest_rect``), and the window is mapped
back up through that many ``pyramid_down<6>::point_up`` steps (``p * 6/5 + 0.3``). dlib
then converts to an integer rectangle with ``floor(x + 0.5)``, sorts by descending score
and keeps a box unless it overlaps an already kept one per ``test_box_overlap``. Finally
the python binding maps boxes found on a ``pyramid_up``-ed image back with
``pyramid_down<2>::rect_down`` once per upsampling.
"""

from __future__ import annotations

import numpy as np

from streamer.detect.mmod.pyramid import Tiling


def _round(x: np.ndarray) -> np.ndarray:
    """dlib's drectangle -> rectangle (and dpoint -> point) conversion: floor(x + 0.5)."""
    return np.floor(x + 0.5).astype(np.int64)


def _nearest_level(cx: np.ndarray, cy: np.ndarray, rects: np.ndarray) -> np.ndarray:
    """dlib nearest_rect: the first rect containing the point, else the first nearest one."""
    left, top, right, bottom = (rects[:, i][None, :] for i in range(4))
    x, y = cx[:, None], cy[:, None]
    inside = (x >= left) & (x <= right) & (y >= top) & (y <= bottom)
    dx = np.clip(x, left, right) - x
    dy = np.clip(y, top, bottom) - y
    dist = np.sqrt((dx * dx + dy * dy).astype(np.float64))
    return np.where(inside.any(axis=1), inside.argmax(axis=1), dist.argmin(axis=1))


def cells_to_rects(
    rows: np.ndarray,
    cols: np.ndarray,
    tiling: Tiling,
    scale: int,
    offset: int,
    window: tuple[int, int],
    pyramid_n: int,
) -> np.ndarray:
    """Integer (left, top, right, bottom) image rectangles, one row per cell."""
    px = (scale * cols + offset).astype(np.float64)
    py = (scale * rows + offset).astype(np.float64)
    half_w, half_h = (window[0] - 1) / 2, (window[1] - 1) / 2
    box = np.stack([px - half_w, py - half_h, px + half_w, py + half_h], axis=1)
    rects = np.asarray(tiling.rects, dtype=np.int64)
    level = _nearest_level(_round((box[:, 0] + box[:, 2]) / 2), _round((box[:, 1] + box[:, 3]) / 2), rects)
    origin = rects[level][:, [0, 1, 0, 1]].astype(np.float64)
    box = box - origin
    ratio = pyramid_n / (pyramid_n - 1.0)
    for k in range(int(level.max(initial=0))):
        m = level > k
        box[m] = box[m] * ratio + 0.3
    return _round(box)


def overlaps(kept: np.ndarray, rect: np.ndarray, iou_thresh: float, covered_thresh: float) -> bool:
    """dlib test_box_overlap(kept[i], rect) for any i, on inclusive integer rectangles."""
    if kept.size == 0:
        return False
    il = np.maximum(kept[:, 0], rect[0])
    it = np.maximum(kept[:, 1], rect[1])
    ir = np.minimum(kept[:, 2], rect[2])
    ib = np.minimum(kept[:, 3], rect[3])
    inner = np.where((ir >= il) & (ib >= it), (ir - il + 1) * (ib - it + 1), 0).astype(np.float64)
    outer = (
        (np.maximum(kept[:, 2], rect[2]) - np.minimum(kept[:, 0], rect[0]) + 1)
        * (np.maximum(kept[:, 3], rect[3]) - np.minimum(kept[:, 1], rect[1]) + 1)
    ).astype(np.float64)
    area_a = ((kept[:, 2] - kept[:, 0] + 1) * (kept[:, 3] - kept[:, 1] + 1)).astype(np.float64)
    area_b = float((rect[2] - rect[0] + 1) * (rect[3] - rect[1] + 1))
    hit = (inner > 0) & (
        (inner / outer > iou_thresh) | (inner / area_a > covered_thresh) | (inner / area_b > covered_thresh)
    )
    return bool(hit.any())


def non_max_suppression(
    rects: np.ndarray, scores: np.ndarray, iou_thresh: float, covered_thresh: float
) -> tuple[np.ndarray, np.ndarray]:
    """Greedy NMS by descending score; returns the kept rects and scores, best first."""
    order = np.argsort(-scores, kind="stable")
    kept: list[int] = []
    for i in order:
        if not overlaps(rects[kept], rects[i], iou_thresh, covered_thresh):
            kept.append(int(i))
    idx = np.asarray(kept, dtype=np.int64)
    return rects[idx].reshape(-1, 4), scores[idx]


def rect_down(rects: np.ndarray, times: int) -> np.ndarray:
    """pyramid_down<2>::rect_down(rect, times), rounded back to integers."""
    if times == 0 or rects.size == 0:
        return rects
    d = rects.astype(np.float64)
    shift = np.array([1.25, 0.75, 1.25, 0.75])
    for _ in range(times):
        d = d / 2.0 - shift
    return _round(d)
