"""The MMOD network on ONNX Runtime's CPU execution provider.

The graph is written in memory (:mod:`streamer.onnx_writer`, protobuf by hand: no ``onnx``
package at run time) from the same layer list the Keras model is built from
(:func:`streamer.detect.mmod.network.runtime_layers`): no export step, no model file,
no TensorFlow. Inputs and output are the Keras model's:
canvas (B, H, W, 3) and mask (B, h, w, 1) in NHWC, scores (B, h, w, 1); batch and sizes
are dynamic. Inside, the graph works in NCHW (ONNX's ``Conv`` layout).
"""

from __future__ import annotations

import numpy as np

from streamer import onnx_writer as w
from streamer.detect.mmod.network import FoldedConv
from streamer.runtime import ONNX_THREADS, onnx_session

OPSET = 17
IR_VERSION = 8  # readable by every onnxruntime >= 1.14


def build_onnx(layers: list[FoldedConv]) -> bytes:
    """A serialized ONNX model: (canvas, mask) -> scores, one Conv per layer."""
    nodes = [
        w.node("Transpose", ["canvas"], ["x0"], w.attr_ints("perm", [0, 3, 1, 2])),
        w.node("Transpose", ["mask"], ["m"], w.attr_ints("perm", [0, 3, 1, 2])),
    ]
    inits = []
    x = "x0"
    for i, c in enumerate(layers):
        kh, kw = c.kernel.shape[:2]
        if c.stride == 1:
            nodes.append(w.node("Mul", [x, "m"], [f"masked{i}"]))
            x = f"masked{i}"
            pads = [kh // 2, kw // 2, kh // 2, kw // 2]
        else:
            pads = [0, 0, 0, 0]
        inits += [
            w.tensor(f"w{i}", np.transpose(c.kernel, (3, 2, 0, 1))),  # HWIO -> OIHW
            w.tensor(f"b{i}", c.bias),
        ]
        y = f"conv{i}"
        nodes.append(
            w.node(
                "Conv",
                [x, f"w{i}", f"b{i}"],
                [y],
                w.attr_ints("kernel_shape", [kh, kw]),
                w.attr_ints("strides", [c.stride, c.stride]),
                w.attr_ints("pads", pads),
            )
        )
        if c.relu:
            nodes.append(w.node("Relu", [y], [f"relu{i}"]))
            y = f"relu{i}"
        x = y
    nodes.append(w.node("Transpose", [x], ["scores"], w.attr_ints("perm", [0, 2, 3, 1])))
    return w.model(
        nodes,
        inits,
        [
            w.value_info("canvas", ["batch", "height", "width", 3]),
            w.value_info("mask", ["batch", "rows", "cols", 1]),
        ],
        [w.value_info("scores", ["batch", "rows", "cols", 1])],
        name="mmod_face_detector",
        opset=OPSET,
        ir_version=IR_VERSION,
    )


class OnnxRunner:
    """One ONNX Runtime session over the network; ``run(canvas, mask)`` like the Keras model.

    threads: intra-op threads (0 = 2; :func:`streamer.runtime.onnx_session`).
    """

    def __init__(self, layers: list[FoldedConv], threads: int = 0) -> None:
        self.threads = threads if threads > 0 else ONNX_THREADS
        self._session = onnx_session(build_onnx(layers), self.threads)

    def run(self, canvas: np.ndarray, mask: np.ndarray) -> np.ndarray:
        (scores,) = self._session.run(["scores"], {"canvas": canvas, "mask": mask})
        return scores
