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


def build_model(net: DlibNet):
    """Keras model: (B, 150, 150, 3) float RGB in [0, 255] -> dict of feature name -> (B, D)."""
    from streamer.quiet import import_tensorflow

    import_tensorflow()
    import keras

    if net.loss not in ("loss_metric_2", "loss_metric_"):
        raise DatFormatError(f"not a metric-learning network (loss {net.loss!r})")
    if net.input.size is None:
        raise DatFormatError("the face-recognition network must have a fixed input size")
    add_layer = _zero_fill_add()
    rows, cols = net.input.size
    image = keras.Input(shape=(rows, cols, 3), name="chip")
    avg = np.asarray(net.input.avg_rgb, np.float64)
    x = image
    tags: list = []
    maps: dict[tuple[int, int], object] = {}  # (channels, rows) -> last residual output
    stack = list(net.stack)
    i = 0
    first_conv = True
    descriptor = pooled = None
    while i < len(stack):
        item = stack[i]
        if isinstance(item, Marker):
            if i + 1 < len(stack) and isinstance(stack[i + 1], Marker):
                if len(tags) < 1:
                    raise DatFormatError("skip layer without a tag to go back to")
                back = tags.pop()
                tags.append(x)
                x = back
                i += 2
                continue
            tags.append(x)
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
            conv = keras.layers.Conv2D(
                filters=w.shape[0],
                kernel_size=(kh, kw),
                strides=item.stride[0],
                padding="same" if item.padding[0] else "valid",
                activation="relu" if relu else None,
                name=f"conv_{i}",
            )
            x = conv(x)
            conv.set_weights([np.transpose(w, (2, 3, 1, 0)).astype(np.float32), b.astype(np.float32)])
            i = j
            continue
        if isinstance(item, PoolLayer):
            if item.size == (0, 0):
                x = keras.layers.GlobalAveragePooling2D(name="pooled")(x)
                pooled = x
            else:
                if item.padding != (0, 0):
                    raise DatFormatError("padded pooling is not supported")
                cls = keras.layers.MaxPooling2D if item.kind == "max" else keras.layers.AveragePooling2D
                x = cls(pool_size=item.size, strides=item.stride, padding="valid", name=f"pool_{i}")(x)
            i += 1
            continue
        if isinstance(item, AddPrevLayer):
            if not tags:
                raise DatFormatError("add_prev without a tag")
            x = add_layer(name=f"add_{i}")(x, tags.pop())
            if i + 1 < len(stack) and isinstance(stack[i + 1], ReluLayer):
                x = keras.layers.ReLU(name=f"relu_{i + 1}")(x)
                i += 1
            maps[int(x.shape[-1]), int(x.shape[1])] = x
            i += 1
            continue
        if isinstance(item, ReluLayer):
            x = keras.layers.ReLU(name=f"relu_{i}")(x)
            i += 1
            continue
        if isinstance(item, FcLayer):
            if len(x.shape) != 2:
                x = keras.layers.Flatten()(x)
            dense = keras.layers.Dense(item.weights.shape[1], use_bias=item.bias is not None, name="fc")
            x = dense(x)
            dense.set_weights([item.weights] + ([item.bias] if item.bias is not None else []))
            descriptor = x
            i += 1
            continue
        raise DatFormatError(f"unsupported layer {type(item).__name__} in the face network")
    if tags:
        raise DatFormatError(f"{len(tags)} tag(s) never used")
    if descriptor is None or pooled is None or not {(64, 17), (128, 8), (256, 4)} <= set(maps):
        raise DatFormatError("not dlib's face-recognition ResNet (missing fc, pooling or residual stages)")
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


def _lower(keras, x, name: str, sides: bool = False):
    """The map ``x`` (B, n, n, C) averaged over its rows from ``LOWER_FACE`` down (and with
    ``sides``, over those rows' outer quarter on the left and on the right, the two averaged)."""
    n = int(x.shape[1])
    top = round(LOWER_FACE * n)
    gap = keras.layers.GlobalAveragePooling2D
    if not sides:
        band = keras.layers.Cropping2D(((top, 0), (0, 0)), name=f"{name}_rows")(x)
        return gap(name=name)(band)
    w = max(1, n // 4)
    left = keras.layers.Cropping2D(((top, 0), (0, n - w)), name=f"{name}_left")(x)
    right = keras.layers.Cropping2D(((top, 0), (n - w, 0)), name=f"{name}_right")(x)
    return keras.layers.Average(name=name)([gap()(left), gap()(right)])


def load_face_resnet(path: str | Path | None = None):
    """Read the .dat file (default: face_recognition_models') and build the Keras model."""
    return build_model(read_dlib_net(path or default_model_path()))
