"""Reader for dlib's serialized dnn networks: the MMOD face detector
(``mmod_human_face_detector.dat``) and the face-recognition ResNet
(``dlib_face_recognition_resnet_model_v1.dat``). Shared by both models.

dlib's stream format (dlib/serialize.h): an integer is one control byte (low nibble:
number of magnitude bytes, high bit: negative) followed by the magnitude, little-endian;
a float/double is an integer mantissa then an integer exponent (value = m * 2**e); a
string is its length (integer) then its bytes; a bool is the character '1' or '0'.
dnn tensors (dlib/dnn/tensor.h) are ``version, n, k, nr, nc`` then raw little-endian
float32 values; alias tensors are ``version, n, k, nr, nc`` with no data.

The layer types live in :mod:`streamer.dlib_layers`. The network is stored as
``add_loss_layer`` -> nested ``add_layer``s: every level writes its version, then its
sub-network, then its own layer, so the layers come out from the input upwards.
:func:`read_mmod_dat` walks that structure exactly and insists on ending at the file's last byte.

Residual networks add ``add_tag_layer``/``add_skip_layer`` wrappers: each writes only
its version (1; an ``add_layer`` writes 2, and 3 for the one over the input) then its
sub-network, and nothing after it. :func:`read_dlib_net` therefore records one
:class:`Marker` per version-1 wrapper at its place in the layer stack; the tag ids are
not stored in the file (they are part of the C++ type), see :func:`resolve_residuals`.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from streamer.dlib_layers import (
    AddPrevLayer,
    AffineLayer,
    BatchNormLayer,
    ConvLayer,
    DatFormatError,
    DlibNet,
    FcLayer,
    InputLayer,
    Layer,
    Marker,
    MMODNetwork,
    PoolLayer,
    ReluLayer,
)

__all__ = [
    "AddPrevLayer",
    "AffineLayer",
    "BatchNormLayer",
    "ConvLayer",
    "DatFormatError",
    "DlibNet",
    "FcLayer",
    "InputLayer",
    "Layer",
    "MMODNetwork",
    "Marker",
    "PoolLayer",
    "ReluLayer",
    "read_dlib_net",
    "read_mmod_dat",
]


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def _take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise DatFormatError(f"unexpected end of file at byte {self.pos} (wanted {n} more)")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def integer(self) -> int:
        control = self._take(1)[0]
        size = control & 0x0F
        if size > 8:
            raise DatFormatError(f"bad integer control byte {control:#x} at byte {self.pos - 1}")
        value = int.from_bytes(self._take(size), "little") if size else 0
        return -value if control & 0x80 else value

    def real(self) -> float:
        mantissa = self.integer()
        exponent = self.integer()
        # dlib marks inf/-inf/nan with reserved exponents 32000..32002.
        if exponent == 32000:
            return float("inf")
        if exponent == 32001:
            return float("-inf")
        if exponent == 32002:
            return float("nan")
        if abs(exponent) > 2000:
            raise DatFormatError(f"bad float exponent {exponent} before byte {self.pos}")
        return float(np.ldexp(np.float64(mantissa), exponent))

    def string(self) -> str:
        n = self.integer()
        return self._take(n).decode("latin-1")

    def peek_string(self) -> str | None:
        """The string at the current position, if one plausibly starts here; position unchanged."""
        start = self.pos
        try:
            n = self.integer()
            if not 0 < n < 64:
                return None
            raw = self._take(n)
        except DatFormatError:
            return None
        finally:
            self.pos = start
        return raw.decode("latin-1") if all(32 < b < 127 for b in raw) else None

    def boolean(self) -> bool:
        ch = self._take(1)
        if ch not in (b"0", b"1"):
            raise DatFormatError(f"bad bool {ch!r} at byte {self.pos - 1}")
        return ch == b"1"

    def tensor(self) -> np.ndarray:
        version = self.integer()
        if version != 2:
            raise DatFormatError(f"unsupported tensor version {version} at byte {self.pos}")
        shape = tuple(self.integer() for _ in range(4))
        count = math.prod(shape)
        if min(shape) < 0 or 4 * count > len(self.data) - self.pos:
            raise DatFormatError(f"bad tensor shape {shape} at byte {self.pos} (unexpected end of file)")
        values = np.frombuffer(self._take(4 * count), dtype="<f4").astype(np.float32)
        return values.reshape(shape)

    def alias_tensor(self) -> tuple[int, int, int, int]:
        version = self.integer()
        if version != 1:
            raise DatFormatError(f"unsupported alias_tensor version {version} at byte {self.pos}")
        return tuple(self.integer() for _ in range(4))  # type: ignore[return-value]


def _read_layer(r: _Reader) -> Layer:
    kind = r.string()
    if kind == "con_4":
        params = r.tensor().reshape(-1)
        num_filters = r.integer()
        nr, nc = r.integer(), r.integer()
        stride = (r.integer(), r.integer())
        padding = (r.integer(), r.integer())
        filt = r.alias_tensor()
        r.alias_tensor()  # biases
        for _ in range(4):  # learning-rate / weight-decay multipliers
            r.real()
        n_w = int(np.prod(filt))
        if filt[0] != num_filters or filt[2:] != (nr, nc) or params.size != n_w + num_filters:
            raise DatFormatError("inconsistent con_ layer shapes")
        return ConvLayer(
            weights=params[:n_w].reshape(filt).copy(),
            bias=params[n_w:].copy(),
            stride=stride,
            padding=padding,
        )
    if kind in ("bn_con2", "bn_fc2"):
        params = r.tensor().reshape(-1)
        g_shape = r.alias_tensor()
        r.alias_tensor()  # beta
        r.tensor()  # means (training batch statistics)
        r.tensor()  # invstds
        running_mean = r.tensor().reshape(-1)
        running_var = r.tensor().reshape(-1)
        r.integer()  # num_updates
        r.integer()  # running_stats_window_size
        for _ in range(4):
            r.real()
        eps = r.real()
        k = int(np.prod(g_shape))
        return BatchNormLayer(
            gamma=params[:k].copy(),
            beta=params[k : 2 * k].copy(),
            running_mean=running_mean,
            running_var=running_var,
            eps=eps,
        )
    if kind == "affine_":
        params = r.tensor().reshape(-1)
        g_shape = r.alias_tensor()
        r.alias_tensor()
        r.integer()  # mode
        k = int(np.prod(g_shape))
        return AffineLayer(gamma=params[:k].copy(), beta=params[k : 2 * k].copy())
    if kind == "relu_":
        return ReluLayer()
    if kind in ("max_pool_2", "avg_pool_2"):
        nr, nc, sy, sx, py, px = (r.integer() for _ in range(6))
        return PoolLayer(kind[:3], (nr, nc), (sy, sx), (py, px))
    if kind == "fc_2":
        n_out, n_in = r.integer(), r.integer()
        params = r.tensor().reshape(-1)
        w_shape = r.alias_tensor()
        b_shape = r.alias_tensor()
        bias_mode = r.integer()  # 0: FC_HAS_BIAS, 1: FC_NO_BIAS
        for _ in range(4):
            r.real()
        n_w = int(np.prod(w_shape))
        if w_shape[:2] != (n_in, n_out) or params.size != n_w + int(np.prod(b_shape)):
            raise DatFormatError("inconsistent fc_ layer shapes")
        bias = None if bias_mode == 1 else params[n_w:].copy()
        return FcLayer(weights=params[:n_w].reshape(n_in, n_out).copy(), bias=bias)
    if kind == "add_prev_":
        return AddPrevLayer()
    raise DatFormatError(f"unsupported layer {kind!r} at byte {r.pos}")


def _read_mmod_options(r: _Reader) -> tuple[int, int, float, float]:
    version = r.integer()
    if version != 1:
        # Later versions store a list of detector windows with labels, bounding box
        # regression and more; the face detector shipped by dlib uses version 1.
        raise DatFormatError(f"mmod_options version {version} is not supported (only 1)")
    width, height = r.integer(), r.integer()
    r.real()  # loss_per_false_alarm
    r.real()  # loss_per_missed_target
    r.real()  # truth_match_iou_threshold
    nms_iou, nms_covered = r.real(), r.real()
    r.real(), r.real()  # overlaps_ignore
    return width, height, nms_iou, nms_covered


def _layer_versions(r: _Reader, limit: int = 10000) -> list[int]:
    """One version integer per add_layer, outermost first, up to the input layer's name."""
    versions: list[int] = []
    while True:
        versions.append(r.integer())
        nxt = r.peek_string()
        if nxt is not None and nxt.startswith("input"):
            return versions
        if len(versions) > limit:
            raise DatFormatError("no input layer found")


def read_mmod_dat(path: str | Path, pyramid_down: int = 6) -> MMODNetwork:
    """Parse a dlib ``loss_mmod`` network file; raises DatFormatError unless it ends exactly."""
    data = Path(path).read_bytes()
    r = _Reader(data)
    if r.integer() != 1:
        raise DatFormatError("unexpected add_loss_layer version")
    if (name := r.string()) != "loss_mmod_":
        raise DatFormatError(f"not an MMOD network (loss {name!r})")
    width, height, nms_iou, nms_covered = _read_mmod_options(r)

    versions = _layer_versions(r)
    kind = r.string()
    if kind not in ("input_rgb_image_pyramid", "input_rgb_image_pyramid2"):
        raise DatFormatError(f"unsupported input layer {kind!r}")
    avg = (np.float32(r.real()), np.float32(r.real()), np.float32(r.real()))
    padding, outer_padding = 10, 11
    if kind == "input_rgb_image_pyramid2":
        padding, outer_padding = r.integer(), r.integer()

    layers: list[Layer] = []
    for depth, version in enumerate(reversed(versions)):
        layers.append(_read_layer(r))
        for _ in range(3):  # this_layer_setup_called, gradient_input_is_stale, output disabled
            r.boolean()
        r.tensor()  # x_grad
        r.tensor()  # cached_output
        if depth == 0 or version >= 2:
            r.tensor()  # grad_final (innermost) or params_grad
        if depth == 0 and version >= 3:
            r.integer()  # _sample_expansion_factor
    if r.pos != len(data):
        raise DatFormatError(f"{len(data) - r.pos} unread bytes after the network")
    return MMODNetwork(
        window_width=width,
        window_height=height,
        nms_iou_thresh=nms_iou,
        nms_percent_covered_thresh=nms_covered,
        avg_rgb=(float(avg[0]), float(avg[1]), float(avg[2])),
        pyramid_padding=padding,
        pyramid_outer_padding=outer_padding,
        pyramid_down=pyramid_down,
        layers=tuple(layers),
        bytes_read=r.pos,
        file_size=len(data),
    )


_LOSS_PARAMS = {"loss_metric_2": 2, "loss_metric_": 2}


def read_dlib_net(path: str | Path) -> DlibNet:
    """Parse a dlib network with a ``loss_metric`` head (the face-recognition ResNet);
    raises DatFormatError unless the file is read to its last byte."""
    path = Path(path)
    if not path.is_file():
        raise DatFormatError(f"{path}: file not found")
    data = path.read_bytes()
    r = _Reader(data)
    try:
        if r.integer() != 1:
            raise DatFormatError("unexpected add_loss_layer version")
        loss = r.string()
        if loss not in _LOSS_PARAMS:
            raise DatFormatError(f"unsupported loss layer {loss!r}")
        loss_params = tuple(r.real() for _ in range(_LOSS_PARAMS[loss]))
        versions = _layer_versions(r)
        kind = r.string()
        if kind not in ("input_rgb_image_sized", "input_rgb_image"):
            raise DatFormatError(f"unsupported input layer {kind!r}")
        avg = tuple(float(np.float32(r.real())) for _ in range(3))
        size = (r.integer(), r.integer()) if kind == "input_rgb_image_sized" else None
        stack: list[Layer | Marker] = []
        for depth, version in enumerate(reversed(versions)):
            if version == 1 and depth > 0:
                stack.append(Marker())
                continue
            if version not in (2, 3):
                raise DatFormatError(f"unsupported add_layer version {version}")
            stack.append(_read_layer(r))
            for _ in range(3):  # this_layer_setup_called, gradient_input_is_stale, output disabled
                r.boolean()
            r.tensor()  # x_grad
            r.tensor()  # cached_output
            r.tensor()  # grad_final (innermost) or params_grad
            if depth == 0 and version >= 3:
                r.integer()  # _sample_expansion_factor
    except DatFormatError as e:
        raise DatFormatError(f"{path}: {e}") from e
    if r.pos != len(data):
        raise DatFormatError(f"{path}: {len(data) - r.pos} unread bytes after the network")
    return DlibNet(loss, loss_params, InputLayer(kind, avg, size), tuple(stack), r.pos, len(data))
