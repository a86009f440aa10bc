"""dlib's image pyramids, reproduced in numpy.

* :func:`pyramid_up` is what ``cnn_face_detection_model_v1`` does for ``upsample_num_times``:
  ``pyramid_up(img, pyramid_down<2>)``, a bilinear ``resize_image`` of the uint8 RGB image
  to (2H+1, 2W+2). dlib's RGB bilinear resize runs 4 columns at a time in float32 and
  truncates to integers, then finishes the last columns in double precision; we follow
  the same arithmetic so that the upsampled pixels are the same bytes.
* :func:`tile_rects` is ``compute_tiled_image_pyramid_details`` for ``pyramid_down<N>``:
  where each pyramid level sits in the single canvas the network sees.
* :func:`build_canvas` fills that canvas like ``input_rgb_image_pyramid::to_tensor`` does:
  level 0 is ``(pixel - avg) / 256`` as float32, each further level is a bilinear resize
  (float32, dlib's 4-wide kernel) of the previous level's tile; everything else is 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

_F32 = np.float32


@dataclass(frozen=True)
class Tiling:
    """Where the pyramid levels lie in the canvas (dlib inclusive rectangles)."""

    rects: tuple[tuple[int, int, int, int], ...]  # (left, top, right, bottom) per level
    height: int  # canvas rows
    width: int  # canvas columns


# ---------------------------------------------------------------------------- geometry


def pyramid_up_size(h: int, w: int) -> tuple[int, int]:
    """Output size of dlib's pyramid_up with pyramid_down<2>: rect_up of the image rect,
    rounded like dlib's drectangle -> rectangle conversion (floor(x + 0.5))."""
    right = math.floor((w - 1 + 1.25) * 2 + 0.5)
    bottom = math.floor((h - 1 + 0.75) * 2 + 0.5)
    return bottom + 1, right + 1


def tile_rects(h: int, w: int, n: int = 6, padding: int = 10, outer_padding: int = 11) -> Tiling:
    """compute_tiled_image_pyramid_details for pyramid_down<n> (n > 3)."""
    if h * w == 0:
        return Tiling((), 0, 0)
    rate = (n - 1.0) / n
    sizes = [(h, w)]  # (rows, cols)
    nr, nc = h, w
    while True:
        nr, nc = math.floor(rate * nr), math.floor(rate * nc)
        if nr * nc == 0 or nr < 5:
            break
        sizes.append((nr, nc))

    total_height = sum(s[0] + padding for s in sizes) - padding * 2
    height = 0
    prev_width = 0
    for rows, cols in sizes:
        if cols <= sizes[0][1] - prev_width - padding and (height - sizes[0][0]) * 2 >= (
            total_height - sizes[0][0]
        ):
            break
        height += rows + padding
        prev_width = cols
    height -= padding
    width = sizes[0][1]
    canvas_h, canvas_w = height + outer_padding * 2, width + outer_padding * 2

    rects: list[tuple[int, int, int, int]] = []
    y = outer_padding
    i = 0
    while y < height + outer_padding and i < len(sizes):
        rows, cols = sizes[i]
        rects.append((outer_padding, y, outer_padding + cols - 1, y + rows - 1))
        y += rows + padding
        i += 1
    y -= padding
    l0, t0, r0, b0 = rects[0]
    while i < len(sizes):
        rows, cols = sizes[i]
        # rectangle(p1, p2) with p1 = bottom-right corner, p2 = p1 - (cols-1, rows-1)
        right, bottom = outer_padding + width - 1, y - 1
        left, top = right - (cols - 1), bottom - (rows - 1)
        if max(l0, left) <= min(r0, right) and max(t0, top) <= min(b0, bottom):
            break  # would overlap the original image
        rects.append((left, top, right, bottom))
        y -= rows + padding
        i += 1
    return Tiling(tuple(rects), canvas_h, canvas_w)


# ---------------------------------------------------------------------------- bilinear


@lru_cache(maxsize=256)
def _rows(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row sampling as dlib's resize_image: y accumulates y_scale in double."""
    scale = (n_in - 1) / max(n_out - 1, 1)
    steps = np.full(n_out, scale, dtype=np.float64)
    steps[0] = 0.0
    y = np.add.accumulate(steps)
    top = np.floor(y).astype(np.int64)
    bottom = np.minimum(top + 1, n_in - 1)
    return top, bottom, y - top


@dataclass(frozen=True)
class _Columns:
    n_simd: int  # columns done by the 4-wide float32 kernel
    left: np.ndarray  # (n_simd,)
    lr: np.ndarray  # float32 (n_simd,)
    tail_left: np.ndarray  # remaining columns, double precision
    tail_right: np.ndarray
    tail_lr: np.ndarray  # float64


@lru_cache(maxsize=256)
def _columns(n_in: int, n_out: int) -> _Columns:
    scale = (n_in - 1) / max(n_out - 1, 1)
    x0 = -4 * scale
    n_blocks = n_out // 4 + 2
    acc = np.empty((n_blocks + 1, 4), dtype=_F32)
    acc[0] = np.array([x0, x0 + scale, x0 + 2 * scale, x0 + 3 * scale], dtype=np.float64).astype(_F32)
    acc[1:] = _F32(4 * scale)
    lanes = np.add.accumulate(acc, axis=0)[1:]  # float32 running sum, one row per block
    left = lanes.astype(np.int32)  # _mm_cvttps_epi32: truncation
    stop = np.nonzero(left[:, 3] + 1 >= n_in)[0]
    n_blocks_done = int(stop[0]) if stop.size else n_blocks
    n_simd = min(4 * n_blocks_done, n_out) if n_blocks_done * 4 <= n_out else 4 * n_blocks_done
    lanes = lanes[:n_blocks_done].reshape(-1)
    left = left[:n_blocks_done].reshape(-1)
    lr = lanes - left.astype(_F32)
    n_simd = lanes.size
    # Scalar tail: x restarts from -scale + c*scale and accumulates in double.
    n_tail = max(n_out - n_simd, 0)
    steps = np.full(n_tail, scale, dtype=np.float64)
    if n_tail:
        steps[0] = -scale + n_simd * scale + scale
    x = np.add.accumulate(steps)
    tail_left = np.floor(x).astype(np.int64)
    tail_right = np.minimum(tail_left + 1, n_in - 1)
    return _Columns(n_simd, left.astype(np.int64), lr, tail_left, tail_right, x - tail_left)


def _resize(src: np.ndarray, n_out_r: int, n_out_c: int, out_u8: bool) -> np.ndarray:
    """dlib resize_image(..., interpolate_bilinear) on an (H, W, C) image.

    out_u8: the rgb_pixel kernel (truncate to integers); otherwise the float kernel.
    """
    n_in_r, n_in_c = src.shape[:2]
    top, bottom, tb = _rows(n_in_r, n_out_r)
    cols = _columns(n_in_c, n_out_c)
    out = np.empty((n_out_r, n_out_c, src.shape[2]), dtype=np.uint8 if out_u8 else _F32)
    srcf = src.astype(_F32, copy=False)
    rows_t = srcf[top]
    rows_b = srcf[bottom]
    ns = min(cols.n_simd, n_out_c)
    if ns:
        tb_f = tb.astype(_F32)[:, None, None]
        itb_f = (1.0 - tb).astype(_F32)[:, None, None]
        lr = cols.lr[:ns][None, :, None]
        ilr = _F32(1) - lr
        left = cols.left[:ns]
        right = left + 1
        acc = (itb_f * ilr) * rows_t[:, left]
        acc += (itb_f * lr) * rows_t[:, right]
        acc += (tb_f * ilr) * rows_b[:, left]
        acc += (tb_f * lr) * rows_b[:, right]
        if out_u8:
            out[:, :ns] = np.clip(acc, 0, 255).astype(np.int32).astype(np.uint8)
        else:
            out[:, :ns] = acc
    if ns < n_out_c:
        tl, tr = cols.tail_left, cols.tail_right
        tb_d = tb[:, None, None]
        if out_u8:
            lr_d = cols.tail_lr[None, :, None]
            t = rows_t.astype(np.float64)
            b = rows_b.astype(np.float64)
            v = (1 - tb_d) * ((1 - lr_d) * t[:, tl] + lr_d * t[:, tr]) + tb_d * (
                (1 - lr_d) * b[:, tl] + lr_d * b[:, tr]
            )
            out[:, ns:] = np.clip(v, 0, 255).astype(np.int32).astype(np.uint8)
        else:
            lr_f = cols.tail_lr.astype(_F32)[None, :, None]
            upper = ((_F32(1) - lr_f) * rows_t[:, tl] + lr_f * rows_t[:, tr]).astype(np.float64)
            lower = ((_F32(1) - lr_f) * rows_b[:, tl] + lr_f * rows_b[:, tr]).astype(np.float64)
            out[:, ns:] = ((1 - tb_d) * upper + tb_d * lower).astype(_F32)
    return out


@lru_cache(maxsize=256)
def _separable_tables(n_in_r: int, n_in_c: int, n_out_r: int, n_out_c: int) -> tuple[np.ndarray, ...]:
    """Sample positions exactly as dlib's float kernel; weights as float32 vectors."""
    top, bottom, tb = _rows(n_in_r, n_out_r)
    cols = _columns(n_in_c, n_out_c)
    ns = min(cols.n_simd, n_out_c)
    left = np.concatenate([cols.left[:ns], cols.tail_left]).astype(np.intp)
    right = np.concatenate([cols.left[:ns] + 1, cols.tail_right]).astype(np.intp)
    lr = np.concatenate([cols.lr[:ns], cols.tail_lr.astype(_F32)])[None, :, None]
    tbf = tb.astype(_F32)[:, None, None]
    return top.astype(np.intp), bottom.astype(np.intp), _F32(1) - tbf, tbf, left, right, _F32(1) - lr, lr


def _resize_float_separable(src: np.ndarray, n_out_r: int, n_out_c: int, out: np.ndarray) -> None:
    """Bilinear resize of a float32 (H, W, C) tile with dlib's sample positions, done as a
    horizontal then a vertical pass. Same values as dlib's kernel up to float32 rounding
    (a few 1e-8 here, far below anything the detector's scores can notice) at a fraction
    of the cost of the literal 4-weight formula."""
    top, bottom, itb, tb, left, right, ilr, lr = _separable_tables(*src.shape[:2], n_out_r, n_out_c)
    horiz = np.take(src, left, axis=1)
    horiz *= ilr
    horiz += np.take(src, right, axis=1) * lr
    np.multiply(np.take(horiz, top, axis=0), itb, out=out)
    out += np.take(horiz, bottom, axis=0) * tb


def resize_rgb(image: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """dlib.resize_image(rgb uint8 image, rows, cols) (bilinear)."""
    return _resize(image, rows, cols, out_u8=True)


def pyramid_up(image: np.ndarray, times: int = 1) -> np.ndarray:
    """dlib pyramid_up(img, pyramid_down<2>) applied ``times`` times to a uint8 RGB image."""
    for _ in range(times):
        h, w = image.shape[:2]
        image = _resize(image, *pyramid_up_size(h, w), out_u8=True)
    return image


def build_canvas(
    image: np.ndarray,
    tiling: Tiling,
    avg_rgb: tuple[float, float, float],
    out: np.ndarray | None = None,
    exact: bool = False,
) -> np.ndarray:
    """The network input for one RGB uint8 image: (canvas_h, canvas_w, 3) float32.

    ``out`` may be a larger zeroed float32 array; the canvas goes into its top-left corner.
    ``exact`` uses dlib's literal float32 kernel (slower; same values up to rounding).
    """
    if out is None:
        out = np.zeros((tiling.height, tiling.width, 3), dtype=_F32)
    if not tiling.rects:
        return out
    avg = np.asarray(avg_rgb, dtype=_F32)
    l0, t0, r0, b0 = tiling.rects[0]
    out[t0 : b0 + 1, l0 : r0 + 1] = (image.astype(_F32) - avg) / _F32(256)
    prev = out[t0 : b0 + 1, l0 : r0 + 1]
    for left, top, right, bottom in tiling.rects[1:]:
        dest = out[top : bottom + 1, left : right + 1]
        if exact:
            dest[...] = _resize(prev, bottom - top + 1, right - left + 1, out_u8=False)
        else:
            _resize_float_separable(prev, bottom - top + 1, right - left + 1, dest)
        prev = dest
    return out


# ---------------------------------------------------------------------------- fast canvas


class _LevelPlan:
    """One pyramid step (hi, wi) -> (ho, wo): the separable resize of
    :func:`_resize_float_separable` with its tables and scratch buffers kept.

    The same float32 operations in the same order (gather, multiply, add), so the same
    bits; the gathers are OpenCV nearest-neighbour remaps at integer positions (plain
    copies) and the arithmetic runs on 2-D views with long inner loops.
    """

    def __init__(self, hi: int, wi: int, ho: int, wo: int) -> None:

        top, bottom, itb, tb, left, right, ilr, lr = _separable_tables(hi, wi, ho, wo)
        # float32 maps: OpenCV's nearest-neighbour remap is fastest with these (3x CV_16SC2 here)
        self.rows_map = np.ascontiguousarray(np.broadcast_to(np.arange(hi, dtype=_F32)[:, None], (hi, wo)))
        self.left_map = np.ascontiguousarray(np.broadcast_to(left.astype(_F32)[None, :], (hi, wo)))
        self.right_map = np.ascontiguousarray(np.broadcast_to(right.astype(_F32)[None, :], (hi, wo)))
        self.ilr = np.repeat(ilr.reshape(-1), 3)[None, :]  # (1, wo*3), per channel
        self.lr = np.repeat(lr.reshape(-1), 3)[None, :]
        self.top, self.bottom = top, bottom
        self.itb, self.tb = itb.reshape(-1, 1), tb.reshape(-1, 1)
        self.horiz = np.empty((hi, wo, 3), _F32)
        self.scratch = np.empty((hi, wo, 3), _F32)
        self.rows = np.empty((ho, wo * 3), _F32)

    def run(self, src: np.ndarray, dest: np.ndarray) -> None:
        import cv2

        h, s = self.horiz, self.scratch
        _into(cv2.remap(src, self.left_map, self.rows_map, cv2.INTER_NEAREST, dst=h), h)
        _into(cv2.remap(src, self.right_map, self.rows_map, cv2.INTER_NEAREST, dst=s), s)
        h2, s2 = h.reshape(h.shape[0], -1), s.reshape(s.shape[0], -1)
        np.multiply(h2, self.ilr, out=h2)
        np.multiply(s2, self.lr, out=s2)
        np.add(h2, s2, out=h2)
        d2 = dest.reshape(dest.shape[0], -1)
        np.take(h2, self.top, axis=0, out=self.rows)
        np.multiply(self.rows, self.itb, out=d2)
        np.take(h2, self.bottom, axis=0, out=self.rows)
        np.multiply(self.rows, self.tb, out=self.rows)
        np.add(d2, self.rows, out=d2)


def _into(result: np.ndarray, dest: np.ndarray) -> None:
    """OpenCV writes into ``dst`` when it can; copy where it had to allocate."""
    if result is not dest:
        dest[...] = result


class CanvasBuilder:
    """Builds canvases bit for bit like :func:`build_canvas`, reusing its buffers.

    Level 0 is a lookup table (uint8 -> (x - avg) / 256 in float32), every further level
    a :class:`_LevelPlan` (cached per size pair). ``batch`` returns a reused array: it is
    valid until the next call. Not thread-safe: one builder per thread.
    """

    MAX_PLANS = 128  # about 5 frame sizes of 640x480 (~35 MB of tables and scratch each)
    MAX_KEPT_BYTES = 256 << 20  # bigger canvases (huge stills) get fresh buffers, not kept ones

    def __init__(self, avg_rgb: tuple[float, float, float]) -> None:
        avg = np.asarray(avg_rgb, dtype=_F32)
        self._lut = ((np.arange(256, dtype=_F32)[:, None] - avg) / _F32(256)).reshape(256, 1, 3)
        self._plans: dict[tuple[int, int, int, int], _LevelPlan] = {}
        self._buffer = np.zeros((0, 0, 0, 3), _F32)
        self._slots: list[Tiling | None] = []

    def build(self, image: np.ndarray, tiling: Tiling, out: np.ndarray, exact: bool = True) -> None:
        """Write the tiles of ``image`` into ``out`` (zero elsewhere, left as it is). Without
        ``exact`` each level is OpenCV's bilinear resize of the one before: close to dlib's
        ``pyramid_down`` but not bit for bit, and 3-4x cheaper on sizes not seen before (a detection
        plan's regions all differ in size, and each new size pair costs its tables)."""
        import cv2

        if not tiling.rects:
            return
        l0, t0, r0, b0 = tiling.rects[0]
        prev = out[t0 : b0 + 1, l0 : r0 + 1]
        _into(cv2.LUT(np.ascontiguousarray(image), self._lut, dst=prev), prev)
        for left, top, right, bottom in tiling.rects[1:]:
            dest = out[top : bottom + 1, left : right + 1]
            if not exact:
                size = (dest.shape[1], dest.shape[0])
                dest[...] = cv2.resize(prev, size, interpolation=cv2.INTER_LINEAR)
                prev = dest
                continue
            key = (prev.shape[0], prev.shape[1], dest.shape[0], dest.shape[1])
            plan = self._plans.get(key)
            if plan is None:
                plan = _LevelPlan(*key)
                if key[0] * key[3] * 48 <= self.MAX_KEPT_BYTES // 8:  # keep the small ones only
                    if len(self._plans) >= self.MAX_PLANS:
                        self._plans.clear()
                    self._plans[key] = plan
            plan.run(prev, dest)
            prev = dest

    def batch(
        self,
        images: Sequence[np.ndarray],
        tilings: Sequence[Tiling],
        height: int,
        width: int,
        exact: bool = True,
    ) -> np.ndarray:
        """(len(images), height, width, 3) float32: canvas j in the top-left of slot j."""
        n = len(images)
        if n * height * width * 12 > self.MAX_KEPT_BYTES:
            out = np.zeros((n, height, width, 3), _F32)
            for j, (image, tiling) in enumerate(zip(images, tilings, strict=True)):
                self.build(image, tiling, out[j], exact)
            return out
        if self._buffer.shape[:3] != (n, height, width):
            self._buffer = np.zeros((n, height, width, 3), _F32)
            self._slots = [None] * n
        for j, (image, tiling) in enumerate(zip(images, tilings, strict=True)):
            if self._slots[j] != tiling:  # other tiles here before: clear the gaps
                self._buffer[j] = 0.0
                self._slots[j] = tiling
            self.build(image, tiling, self._buffer[j], exact)
        return self._buffer
