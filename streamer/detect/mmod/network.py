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


def build_model(convs: list[FoldedConv]):
    """Keras model: inputs (canvas (B,H,W,3), mask (B,h,w,1)) -> scores (B,h,w,1)."""
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
