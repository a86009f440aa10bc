"""Box overlap and the optimal one-to-one assignment of detections to tracks."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

# (left, top, right, bottom) as floats, dlib's inclusive convention (width = right - left + 1)
XYXY = tuple[float, float, float, float]


def iou_matrix(a: Sequence[XYXY], b: Sequence[XYXY]) -> np.ndarray:
    """IoU of every box in ``a`` against every box in ``b``: shape (len(a), len(b))."""
    if not len(a) or not len(b):
        return np.zeros((len(a), len(b)))
    A = np.asarray(a, dtype=np.float64)[:, None, :]
    B = np.asarray(b, dtype=np.float64)[None, :, :]
    iw = np.clip(np.minimum(A[..., 2], B[..., 2]) - np.maximum(A[..., 0], B[..., 0]) + 1, 0, None)
    ih = np.clip(np.minimum(A[..., 3], B[..., 3]) - np.maximum(A[..., 1], B[..., 1]) + 1, 0, None)
    inter = iw * ih
    area_a = (A[..., 2] - A[..., 0] + 1) * (A[..., 3] - A[..., 1] + 1)
    area_b = (B[..., 2] - B[..., 0] + 1) * (B[..., 3] - B[..., 1] + 1)
    return inter / np.maximum(area_a + area_b - inter, 1e-9)


def near_matrix(a: Sequence[XYXY], b: Sequence[XYXY], reach: float, max_ratio: float = 1.5) -> np.ndarray:
    """How near every box in ``a`` lies to every box in ``b``: 1 at the same centre, falling to 0 at
    ``reach`` of the larger one's width between centres (either axis), 0 beyond it or where their
    widths differ more than ``max_ratio`` times. Shape (len(a), len(b))."""
    if not len(a) or not len(b):
        return np.zeros((len(a), len(b)))
    A = np.asarray(a, dtype=np.float64)[:, None, :]
    B = np.asarray(b, dtype=np.float64)[None, :, :]
    wa, wb = A[..., 2] - A[..., 0] + 1, B[..., 2] - B[..., 0] + 1
    d = (
        np.maximum(
            np.abs((A[..., 0] + A[..., 2]) - (B[..., 0] + B[..., 2])),
            np.abs((A[..., 1] + A[..., 3]) - (B[..., 1] + B[..., 3])),
        )
        / 2
    )
    near = 1.0 - d / (reach * np.maximum(wa, wb))
    alike = np.maximum(wa, wb) <= max_ratio * np.minimum(wa, wb)
    return np.where(alike, np.clip(near, 0.0, None), 0.0)


def iou(a: XYXY, b: XYXY) -> float:
    return float(iou_matrix([a], [b])[0, 0])


def match(iou: np.ndarray, min_iou: float) -> tuple[list[tuple[int, int]], list[int], list[int]]:
    """Hungarian assignment maximising total IoU; pairs under ``min_iou`` do not count as matched.

    Returns (pairs (row, col), unmatched rows, unmatched cols).
    """
    rows, cols = iou.shape
    if rows == 0 or cols == 0:
        return [], list(range(rows)), list(range(cols))
    r, c = linear_sum_assignment(-iou)
    pairs = [(int(i), int(j)) for i, j in zip(r, c, strict=True) if iou[i, j] >= min_iou]
    mr = {i for i, _ in pairs}
    mc = {j for _, j in pairs}
    return pairs, [i for i in range(rows) if i not in mr], [j for j in range(cols) if j not in mc]
