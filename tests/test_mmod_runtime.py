"""The MMOD network's runtimes and fast paths against their references.

* the layer rewrites every backend runs (48-channel padding, 9x9 split in 1x9 + 9x1)
  compute the folded network's function (numpy forward pass, small canvases);
* ONNX Runtime's scores equal Keras' on a real canvas (same positive cells);
* the reusing canvas builder gives ``build_canvas``'s bits on many sizes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from streamer.detect.mmod.network import (
    FoldedConv,
    fold_layers,
    output_size,
    pad_channels,
    runtime_layers,
    split_rows,
)
from streamer.detect.mmod.pyramid import CanvasBuilder, build_canvas, tile_rects

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
AVG = (122.782, 117.001, 104.298)


@pytest.fixture(scope="module")
def folded() -> list[FoldedConv]:
    import face_recognition_models

    from streamer.dlib_format import read_mmod_dat

    return fold_layers(read_mmod_dat(face_recognition_models.cnn_face_detector_model_location()))


def conv(x: np.ndarray, c: FoldedConv) -> np.ndarray:
    """Reference convolution in float64: (H, W, Cin) -> (H', W', Cout), dlib's padding."""
    kh, kw = c.kernel.shape[:2]
    ph, pw = (kh // 2, kw // 2) if c.stride == 1 else (0, 0)
    xp = np.pad(x.astype(np.float64), ((ph, ph), (pw, pw), (0, 0)))
    oh = (xp.shape[0] - kh) // c.stride + 1
    ow = (xp.shape[1] - kw) // c.stride + 1
    out = np.zeros((oh, ow, c.kernel.shape[3]))
    for dy in range(kh):
        for dx in range(kw):
            patch = xp[dy : dy + c.stride * oh : c.stride, dx : dx + c.stride * ow : c.stride]
            out += patch @ c.kernel[dy, dx].astype(np.float64)
    out += c.bias
    return np.maximum(out, 0) if c.relu else out


def forward(x: np.ndarray, layers: list[FoldedConv]) -> np.ndarray:
    for c in layers:
        x = conv(x, c)
    return x[:, :, 0]


def test_split_of_the_last_convolution_is_exact(folded):
    last = pad_channels(folded, 8)[-1]
    rng = np.random.default_rng(3)
    x = rng.normal(size=(13, 17, last.kernel.shape[2])).astype(np.float32)
    want = conv(x, last)
    for channels in (9, 16):
        first, second = split_rows(last, channels)
        assert first.kernel.shape[:2] == (1, 9) and second.kernel.shape[:2] == (9, 1)
        np.testing.assert_allclose(conv(conv(x, first), second), want, rtol=0, atol=1e-9)
    with pytest.raises(ValueError):
        split_rows(last, 8)  # fewer middle channels than kernel rows


def test_runtime_layers_compute_the_folded_network(folded):
    layers = runtime_layers(folded)
    assert [c.kernel.shape[3] for c in layers] == [16, 32, 32, 48, 48, 48, 16, 1]
    rng = np.random.default_rng(4)
    canvas = rng.normal(scale=0.3, size=(72, 88, 3)).astype(np.float32)
    want = forward(canvas, folded)
    got = forward(canvas, layers)
    assert want.shape == got.shape == (output_size(folded, 72), output_size(folded, 88))
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-9)


@pytest.fixture(scope="module")
def detectors():
    pytest.importorskip("onnxruntime")
    from streamer.detect import make_detector

    return make_detector("mmod", runtime="keras"), make_detector("mmod", runtime="onnxruntime", threads=2)


def test_onnxruntime_scores_equal_keras(detectors):
    import cv2

    keras_det, ort_det = detectors
    assert (keras_det.runtime, ort_det.runtime) == ("keras", "onnxruntime")
    path = SHARED / "media" / "obama-480p.jpg"
    if not path.is_file():
        pytest.skip("shared media missing")
    rgb = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    small = cv2.resize(rgb, (427, 240), interpolation=cv2.INTER_AREA)
    want = keras_det.score_maps([rgb, small])
    got = ort_det.score_maps([rgb, small])  # one batch, two sizes: the mask at work
    for w, g in zip(want, got, strict=True):
        assert w.shape == g.shape and w.size > 0
        assert np.abs(w - g).max() < 1e-4
        assert np.array_equal(w > 0, g > 0)
    assert (want[0] > 0).any()  # the face is there: the comparison covers positive cells
    alone = ort_det.score_maps([small])[0]
    np.testing.assert_allclose(alone, got[1], rtol=0, atol=1e-5)


SIZES = [(1, 1), (5, 5), (7, 40), (17, 33), (61, 97), (240, 320), (239, 321), (360, 640), (480, 640)]


def test_canvas_builder_gives_build_canvas_bits():
    rng = np.random.default_rng(7)
    builder = CanvasBuilder(AVG)
    # Biggest first, then smaller ones into the same buffer: the gaps must be cleared.
    for h, w in [*sorted(SIZES, key=lambda s: -s[0] * s[1]), (480, 640), (61, 97)]:
        image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        tiling = tile_rects(h, w)
        want = build_canvas(image, tiling, AVG)
        got = builder.batch([image], [tiling], 1792, 672)
        assert got.shape == (1, 1792, 672, 3)
        np.testing.assert_array_equal(got[0, : tiling.height, : tiling.width], want)
        assert not got[0, tiling.height :].any() and not got[0, :, tiling.width :].any()


def test_canvas_builder_keeps_no_huge_buffers(monkeypatch):
    rng = np.random.default_rng(9)
    image = rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)
    tiling = tile_rects(120, 160)
    want = build_canvas(image, tiling, AVG)
    builder = CanvasBuilder(AVG)
    monkeypatch.setattr(CanvasBuilder, "MAX_KEPT_BYTES", 1 << 16)  # this canvas is "huge" now
    got = builder.batch([image], [tiling], tiling.height, tiling.width)
    np.testing.assert_array_equal(got[0], want)
    assert builder._buffer.size == 0  # the batch buffer was not kept
    assert not any(key[:2] == (120, 160) for key in builder._plans)  # nor the big level's scratch


def test_canvas_builder_batches_mixed_sizes():
    rng = np.random.default_rng(8)
    images = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in ((120, 160), (90, 70), (120, 160))]
    tilings = [tile_rects(*im.shape[:2]) for im in images]
    height, width = max(t.height for t in tilings) + 5, max(t.width for t in tilings) + 3
    builder = CanvasBuilder(AVG)
    for order in ([0, 1, 2], [1, 2, 0]):
        got = builder.batch([images[i] for i in order], [tilings[i] for i in order], height, width)
        for j, i in enumerate(order):
            want = np.zeros((height, width, 3), np.float32)
            build_canvas(images[i], tilings[i], AVG, out=want)
            np.testing.assert_array_equal(got[j], want)


def test_choose_runtime(monkeypatch):
    import streamer.runtime as rt

    assert rt.choose_runtime("keras") == "keras"
    assert rt.choose_runtime("onnxruntime") == "onnxruntime"
    with pytest.raises(ValueError, match="unknown runtime"):
        rt.choose_runtime("tensorrt")
    pytest.importorskip("onnxruntime")
    monkeypatch.setattr(rt, "keras_has_gpu", lambda: False)
    assert rt.choose_runtime("auto") == "onnxruntime"
    monkeypatch.setattr(rt, "keras_has_gpu", lambda: True)
    assert rt.choose_runtime("auto") == "keras"
    monkeypatch.setattr(rt, "keras_has_gpu", lambda: False)
    monkeypatch.setattr(rt.importlib.util, "find_spec", lambda name: None)
    assert rt.choose_runtime("auto") == "keras"  # onnxruntime not installed


def test_xla_only_where_it_pays(monkeypatch):
    # On TensorFlow's CPU, XLA ran the detector 1.5x slower than TensorFlow's own kernels.
    import streamer.detect.mmod as mmod
    import streamer.runtime as rt

    monkeypatch.setenv("KERAS_BACKEND", "tensorflow")
    monkeypatch.setattr(rt, "keras_has_gpu", lambda: False)
    assert mmod.resolve_jit_compile("auto") is False
    assert mmod.resolve_jit_compile(True) is True
    monkeypatch.setattr(rt, "keras_has_gpu", lambda: True)
    assert mmod.resolve_jit_compile("auto") == "auto"
    monkeypatch.setenv("KERAS_BACKEND", "jax")
    monkeypatch.setattr(rt, "keras_has_gpu", lambda: False)
    assert mmod.resolve_jit_compile("auto") == "auto"


def test_runtime_setting_reaches_the_detector():
    pytest.importorskip("onnxruntime")
    from pydantic import ValidationError

    from streamer.config import PipelineConfig
    from streamer.inference.engine import Engine, EngineSpec

    assert PipelineConfig().runtime == "auto"
    with pytest.raises(ValidationError):
        PipelineConfig(runtime="tensorrt")
    engine = Engine(EngineSpec(detector="mmod", runtime="onnxruntime"))
    assert engine.detector.runtime == "onnxruntime"  # type: ignore[attr-defined]


def test_hand_written_onnx_model_is_valid(folded):
    onnx = pytest.importorskip("onnx")
    from onnx import numpy_helper

    from streamer.detect.mmod.onnx_net import build_onnx

    layers = runtime_layers(folded)
    model = onnx.ModelProto.FromString(build_onnx(layers))
    onnx.checker.check_model(model, full_check=True)  # schema and shape inference
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    assert len(convs) == len(layers)
    for node, c in zip(convs, layers, strict=True):
        attrs = {a.name: list(a.ints) for a in node.attribute}
        kh, kw = c.kernel.shape[:2]
        assert attrs["kernel_shape"] == [kh, kw] and attrs["strides"] == [c.stride] * 2
        assert attrs["pads"] == ([kh // 2, kw // 2] * 2 if c.stride == 1 else [0] * 4)
    weights = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    for i, c in enumerate(layers):
        np.testing.assert_array_equal(weights[f"w{i}"], np.transpose(c.kernel, (3, 2, 0, 1)))
        np.testing.assert_array_equal(weights[f"b{i}"], c.bias)
    dims = [[d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in model.graph.input]
    assert dims == [["batch", "height", "width", 3], ["batch", "rows", "cols", 1]]
