"""dlib's face-recognition ResNet on ONNX Runtime's CPU execution provider.

The graph is written in memory (:mod:`streamer.onnx_writer`) from the same folded steps the
Keras model is built from (:func:`streamer.classify.face_resnet.plan`): no export step, no model
file. Input and outputs are the Keras model's: chips (B, 150, 150, 3) float RGB in [0, 255], one
(B, D) output per feature set (:data:`~streamer.classify.face_resnet.FEATURES`); the batch is
dynamic, so a batch is never padded. Inside, the graph works in NCHW (ONNX's ``Conv`` layout).
"""

from __future__ import annotations

import numpy as np

from streamer import onnx_writer as w
from streamer.classify.face_resnet import (
    CHIP_SIZE,
    FEATURE_SIZES,
    FEATURES,
    Conv,
    Op,
    Pool,
    lower_band,
    residual_maps,
)
from streamer.runtime import onnx_session

OPSET = 17
IR_VERSION = 8  # readable by every onnxruntime >= 1.14


class _Graph:
    """Nodes and initializers, each value named once."""

    def __init__(self) -> None:
        self.nodes: list[bytes] = []
        self.inits: list[bytes] = []
        self._n = 0

    def name(self, prefix: str) -> str:
        self._n += 1
        return f"{prefix}{self._n}"

    def op(self, op: str, inputs: list[str], *attributes: bytes, out: str | None = None) -> str:
        out = out or self.name(op.lower())
        self.nodes.append(w.node(op, inputs, [out], *attributes))
        return out

    def ints(self, values: list[int]) -> str:
        name = self.name("ints")
        self.inits.append(w.int_tensor(name, values))
        return name

    def floats(self, array: np.ndarray) -> str:
        name = self.name("weights")
        self.inits.append(w.tensor(name, array))
        return name

    def average(self, x: str, out: str | None = None) -> str:
        """(B, C, h, w) -> (B, C), the mean over the map."""
        return self.op("Flatten", [self.op("GlobalAveragePool", [x])], w.attr_int("axis", 1), out=out)

    def rows_cols(self, x: str, top: int, bottom: int, left: int, right: int) -> str:
        starts, ends, axes = self.ints([top, left]), self.ints([bottom, right]), self.ints([2, 3])
        return self.op("Slice", [x, starts, ends, axes])


def build_onnx(ops: list[Op]) -> bytes:
    """A serialized ONNX model: chip -> the feature sets, one output each."""
    g = _Graph()
    x = g.op("Transpose", ["chip"], w.attr_ints("perm", [0, 3, 1, 2]))
    shape = (3, CHIP_SIZE)  # (channels, rows); the maps are square
    tags: list[tuple[str, tuple[int, int]]] = []
    ends = {n: key for key, n in residual_maps(ops).items()}
    maps: dict[tuple[int, int], str] = {}
    pooled = ""
    for n, op in enumerate(ops):
        if isinstance(op, Conv):
            k = op.kernel.shape[2]
            pad = k // 2 if op.padded else 0
            x = g.op(
                "Conv",
                [x, g.floats(op.kernel), g.floats(op.bias)],
                w.attr_ints("kernel_shape", [k, k]),
                w.attr_ints("strides", [op.stride, op.stride]),
                w.attr_ints("pads", [pad] * 4),
            )
            rows = shape[1] if op.padded else (shape[1] - k) // op.stride + 1
            shape = (op.kernel.shape[0], rows)
            if op.relu:
                x = g.op("Relu", [x])
        elif isinstance(op, Pool):
            kind = "MaxPool" if op.kind == "max" else "AveragePool"
            size, stride = w.attr_ints("kernel_shape", [op.size] * 2), w.attr_ints("strides", [op.stride] * 2)
            x = g.op(kind, [x], size, stride)
            shape = (shape[0], (shape[1] - op.size) // op.stride + 1)
        elif op.kind == "tag":
            tags.append((x, shape))
        elif op.kind == "skip":
            back = tags.pop()
            tags.append((x, shape))
            x, shape = back
        elif op.kind == "add":
            x, shape = _zero_fill_add(g, (x, shape), tags.pop())
            if op.relu:
                x = g.op("Relu", [x])
            if n in ends:
                maps[ends[n]] = x
        elif op.kind == "relu":
            x = g.op("Relu", [x])
        elif op.kind == "pooled":
            x = pooled = g.average(x, out="dlib_pooled")
        elif op.kind == "fc":
            assert op.weights is not None
            x = g.op("MatMul", [x, g.floats(op.weights)], out="dlib_face_descriptor")
    assert pooled
    g.average(maps[128, 8], out="dlib_level2")
    g.average(maps[64, 17], out="dlib_level3")
    for name, key, sides in (
        ("dlib_lower2", (128, 8), False),
        ("dlib_lower3", (64, 17), False),
        ("dlib_lower4", (256, 4), False),
        ("dlib_cheeks2", (128, 8), True),
    ):
        _lower(g, maps[key], key[1], name, sides)
    return w.model(
        g.nodes,
        g.inits,
        [w.value_info("chip", ["batch", CHIP_SIZE, CHIP_SIZE, 3])],
        [w.value_info(k, ["batch", FEATURE_SIZES[k]]) for k in FEATURES],
        name="dlib_face_resnet",
        opset=OPSET,
        ir_version=IR_VERSION,
    )


def _zero_fill_add(g: _Graph, a: tuple[str, tuple[int, int]], b: tuple[str, tuple[int, int]]):
    """dlib's add_prev: the smaller tensor zero-filled (end channels, bottom rows, right columns)."""
    channels, rows = max(a[1][0], b[1][0]), max(a[1][1], b[1][1])
    ins = []
    for x, (c, r) in (a, b):
        if (c, r) != (channels, rows):
            x = g.op("Pad", [x, g.ints([0, 0, 0, 0, 0, channels - c, rows - r, rows - r])])
        ins.append(x)
    return g.op("Add", ins), (channels, rows)


def _lower(g: _Graph, x: str, rows: int, out: str, sides: bool) -> None:
    """As face_resnet's Keras ``_lower``: the map's lower rows averaged (and with ``sides``, their
    outer columns on each side, the two means averaged)."""
    top, width = lower_band(rows, sides)
    if not sides:
        g.average(g.rows_cols(x, top, rows, 0, rows), out=out)
        return
    left = g.average(g.rows_cols(x, top, rows, 0, width))
    right = g.average(g.rows_cols(x, top, rows, rows - width, rows))
    both = g.op("Add", [left, right])
    g.op("Mul", [both, g.floats(np.array(0.5, np.float32))], out=out)


class OnnxBackbone:
    """One ONNX Runtime session over the network; ``run(chips)`` -> {feature name: (B, D)}.

    threads: intra-op threads (0 = 2; :func:`streamer.runtime.onnx_session`)."""

    def __init__(self, ops: list[Op], threads: int = 0) -> None:
        self._session = onnx_session(build_onnx(ops), threads)
        self._names = list(FEATURES)

    def run(self, chips: np.ndarray) -> dict[str, np.ndarray]:
        out = self._session.run(self._names, {"chip": np.ascontiguousarray(chips, np.float32)})
        return dict(zip(self._names, out, strict=True))
