"""The parts of a dlib dnn network as :mod:`streamer.dlib_format` reads them from a ``.dat`` file:
its layers (weights in dlib's own order), the residual markers, and the two whole networks the
service loads (the MMOD face detector and the face-recognition ResNet)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


class DatFormatError(ValueError):
    """The file is not a dlib network this reader understands."""


@dataclass(frozen=True)
class ConvLayer:
    weights: np.ndarray  # (out, in, kh, kw), dlib's OIHW order
    bias: np.ndarray  # (out,)
    stride: tuple[int, int]  # (y, x)
    padding: tuple[int, int]  # (y, x)


@dataclass(frozen=True)
class AffineLayer:
    """Per-channel ``y = gamma * x + beta`` (an inference-time batch norm)."""

    gamma: np.ndarray
    beta: np.ndarray


@dataclass(frozen=True)
class BatchNormLayer:
    gamma: np.ndarray
    beta: np.ndarray
    running_mean: np.ndarray
    running_var: np.ndarray
    eps: float

    def as_affine(self) -> AffineLayer:
        """dlib's affine_(bn_) conversion: A = gamma/sqrt(var+eps), B = beta - A*mean."""
        a = self.gamma / np.sqrt(self.running_var + np.float32(self.eps))
        return AffineLayer(
            gamma=a.astype(np.float32), beta=(self.beta - a * self.running_mean).astype(np.float32)
        )


@dataclass(frozen=True)
class ReluLayer:
    pass


@dataclass(frozen=True)
class PoolLayer:
    """``max_pool_`` or ``avg_pool_``; size (0, 0) means the whole input (``*_pool_everything``)."""

    kind: str  # "max" or "avg"
    size: tuple[int, int]  # (y, x)
    stride: tuple[int, int]
    padding: tuple[int, int]


@dataclass(frozen=True)
class FcLayer:
    weights: np.ndarray  # (inputs, outputs): y = x @ weights (+ bias)
    bias: np.ndarray | None  # None for fc_no_bias


@dataclass(frozen=True)
class AddPrevLayer:
    """``add_prev_``: adds the output of a tagged layer (zero-filling where shapes differ)."""


@dataclass(frozen=True)
class Marker:
    """An ``add_tag_layer`` or ``add_skip_layer`` wrapper (the file does not say which)."""


Layer = ConvLayer | AffineLayer | BatchNormLayer | ReluLayer | PoolLayer | FcLayer | AddPrevLayer


@dataclass(frozen=True)
class MMODNetwork:
    """Everything the detector needs from the .dat file."""

    window_width: int
    window_height: int
    nms_iou_thresh: float
    nms_percent_covered_thresh: float
    avg_rgb: tuple[float, float, float]  # float32 values, as dlib keeps them
    pyramid_padding: int
    pyramid_outer_padding: int
    pyramid_down: int  # N of pyramid_down<N>; the .dat does not store it (the C++ type does)
    layers: tuple[Layer, ...] = field(default_factory=tuple)  # from the input upwards
    bytes_read: int = 0
    file_size: int = 0


@dataclass(frozen=True)
class InputLayer:
    kind: str
    avg_rgb: tuple[float, float, float]
    size: tuple[int, int] | None  # (rows, cols) for input_rgb_image_sized


@dataclass(frozen=True)
class DlibNet:
    """A whole dlib network: loss name and parameters, input layer, and the stack from
    the input upwards (layers and residual markers)."""

    loss: str
    loss_params: tuple[float, ...]
    input: InputLayer
    stack: tuple[Layer | Marker, ...]
    bytes_read: int
    file_size: int
