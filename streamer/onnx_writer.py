"""A minimal ONNX model writer: the protobuf wire format of the few messages a
convolutional graph needs (the MMOD detector's and the face backbone's), so that running a
network takes onnxruntime only (the ``onnx`` package, 31 MB, is needed by the tests that
check this writer, not at run time).

Field numbers are those of onnx/onnx.proto (ModelProto, GraphProto, NodeProto,
AttributeProto, TensorProto, ValueInfoProto, TypeProto, TensorShapeProto).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

FLOAT = 1  # TensorProto.DataType.FLOAT
INT64 = 7  # TensorProto.DataType.INT64
_ATTR_INT, _ATTR_INTS = 2, 7  # AttributeProto.AttributeType


def _varint(n: int) -> bytes:
    if n < 0:
        n += 1 << 64  # int64 two's complement, as protobuf writes it
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _int(field: int, n: int) -> bytes:
    return _varint(field << 3) + _varint(n)


def _bytes(field: int, data: bytes) -> bytes:
    return _varint(field << 3 | 2) + _varint(len(data)) + data


def _str(field: int, text: str) -> bytes:
    return _bytes(field, text.encode())


def attr_int(name: str, value: int) -> bytes:
    return _str(1, name) + _int(20, _ATTR_INT) + _int(3, value)


def attr_ints(name: str, values: Sequence[int]) -> bytes:
    return _str(1, name) + _int(20, _ATTR_INTS) + b"".join(_int(8, v) for v in values)


def node(op: str, inputs: Sequence[str], outputs: Sequence[str], *attributes: bytes) -> bytes:
    return (
        b"".join(_str(1, i) for i in inputs)
        + b"".join(_str(2, o) for o in outputs)
        + _str(4, op)
        + b"".join(_bytes(5, a) for a in attributes)
    )


def tensor(name: str, array: np.ndarray) -> bytes:
    """A float32 initializer, raw little-endian data."""
    a = np.ascontiguousarray(array, dtype="<f4")
    return b"".join(_int(1, d) for d in a.shape) + _int(2, FLOAT) + _str(8, name) + _bytes(9, a.tobytes())


def int_tensor(name: str, values: Sequence[int]) -> bytes:
    """A 1-D int64 initializer (the shape operands of Pad and Slice)."""
    a = np.asarray(values, dtype="<i8")
    return _int(1, len(a)) + _int(2, INT64) + _str(8, name) + _bytes(9, a.tobytes())


def value_info(name: str, dims: Sequence[int | str]) -> bytes:
    """A float32 tensor input/output; str dims are symbolic (dynamic)."""
    shape = b"".join(_bytes(1, _str(2, d) if isinstance(d, str) else _int(1, d)) for d in dims)
    tensor_type = _int(1, FLOAT) + _bytes(2, shape)
    return _str(1, name) + _bytes(2, _bytes(1, tensor_type))


def model(
    nodes: Sequence[bytes],
    initializers: Sequence[bytes],
    inputs: Sequence[bytes],
    outputs: Sequence[bytes],
    name: str,
    opset: int,
    ir_version: int,
    producer: str = "streamer",
) -> bytes:
    graph = (
        b"".join(_bytes(1, n) for n in nodes)
        + _str(2, name)
        + b"".join(_bytes(5, t) for t in initializers)
        + b"".join(_bytes(11, v) for v in inputs)
        + b"".join(_bytes(12, v) for v in outputs)
    )
    opset_id = _str(1, "") + _int(2, opset)
    return _int(1, ir_version) + _str(2, producer) + _bytes(7, graph) + _bytes(8, opset_id)
