"""The MMOD network as a Keras 3 model (backend-neutral: keras layers and keras.ops only).

Inference form of dlib's net: every ``bn_con`` becomes an affine ``A*x + B`` with
``A = gamma / sqrt(running_var + eps)`` and ``B = beta - A * running_mean`` (dlib's own
affine_(bn_) conversion), and since each affine directly follows a convolution we fold
it into that convolution's kernel and bias. Stride-2 convolutions are unpadded; stride-1
convolutions pad k//2, which is Keras' "same" for odd kernels.

Batches hold canvases of different sizes padded to one shape, so each stride-1
convolution gets its input multiplied by a per-sample 0/1 mask of the sample's valid
region: outside it the activations are zero, exactly dlib's zero padding at the border
of that sample's own (smaller) tensor.

:func:`runtime_layers` is the one definition of the graph every backend runs (Keras and
ONNX Runtime alike): the folded layers with two exact rewrites for fast CPU kernels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from streamer.dlib_format import (
    AffineLayer,
    BatchNormLayer,
    ConvLayer,
    MMODNetwork,
    ReluLayer,
)


@dataclass(frozen=True)
class FoldedConv:
    kernel: np.ndarray  # (kh, kw, in, out), Keras' HWIO
    bias: np.ndarray
    stride: int
    padding: int
    relu: bool


def fold_layers(net: MMODNetwork) -> list[FoldedConv]:
    """conv [-> bn/affine] [-> relu] groups, with the affine folded into the conv."""
    out: list[FoldedConv] = []
    for layer in net.layers:
        if isinstance(layer, ConvLayer):
            if layer.stride[0] != layer.stride[1] or layer.padding[0] != layer.padding[1]:
                raise ValueError("only square strides and paddings are supported")
            kh, kw = layer.weights.shape[2:]
            if layer.stride[0] == 1 and (layer.padding[0] != kh // 2 or kh != kw or kh % 2 == 0):
                raise ValueError("stride-1 convolutions must be odd, square and padded k//2")
            if layer.stride[0] != 1 and layer.padding[0] != 0:
                raise ValueError("strided convolutions must be unpadded")
            out.append(
                FoldedConv(
                    kernel=np.transpose(layer.weights, (2, 3, 1, 0)).astype(np.float64),
                    bias=layer.bias.astype(np.float64),
                    stride=layer.stride[0],
                    padding=layer.padding[0],
                    relu=False,
                )
            )
            continue
        if not out:
            raise ValueError(f"{type(layer).__name__} before the first convolution")
        last = out[-1]
        if isinstance(layer, BatchNormLayer | AffineLayer):
            aff = layer.as_affine() if isinstance(layer, BatchNormLayer) else layer
            if last.relu:
                raise ValueError("affine after relu is not supported")
            a, b = aff.gamma.astype(np.float64), aff.beta.astype(np.float64)
            out[-1] = FoldedConv(last.kernel * a, last.bias * a + b, last.stride, last.padding, False)
        elif isinstance(layer, ReluLayer):
            out[-1] = FoldedConv(last.kernel, last.bias, last.stride, last.padding, True)
    return [
        FoldedConv(c.kernel.astype(np.float32), c.bias.astype(np.float32), c.stride, c.padding, c.relu)
        for c in out
    ]


def output_geometry(convs: list[FoldedConv]) -> tuple[int, int]:
    """(scale, offset): output cell c maps to input point scale*c + offset (dlib's
    map_output_to_input: p*stride - padding + k//2, composed over layers)."""
    scale, offset = 1, 0
    for c in reversed(convs):
        k = c.kernel.shape[0]
        offset = offset * c.stride - c.padding + k // 2
        scale *= c.stride
    return scale, offset


def output_size(convs: list[FoldedConv], n: int) -> int:
    """dlib's output size along one axis for an input of n (C++ integer division)."""
    for c in convs:
        k = c.kernel.shape[0]
        num = n + 2 * c.padding - k
        n = 1 + int(num / c.stride) if num > -c.stride else 0  # truncation toward zero
        if n <= 0:
            return 0
    return n


def masked_resolution(convs: list[FoldedConv]) -> int:
    """Total stride at the first stride-1 convolution (where masking starts)."""
    total = 1
    for c in convs:
        if c.stride == 1:
            break
        total *= c.stride
    return total


def pad_channels(convs: list[FoldedConv], multiple: int) -> list[FoldedConv]:
    """Zero-pad every hidden layer's channel count up to a multiple of ``multiple`` (45 -> 48).

    The extra output channels have zero kernel and bias, so they are relu(0) = 0, and the
    next layer's weights for them are zero: the scores are unchanged, but convolutions
    with channel counts that are multiples of 8 take the fast blocked CPU kernels.
    """
    out: list[FoldedConv] = []
    prev_pad = 0
    for i, c in enumerate(convs):
        kh, kw, cin, cout = c.kernel.shape
        pad_out = 0 if i == len(convs) - 1 else -cout % multiple
        kernel = np.zeros((kh, kw, cin + prev_pad, cout + pad_out), np.float32)
        kernel[:, :, :cin, :cout] = c.kernel
        bias = np.zeros(cout + pad_out, np.float32)
        bias[:cout] = c.bias
        out.append(FoldedConv(kernel, bias, c.stride, c.padding, c.relu))
        prev_pad = pad_out
    return out


def split_rows(c: FoldedConv, channels: int) -> list[FoldedConv]:
    """A stride-1 (k x k, cin -> 1) convolution as (1 x k, cin -> k rows) then (k x 1, rows -> 1).

    The first convolution computes, for each kernel row dy, that row's horizontal sum in
    its own channel; the second shifts channel dy by dy - k//2 rows and adds them (a 0/1
    kernel) plus the bias: the same sum of products, in another order (float32 rounding
    differs by ~1e-6). ``channels`` >= k pads the middle tensor with zero channels.
    """
    kh, kw, cin, cout = c.kernel.shape
    if c.stride != 1 or cout != 1 or kh != kw or channels < kh:
        raise ValueError("only a square stride-1 convolution to one channel can be split")
    rows = np.zeros((1, kw, cin, channels), np.float32)
    rows[0, :, :, :kh] = np.transpose(c.kernel[:, :, :, 0], (1, 2, 0))  # [dx, ci, dy]
    sum_rows = np.zeros((kh, 1, channels, 1), np.float32)
    sum_rows[np.arange(kh), 0, np.arange(kh), 0] = 1.0
    return [
        FoldedConv(rows, np.zeros(channels, np.float32), 1, kw // 2, False),
        FoldedConv(sum_rows, c.bias.copy(), 1, kh // 2, c.relu),
    ]


CHANNEL_MULTIPLE = 8  # 45 -> 48: the convolutions take the blocked kernels
SPLIT_CHANNELS = 16  # middle tensor of the split 9x9 convolution (9 rows, zero-padded)


def runtime_layers(
    convs: list[FoldedConv], channel_multiple: int = CHANNEL_MULTIPLE, split_channels: int = SPLIT_CHANNELS
) -> list[FoldedConv]:
    """The graph every backend runs: ``convs`` with hidden channels padded to ``channel_multiple``
    and the final convolution split into 1 x k then k x 1 (``split_channels`` = 0: not split).

    Kernels may be non-square here; stride-1 layers still pad "same" (kh//2, kw//2). The
    geometry helpers above take the folded layers, not these.
    """
    layers = pad_channels(convs, channel_multiple) if channel_multiple > 1 else list(convs)
    if split_channels:
        layers = layers[:-1] + split_rows(layers[-1], split_channels)
    return layers


def build_model(convs: list[FoldedConv]):
    """Keras model: inputs (canvas (B,H,W,3), mask (B,h,w,1)) -> scores (B,h,w,1).

    ``convs``: the layers of :func:`runtime_layers` (or the plain folded ones)."""
    from streamer.quiet import import_tensorflow

    import_tensorflow()
    import keras

    image = keras.Input(shape=(None, None, 3), name="canvas")
    mask = keras.Input(shape=(None, None, 1), name="mask")
    x = image
    for i, c in enumerate(convs):
        if c.stride == 1:
            x = keras.layers.Multiply(name=f"mask_{i}")([x, mask])
        conv = keras.layers.Conv2D(
            filters=c.kernel.shape[3],
            kernel_size=c.kernel.shape[:2],
            strides=c.stride,
            padding="valid" if c.stride != 1 else "same",
            activation="relu" if c.relu else None,
            name=f"conv_{i}",
        )
        x = conv(x)
        conv.set_weights([c.kernel, c.bias])
    return keras.Model(inputs=[image, mask], outputs=x, name="mmod_face_detector")
