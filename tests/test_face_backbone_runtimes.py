"""The face backbone on its two runtimes: ONNX Runtime's graph, written from the same folded steps
as the Keras model, gives the same features; the graph is valid ONNX; the setting reaches the
engine."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from streamer.types import Box
from tests.support.backbone import PARITY_IMAGES, feature_head, needs_shared, rgb


@pytest.mark.slow
@needs_shared
def test_both_runtimes_give_every_feature_set_alike_and_batch_size_changes_nothing() -> None:
    """ONNX Runtime's graph is written from the same folded steps as the Keras model: every
    feature set (mirrored ones too) agrees, whatever the batch size (Keras pads a batch up to a
    power of two, ONNX Runtime does not pad at all)."""
    pytest.importorskip("onnxruntime")
    import dlib

    from streamer.classify.backbone import FaceBackbone
    from streamer.classify.face_resnet import ALL_FEATURES, FEATURE_SIZES

    ort, ref = FaceBackbone(runtime="onnxruntime"), FaceBackbone(runtime="keras")
    assert (ort.runtime, ref.runtime) == ("onnxruntime", "keras")
    hog = dlib.get_frontal_face_detector()
    chips = []
    for path in PARITY_IMAGES:
        image = rgb(path)
        boxes = [Box(r.left(), r.top(), r.right(), r.bottom(), 0.0) for r in hog(image, 1)]
        chips += ort.chips(image, boxes)
    assert len(chips) >= 6
    got, want = ort.features(chips, mirrored=True), ref.features(chips, mirrored=True)
    assert set(got) == set(want) == set(ALL_FEATURES)
    for name in ALL_FEATURES:
        assert got[name].shape == (len(chips), FEATURE_SIZES[name.removesuffix("_flip")])
        assert np.abs(got[name] - want[name]).max() < 1e-4 * max(1.0, np.abs(want[name]).max()), name
    one_by_one = np.concatenate([ort.features([c])["dlib_face_descriptor"] for c in chips[:3]])
    assert np.abs(one_by_one - got["dlib_face_descriptor"][:3]).max() < 1e-5
    assert ort.features(np.zeros((0, 150, 150, 3), np.float32))["dlib_lower4"].shape == (0, 256)


def test_hand_written_face_onnx_model_is_valid() -> None:
    onnx = pytest.importorskip("onnx")
    import face_recognition_models

    from streamer.classify.face_resnet import FEATURE_SIZES, FEATURES, plan
    from streamer.classify.face_resnet_onnx import build_onnx
    from streamer.dlib_format import read_dlib_net

    ops = plan(read_dlib_net(face_recognition_models.face_recognition_model_location()))
    model = onnx.ModelProto.FromString(build_onnx(ops))
    onnx.checker.check_model(model, full_check=True)  # schema and shape inference
    assert [o.name for o in model.graph.output] == list(FEATURES)
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    for o in inferred.graph.output:
        assert o.type.tensor_type.shape.dim[1].dim_value == FEATURE_SIZES[o.name]
    assert sum(n.op_type == "Conv" for n in model.graph.node) == 29
    assert sum(n.op_type == "Add" for n in model.graph.node) == 14 + 1  # residuals, and the cheeks' sides


def test_runtime_setting_reaches_the_backbone(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    from streamer.config import ClassifierConfig
    from streamer.inference.engine import Engine, EngineSpec

    feature_head(tmp_path / "head.keras")
    heads = (ClassifierConfig(name="head", model=str(tmp_path / "head.keras")),)
    for runtime in ("keras", "onnxruntime"):
        engine = Engine(EngineSpec(detector="mmod", classifiers=heads, runtime=runtime))
        assert engine.backbone is not None and engine.backbone.runtime == runtime
