"""dlib's CNN face detector (MMOD) ported to Keras 3: same boxes, batched, any backend.

Pipeline per image: optional ``pyramid_up`` (upsample), the tiled ``pyramid_down<6>``
canvas, one pass of the convolutional net over the canvas, then dlib's mapping of
positive cells back to image rectangles and its non-max suppression. Several images,
also of different sizes, go through the net in one call: their canvases are padded to a
common shape (rounded up to ``bucket`` pixels so that the compiled graph is reused); canvases
that would need much padding to share a shape go in separate calls.

The network runs on Keras (the reference; TensorFlow or JAX, CPU or GPU) or on ONNX
Runtime's CPU provider (``runtime``; "auto" takes ONNX Runtime unless Keras has a GPU).
Both run the same layer list (:func:`~streamer.detect.mmod.network.runtime_layers`).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence

import numpy as np

from streamer import runtime as runtimes
from streamer.detect.base import MAX_SIDE, BadImageError, as_rgb
from streamer.detect.mmod.network import (
    build_model,
    fold_layers,
    masked_resolution,
    output_geometry,
    output_size,
    runtime_layers,
)
from streamer.detect.mmod.postprocess import cells_to_rects, non_max_suppression, rect_down
from streamer.detect.mmod.pyramid import CanvasBuilder, Tiling, pyramid_up, tile_rects
from streamer.dlib_format import MMODNetwork, read_mmod_dat
from streamer.quiet import trace_predict_once
from streamer.runtime import RUNTIMES, choose_runtime
from streamer.types import Box

__all__ = ["RUNTIMES", "MMODDetector", "choose_runtime", "read_mmod_dat"]
PAD_WASTE = 0.25  # at most this share of padding added to a batch of canvases of different shapes


def default_weights_path() -> str:
    """``STREAMER_MMOD_WEIGHTS`` where set (a machine without face_recognition_models), else its copy."""
    if path := os.environ.get("STREAMER_MMOD_WEIGHTS"):
        return path
    import face_recognition_models

    return face_recognition_models.cnn_face_detector_model_location()


def resolve_jit_compile(jit_compile: bool | str) -> bool | str:
    """``"auto"``: XLA where it pays. On TensorFlow without a GPU, TensorFlow's own CPU kernels run
    this network about 1.5x faster than XLA's (and as fast as ONNX Runtime): no XLA there. On a
    GPU, and on JAX (whose un-jitted path is slow), Keras's own "auto" (XLA)."""
    if jit_compile != "auto" or os.environ.get("KERAS_BACKEND", "tensorflow") != "tensorflow":
        return jit_compile
    return "auto" if runtimes.keras_has_gpu() else False


def _round_up(n: int, step: int) -> int:
    return -(-n // step) * step


class MMODDetector:
    """Implements the Detector protocol. Load once, call ``detect`` as often as needed.

    weights: path of dlib's ``mmod_human_face_detector.dat`` (default: ``STREAMER_MMOD_WEIGHTS``,
      else the copy in ``face_recognition_models``).
    max_batch: canvases per network call.
    threshold: dlib's ``adjust_threshold``; cells scoring above it become detections.
    bucket: canvas sides are padded up to a multiple of this, so that frames of a stream
      (and of similar sizes) share one compiled graph.
    compiled: run the net through Keras' compiled predict function (on TensorFlow traced once,
      for every canvas size) rather than eagerly.
    jit_compile: XLA for that function (see :func:`resolve_jit_compile` for "auto").
    runtime: "keras", "onnxruntime" or "auto" (see :func:`streamer.runtime.choose_runtime`).
    threads: ONNX Runtime's intra-op threads (0 = 2); Keras takes the process' settings.
    """

    name = "mmod"

    def __init__(
        self,
        weights: str | None = None,
        max_batch: int = 8,
        threshold: float = 0.0,
        bucket: int = 32,
        compiled: bool = True,
        jit_compile: bool | str = "auto",
        runtime: str = "auto",
        threads: int = 0,
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be >= 1")
        self.network: MMODNetwork = read_mmod_dat(weights or default_weights_path())
        self._convs = fold_layers(self.network)
        self._scale, self._offset = output_geometry(self._convs)
        self._strided = [c for c in self._convs if c.stride != 1]
        self._mask_stride = masked_resolution(self._convs)
        self.runtime = choose_runtime(runtime)
        layers = runtime_layers(self._convs)
        self._compiled = compiled
        self._model = None
        self._onnx = None
        if self.runtime == "onnxruntime":
            from streamer.detect.mmod.onnx_net import OnnxRunner

            self._onnx = OnnxRunner(layers, threads)
        else:
            self._model = build_model(layers)
            if compiled:
                self._model.compile(jit_compile=resolve_jit_compile(jit_compile))
        self._local = threading.local()  # a canvas builder (reused buffers) per calling thread
        # Seconds spent per stage since construction (benchmarks read and reset it).
        self.stage_seconds = {"canvas": 0.0, "network": 0.0, "postprocess": 0.0}
        self.max_batch = max_batch
        self.threshold = float(threshold)
        self.bucket = max(int(bucket), 8)

    # ------------------------------------------------------------------ public API

    def detect(self, images: Sequence[np.ndarray], upsample: int = 0, exact: bool = True) -> list[list[Box]]:
        """Boxes per image. ``exact``: the image pyramid bit for bit as dlib builds it (without: by
        OpenCV's bilinear resize, cheaper on image sizes not seen before; for regions, which are
        cut by OpenCV already)."""
        if upsample < 0:
            raise ValueError("upsample must be >= 0")
        rgb = [as_rgb(im) for im in images]
        for im in rgb:
            if max(im.shape[:2]) * 2**upsample > 2 * MAX_SIDE:
                raise BadImageError(
                    f"image {im.shape[1]}x{im.shape[0]} upsampled {upsample}x exceeds {2 * MAX_SIDE}px"
                )
        t0 = time.perf_counter()
        if upsample:
            rgb = [pyramid_up(im, upsample) for im in rgb]
        net = self.network
        tilings = [
            tile_rects(h, w, net.pyramid_down, net.pyramid_padding, net.pyramid_outer_padding)
            for h, w in (im.shape[:2] for im in rgb)
        ]
        self.stage_seconds["canvas"] += time.perf_counter() - t0
        scores = self._score_maps(rgb, tilings, exact)
        t0 = time.perf_counter()
        boxes = [self._boxes(s, t, upsample) for s, t in zip(scores, tilings, strict=True)]
        self.stage_seconds["postprocess"] += time.perf_counter() - t0
        return boxes

    def score_maps(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """The raw network output (valid region) per RGB image, for diagnostics."""
        rgb = [as_rgb(im) for im in images]
        net = self.network
        tilings = [
            tile_rects(*im.shape[:2], net.pyramid_down, net.pyramid_padding, net.pyramid_outer_padding)
            for im in rgb
        ]
        return self._score_maps(rgb, tilings)

    # ------------------------------------------------------------------ internals

    def _score_maps(
        self, rgb: list[np.ndarray], tilings: list[Tiling], exact: bool = True
    ) -> list[np.ndarray]:
        out: list[np.ndarray] = [np.zeros((0, 0), np.float32) for _ in rgb]
        valid = [(output_size(self._convs, t.height), output_size(self._convs, t.width)) for t in tilings]
        todo = [i for i, (h, w) in enumerate(valid) if h > 0 and w > 0]
        for idxs in self._batches([(tilings[i].height, tilings[i].width) for i in todo]):
            idxs = [todo[k] for k in idxs]
            hh = _round_up(max(tilings[i].height for i in idxs), self.bucket)
            ww = _round_up(max(tilings[i].width for i in idxs), self.bucket)
            t0 = time.perf_counter()
            mh, mw = output_size(self._strided, hh), output_size(self._strided, ww)
            canvas = self._builder().batch([rgb[i] for i in idxs], [tilings[i] for i in idxs], hh, ww, exact)
            mask = np.zeros((len(idxs), mh, mw, 1), dtype=np.float32)
            for j, i in enumerate(idxs):
                mask[j, : valid[i][0], : valid[i][1]] = 1.0
            t1 = time.perf_counter()
            result = self._run(canvas, mask)
            self.stage_seconds["canvas"] += t1 - t0
            self.stage_seconds["network"] += time.perf_counter() - t1
            for j, i in enumerate(idxs):
                out[i] = result[j, : valid[i][0], : valid[i][1], 0]
        return out

    def _batches(self, shapes: Sequence[tuple[int, int]]) -> list[list[int]]:
        """Indices of ``shapes`` (canvas rows, cols) grouped into network calls: at most
        ``max_batch`` each, and only canvases that pad to a common shape with at most ``PAD_WASTE``
        of the batch's pixels added (a frame's regions differ in size: padding a track's small
        canvas to a tile's big one cost ~3x the network time in live plans)."""
        order = sorted(range(len(shapes)), key=lambda k: (shapes[k][0] * shapes[k][1], k))
        out: list[list[int]] = []
        cur: list[int] = []
        for k in order:
            cand = [*cur, k]
            hh = _round_up(max(shapes[j][0] for j in cand), self.bucket)
            ww = _round_up(max(shapes[j][1] for j in cand), self.bucket)
            real = sum(
                _round_up(shapes[j][0], self.bucket) * _round_up(shapes[j][1], self.bucket) for j in cand
            )
            if cur and (len(cand) > self.max_batch or len(cand) * hh * ww > (1 + PAD_WASTE) * real):
                out.append(cur)
                cand = [k]
            cur = cand
        if cur:
            out.append(cur)
        return out

    def _builder(self) -> CanvasBuilder:
        builder = getattr(self._local, "builder", None)
        if builder is None:
            builder = self._local.builder = CanvasBuilder(self.network.avg_rgb)
        return builder

    def _run(self, canvas: np.ndarray, mask: np.ndarray) -> np.ndarray:
        if self._onnx is not None:
            return self._onnx.run(canvas, mask)
        assert self._model is not None
        if self._compiled:
            trace_predict_once(self._model, [canvas, mask])  # one trace for every canvas size
            res = self._model.predict_on_batch([canvas, mask])
        else:
            import keras

            res = keras.ops.convert_to_numpy(self._model([canvas, mask], training=False))
        return np.asarray(res, dtype=np.float32)

    def _boxes(self, scores: np.ndarray, tiling: Tiling, upsample: int) -> list[Box]:
        if scores.size == 0:
            return []
        rows, cols = np.nonzero(scores > self.threshold)
        if rows.size == 0:
            return []
        net = self.network
        conf = scores[rows, cols].astype(np.float64)
        rects = cells_to_rects(
            rows,
            cols,
            tiling,
            self._scale,
            self._offset,
            (net.window_width, net.window_height),
            net.pyramid_down,
        )
        rects, conf = non_max_suppression(rects, conf, net.nms_iou_thresh, net.nms_percent_covered_thresh)
        rects = rect_down(rects, upsample)
        return [
            Box(int(r[0]), int(r[1]), int(r[2]), int(r[3]), float(c))
            for r, c in zip(rects, conf, strict=True)
        ]
