"""dlib's face-recognition ResNet (``dlib_face_recognition_resnet_model_v1.dat``) as a Keras 3
model (backend-neutral: keras layers and keras.ops only), folded for inference and batched.

dlib's net (examples/dnn_face_recognition_ex.cpp, ``anet_type``): a 150x150 RGB chip,
``(pixel - avg) / 256``, con 7x7/2, affine, relu, max_pool 3x3/2, then residual blocks
(``ares``: ``relu(x + block(x))``; ``ares_down``: ``relu(avg_pool2x2(x) + block_stride2(x))``,
where dlib's ``add_prev`` zero-fills the smaller tensor: extra channels and the extra
bottom row / right column), avg_pool_everything, fc_no_bias 128. The descriptor is the fc
output as is (loss_metric adds nothing at inference).

Folding: each ``affine`` directly follows a convolution and goes into its kernel and bias;
the input normalisation goes into the first convolution's (unpadded, so exact).

Residual wiring comes from the file's stack of layers and markers (see
:mod:`streamer.dlib_format`): a lone marker is a tag (its input is remembered); two markers
in a row are ``tag`` then ``skip`` (the current output is tagged, and the value goes back to
the tag before it); ``add_prev`` adds the most recent remaining tag.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from streamer.dlib_format import (
    AddPrevLayer,
    AffineLayer,
    BatchNormLayer,
    ConvLayer,
    DatFormatError,
    DlibNet,
    FcLayer,
    Marker,
    PoolLayer,
    ReluLayer,
    read_dlib_net,
)

CHIP_SIZE = 150
CHIP_PADDING = 0.25
# Feature sets the backbone gives per face: name -> what it is.
FEATURES = {
    "dlib_face_descriptor": "the 128-D face descriptor (dlib's compute_face_descriptor)",
    "dlib_pooled": "the 256 averaged channels before the fc layer",
    "dlib_level2": "the 128 channels after the 128-filter blocks, averaged over the face",
    "dlib_level3": "the 64 channels after the 64-filter blocks, averaged over the face",
    "dlib_lower2": "the 128 channels after the 128-filter blocks, averaged over the lower face",
    "dlib_lower3": "the 64 channels after the 64-filter blocks, averaged over the lower face",
    "dlib_lower4": "the 256 channels of the 4x4 map before the last block, averaged over its lower half",
    "dlib_cheeks2": "the 128 channels after the 128-filter blocks, averaged over the lower face's sides",
}
FEATURE_SIZES = {
    "dlib_face_descriptor": 128,
    "dlib_pooled": 256,
    "dlib_level2": 128,
    "dlib_level3": 64,
    "dlib_lower2": 128,
    "dlib_lower3": 64,
    "dlib_lower4": 256,
    "dlib_cheeks2": 128,
}
# Lower-face sets: a beard is a texture of the lower face, which pooling over the whole chip
# dilutes with eyes, forehead and background. These average the same maps over the chip's rows
# from LOWER_FACE down (dlib's 150x150 chip puts the upper lip, mouth and chin there; in the
# 8x8 map rows 5-7, in the 17x17 map rows 11-16, in the 4x4 map rows 2-3), and for the cheeks
# over that band's outer quarter on either side (the two sides averaged: a mirror image gives
# the same).
LOWER_FACE = 5 / 8
# the feature that tells who a face is (``Face.identity``; tracks compare it, see track/identity.py)
IDENTITY = "dlib_face_descriptor"
# Test-time flip: a feature set named with this suffix is the mean of the chip's and of its
# mirror image's (dlib's jitter averages descriptors of jittered chips the same way).
FLIP_SUFFIX = "_flip"
FLIP_FEATURES = {k + FLIP_SUFFIX: f"{v}, averaged with the mirrored chip's" for k, v in FEATURES.items()}
ALL_FEATURES = {**FEATURES, **FLIP_FEATURES}


def needs_mirror(names: str | list[str] | tuple[str, ...]) -> bool:
    """Whether feature names ('a+b' or a list) include a test-time-flip set."""
    parts = names.split("+") if isinstance(names, str) else list(names)
    return any(n.endswith(FLIP_SUFFIX) for n in parts)


def default_model_path() -> Path:
    import face_recognition_models

    return Path(face_recognition_models.face_recognition_model_location())


def _zero_fill_add():
    import keras

    class ZeroFillAdd(keras.layers.Layer):
        """dlib's add_prev: a + b where the smaller is zero-filled (end channels, bottom, right)."""

        def call(self, a, b):
            sa, sb = a.shape, b.shape
            h, w, c = max(sa[1], sb[1]), max(sa[2], sb[2]), max(sa[3], sb[3])

            def fill(t, s):
                if (s[1], s[2], s[3]) == (h, w, c):
                    return t
                return keras.ops.pad(t, [[0, 0], [0, h - s[1]], [0, w - s[2]], [0, c - s[3]]])

            return fill(a, sa) + fill(b, sb)

    return ZeroFillAdd


@dataclass(frozen=True)
class Conv:
    """A convolution with the affine after it folded in (and the input scaling, for the first)."""

    kernel: np.ndarray  # (out, in, k, k), dlib's OIHW order, float32
    bias: np.ndarray  # (out,)
    stride: int
    padded: bool  # "same" (stride 1, k // 2 each side) or unpadded
    relu: bool
    at: int  # its place in the file's stack (names the Keras layer: fine-tuning picks layers by name)


@dataclass(frozen=True)
class Pool:
    kind: str  # "max" or "avg"; unpadded
    size: int
    stride: int
    at: int


@dataclass(frozen=True)
class Step:
    """A residual or output step: "tag" (remember the current value), "skip" (tag the current
    value, go back to the one tagged before it), "add" (add the latest tag, dlib's zero fill;
    ``relu`` after), "relu", "pooled" (average over the whole map), "fc" (``weights``, no bias)."""

    kind: str
    at: int
    relu: bool = False
    weights: np.ndarray | None = None


Op = Conv | Pool | Step


def plan(net: DlibNet) -> list[Op]:
    """The network as folded steps, from the input up, for any runtime to build (Keras here, ONNX
    Runtime in :mod:`.face_resnet_onnx`). Raises DatFormatError for anything but dlib's face ResNet."""
    if net.loss not in ("loss_metric_2", "loss_metric_"):
        raise DatFormatError(f"not a metric-learning network (loss {net.loss!r})")
    if net.input.size != (CHIP_SIZE, CHIP_SIZE):
        raise DatFormatError(f"the face-recognition network must take {CHIP_SIZE}x{CHIP_SIZE} chips")
    avg = np.asarray(net.input.avg_rgb, np.float64)
    ops: list[Op] = []
    stack = list(net.stack)
    i = 0
    first_conv = True
    tags = 0
    while i < len(stack):
        item = stack[i]
        if isinstance(item, Marker):
            if i + 1 < len(stack) and isinstance(stack[i + 1], Marker):
                if tags < 1:
                    raise DatFormatError("skip layer without a tag to go back to")
                ops.append(Step("skip", i))
                i += 2
                continue
            ops.append(Step("tag", i))
            tags += 1
            i += 1
            continue
        if isinstance(item, ConvLayer):
            w = item.weights.astype(np.float64)  # (out, in, kh, kw)
            b = item.bias.astype(np.float64)
            j = i + 1
            if j < len(stack) and isinstance(stack[j], AffineLayer | BatchNormLayer):
                aff = stack[j]
                aff = aff.as_affine() if isinstance(aff, BatchNormLayer) else aff
                a = aff.gamma.astype(np.float64)
                w, b = w * a[:, None, None, None], b * a + aff.beta.astype(np.float64)
                j += 1
            relu = j < len(stack) and isinstance(stack[j], ReluLayer)
            if relu:
                j += 1
            kh, kw = w.shape[2:]
            if item.stride[0] != item.stride[1] or item.padding[0] != item.padding[1] or kh != kw:
                raise DatFormatError("only square kernels, strides and paddings are supported")
            if item.padding[0] not in (0, kh // 2) or (item.padding[0] and item.stride[0] != 1):
                raise DatFormatError("convolutions must be unpadded, or stride 1 padded k//2")
            if first_conv:
                if item.padding[0]:
                    raise DatFormatError("the first convolution must be unpadded to fold the input scaling")
                b = b - np.einsum("oihw,i->o", w, avg) / 256.0
                w = w / 256.0
                first_conv = False
            w32, b32 = w.astype(np.float32), b.astype(np.float32)
            ops.append(Conv(w32, b32, item.stride[0], bool(item.padding[0]), relu, i))
            i = j
            continue
        if isinstance(item, PoolLayer):
            if item.size == (0, 0):
                ops.append(Step("pooled", i))
            else:
                if item.padding != (0, 0) or item.size[0] != item.size[1] or item.stride[0] != item.stride[1]:
                    raise DatFormatError("only square, unpadded pooling is supported")
                ops.append(Pool(item.kind, item.size[0], item.stride[0], i))
            i += 1
            continue
        if isinstance(item, AddPrevLayer):
            if tags < 1:
                raise DatFormatError("add_prev without a tag")
            tags -= 1
            relu = i + 1 < len(stack) and isinstance(stack[i + 1], ReluLayer)
            ops.append(Step("add", i, relu=relu))
            i += 2 if relu else 1
            continue
        if isinstance(item, ReluLayer):
            ops.append(Step("relu", i))
            i += 1
            continue
        if isinstance(item, FcLayer):
            if item.bias is not None:
                raise DatFormatError("the face network's fc layer has no bias")
            ops.append(Step("fc", i, weights=np.asarray(item.weights, np.float32)))
            i += 1
            continue
        raise DatFormatError(f"unsupported layer {type(item).__name__} in the face network")
    if tags:
        raise DatFormatError(f"{tags} tag(s) never used")
    kinds = [op.kind for op in ops if isinstance(op, Step)]
    if "fc" not in kinds or "pooled" not in kinds or not set(MAPS) <= set(residual_maps(ops)):
        raise DatFormatError("not dlib's face-recognition ResNet (missing fc, pooling or residual stages)")
    return ops


# the residual stages' last outputs the feature sets read: (channels, rows) of their maps
MAPS = ((64, 17), (128, 8), (256, 4))


def residual_maps(ops: list[Op]) -> dict[tuple[int, int], int]:
    """(channels, rows) of each residual stage's map -> the index of the "add" step that ends it
    last (shapes followed from the 150x150 chip)."""
    channels, rows = 3, CHIP_SIZE
    saved: list[tuple[int, int]] = []
    out: dict[tuple[int, int], int] = {}
    for n, op in enumerate(ops):
        if isinstance(op, Conv):
            k = op.kernel.shape[2]
            channels = op.kernel.shape[0]
            rows = rows if op.padded else (rows - k) // op.stride + 1
        elif isinstance(op, Pool):
            rows = (rows - op.size) // op.stride + 1
        elif op.kind == "tag":
            saved.append((channels, rows))
        elif op.kind == "skip":
            back = saved.pop()
            saved.append((channels, rows))
            channels, rows = back
        elif op.kind == "add":
            c, r = saved.pop()
            channels, rows = max(channels, c), max(rows, r)
            out[channels, rows] = n
    return out


def build_model(net: DlibNet | list[Op]):
    """Keras model: (B, 150, 150, 3) float RGB in [0, 255] -> dict of feature name -> (B, D), from
    the network or its steps (:func:`plan`)."""
    from streamer.quiet import import_tensorflow

    import_tensorflow()
    import keras

    ops = net if isinstance(net, list) else plan(net)
    ends = {n: key for key, n in residual_maps(ops).items()}
    add_layer = _zero_fill_add()
    image = keras.Input(shape=(CHIP_SIZE, CHIP_SIZE, 3), name="chip")
    x = image
    tags: list = []
    maps: dict[tuple[int, int], object] = {}
    descriptor = pooled = None
    for n, op in enumerate(ops):
        if isinstance(op, Conv):
            conv = keras.layers.Conv2D(
                filters=op.kernel.shape[0],
                kernel_size=op.kernel.shape[2:],
                strides=op.stride,
                padding="same" if op.padded else "valid",
                activation="relu" if op.relu else None,
                name=f"conv_{op.at}",
            )
            x = conv(x)
            conv.set_weights([np.transpose(op.kernel, (2, 3, 1, 0)), op.bias])
        elif isinstance(op, Pool):
            cls = keras.layers.MaxPooling2D if op.kind == "max" else keras.layers.AveragePooling2D
            x = cls(pool_size=op.size, strides=op.stride, padding="valid", name=f"pool_{op.at}")(x)
        elif op.kind == "tag":
            tags.append(x)
        elif op.kind == "skip":
            back = tags.pop()
            tags.append(x)
            x = back
        elif op.kind == "add":
            x = add_layer(name=f"add_{op.at}")(x, tags.pop())
            if op.relu:
                x = keras.layers.ReLU(name=f"relu_{op.at + 1}")(x)
            if n in ends:
                maps[ends[n]] = x
        elif op.kind == "relu":
            x = keras.layers.ReLU(name=f"relu_{op.at}")(x)
        elif op.kind == "pooled":
            x = pooled = keras.layers.GlobalAveragePooling2D(name="pooled")(x)
        elif op.kind == "fc":
            assert op.weights is not None
            dense = keras.layers.Dense(op.weights.shape[1], use_bias=False, name="fc")
            x = descriptor = dense(x)
            dense.set_weights([op.weights])
    gap = keras.layers.GlobalAveragePooling2D
    outputs = {
        "dlib_face_descriptor": descriptor,
        "dlib_pooled": pooled,
        "dlib_level2": gap(name="level2")(maps[128, 8]),
        "dlib_level3": gap(name="level3")(maps[64, 17]),
        "dlib_lower2": _lower(keras, maps[128, 8], "lower2"),
        "dlib_lower3": _lower(keras, maps[64, 17], "lower3"),
        "dlib_lower4": _lower(keras, maps[256, 4], "lower4"),
        "dlib_cheeks2": _lower(keras, maps[128, 8], "cheeks2", sides=True),
    }
    return keras.Model(inputs=image, outputs=outputs, name="dlib_face_resnet")


def lower_band(rows: int, sides: bool = False) -> tuple[int, int]:
    """The rows a lower-face set averages (from ``LOWER_FACE`` down: ``top``) and, with ``sides``,
    the width of each side's column band."""
    return round(LOWER_FACE * rows), (max(1, rows // 4) if sides else rows)


def _lower(keras, x, name: str, sides: bool = False):
    """The map ``x`` (B, n, n, C) averaged over its rows from ``LOWER_FACE`` down (and with
    ``sides``, over those rows' outer quarter on the left and on the right, the two averaged)."""
    n = int(x.shape[1])
    top, w = lower_band(n, sides)
    gap = keras.layers.GlobalAveragePooling2D
    if not sides:
        band = keras.layers.Cropping2D(((top, 0), (0, 0)), name=f"{name}_rows")(x)
        return gap(name=name)(band)
    left = keras.layers.Cropping2D(((top, 0), (0, n - w)), name=f"{name}_left")(x)
    right = keras.layers.Cropping2D(((top, 0), (n - w, 0)), name=f"{name}_right")(x)
    return keras.layers.Average(name=name)([gap()(left), gap()(right)])


def load_face_resnet(path: str | Path | None = None):
    """Read the .dat file (default: face_recognition_models') and build the Keras model."""
    return build_model(read_dlib_net(path or default_model_path()))
