"""The face backbone: dlib's face-recognition ResNet read from its .dat file, ported to ONNX Runtime
and Keras, shared by the classifiers that take its features (both runtimes against each other:
test_face_backbone_runtimes.py).

Parity is against dlib-bin itself (``compute_face_descriptor`` on the whole image and the
landmarks), so the alignment, the chip and the network are all checked at once."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from streamer.track.identity import other_person
from streamer.types import Box
from tests.support.backbone import PARITY_IMAGES, SHARED, needs_shared
from tests.support.backbone import feature_head as _feature_head
from tests.support.backbone import rgb as _rgb
from tests.support.cli import streamer_cli


@pytest.fixture(scope="module", params=["onnxruntime", "keras"])
def backbone(request):
    from streamer.classify.backbone import FaceBackbone

    pytest.importorskip(request.param)
    return FaceBackbone(runtime=request.param)


# --- the reader -------------------------------------------------------------------------------


def test_reader_reads_face_resnet_to_last_byte() -> None:
    import face_recognition_models

    from streamer.dlib_format import AddPrevLayer, ConvLayer, FcLayer, Marker, PoolLayer, read_dlib_net

    net = read_dlib_net(face_recognition_models.face_recognition_model_location())
    assert net.bytes_read == net.file_size
    assert net.loss == "loss_metric_2" and net.input.size == (150, 150)
    kinds = [type(x) for x in net.stack]
    # anet_type: 1 + 28 convolutions (14 residual blocks of 2), 14 add_prev, 4 downsampling
    # blocks (2 markers each: tag then skip) + 14 tags, max_pool, 4 avg_pool, pool_everything.
    assert kinds.count(ConvLayer) == 29 and kinds.count(AddPrevLayer) == 14
    assert kinds.count(Marker) == 14 + 4 * 2 and kinds.count(PoolLayer) == 6
    fc = net.stack[-1]
    assert isinstance(fc, FcLayer) and fc.weights.shape == (256, 128) and fc.bias is None


def test_reader_rejects_truncated_and_padded_files(tmp_path: Path) -> None:
    import face_recognition_models

    from streamer.dlib_format import DatFormatError, read_dlib_net

    data = Path(face_recognition_models.face_recognition_model_location()).read_bytes()
    cut = tmp_path / "cut.dat"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(DatFormatError, match="end of file"):
        read_dlib_net(cut)
    extra = tmp_path / "extra.dat"
    extra.write_bytes(data + b"\0")
    with pytest.raises(DatFormatError, match="1 unread bytes"):
        read_dlib_net(extra)
    with pytest.raises(DatFormatError, match="not found"):
        read_dlib_net(tmp_path / "missing.dat")


# --- parity with dlib-bin ---------------------------------------------------------------------


@pytest.mark.slow
@needs_shared
def test_descriptors_match_dlib(backbone) -> None:
    import dlib
    import face_recognition_models as frm

    reference = dlib.face_recognition_model_v1(frm.face_recognition_model_location())
    shapes = dlib.shape_predictor(frm.pose_predictor_five_point_model_location())
    hog = dlib.get_frontal_face_detector()
    sizes, dist = [], []
    for path in PARITY_IMAGES:
        image = _rgb(path)
        rects = list(hog(image, 1))
        assert rects, path
        boxes = [Box(r.left(), r.top(), r.right(), r.bottom(), 0.0) for r in rects]
        ours = backbone.descriptors(image, boxes)
        for r, d in zip(rects, ours, strict=True):
            ref = np.asarray(reference.compute_face_descriptor(image, shapes(image, r)))
            dist.append(float(np.linalg.norm(d - ref)))
            sizes.append(r.width())
    assert len(dist) >= 6 and max(sizes) > 2.5 * min(sizes), sizes
    assert max(dist) < 0.01, dict(zip(sizes, dist, strict=True))


# --- classifiers on the backbone, in the Engine -----------------------------------------------


@pytest.mark.slow
@needs_shared
def test_engine_feeds_backbone_heads_once_per_face(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from streamer.classify.backbone import FaceBackbone
    from streamer.config import ClassifierConfig
    from streamer.inference.engine import Engine, EngineSpec

    _feature_head(tmp_path / "one.keras")
    _feature_head(tmp_path / "two.keras", "dlib_face_descriptor+dlib_pooled", 128 + 256)
    calls = []
    real = FaceBackbone.features
    monkeypatch.setattr(
        FaceBackbone,
        "features",
        lambda self, x, mirrored=False: calls.append(len(x)) or real(self, x, mirrored),
    )
    spec = EngineSpec(
        detector="mmod",
        classifiers=(
            ClassifierConfig(name="one", model=str(tmp_path / "one.keras")),
            ClassifierConfig(name="two", model=str(tmp_path / "two.keras")),
        ),
    )
    engine = Engine(spec)
    assert engine.status.classifiers == ["one", "two"] and not engine.status.failed
    images = [_rgb(SHARED / "media" / "two_people.jpg"), _rgb(SHARED / "media" / "obama-480p.jpg")]
    results, timings = engine.run(images)
    faces = [f for r in results for f in r.faces]
    assert len(faces) == 3 and calls == [len(faces)]  # one backbone pass for all faces of the batch
    want = engine.face_features(images, [[f.box for f in r.faces] for r in results])["dlib_face_descriptor"]
    for f, d in zip(faces, want, strict=True):
        assert [lab.classifier for lab in f.labels] == ["one", "two"]
        assert f.labels[0].label == ("b" if d[0] > 0 else "a") == f.labels[1].label
        assert f.identity is not None and np.allclose(f.identity, d)  # who it is, for the tracks
    assert timings.classifier_batches == {"one": 3, "two": 3}
    # the identities tell the two people of the first picture apart, and know the one on the left
    # again in the second (the same man: 0.33 apart, against 0.85-0.87 between the two men)
    left, right, obama = faces
    assert other_person(left.identity, right.identity) and other_person(right.identity, obama.identity)
    assert not other_person(left.identity, obama.identity)
    assert not other_person(obama.identity, None)  # unknown: never called someone else
    # a face of a settled track is not classified: no identity either
    (skipped,), _ = engine.run([images[1]], [[obama.box]])
    assert skipped.faces[0].identity is None and not skipped.faces[0].labels


def _compile_counter(models: list) -> Callable[[], int]:
    """How many times the models' predict steps have been traced (TensorFlow) or anything compiled
    (JAX) so far."""
    import keras

    if keras.backend.backend() == "jax":
        import jax.monitoring

        seen = [0]

        def on_event(name: str, *_: object, **__: object) -> None:
            seen[0] += name == "/jax/core/compile/backend_compile_duration"

        jax.monitoring.register_event_duration_secs_listener(on_event)
        return lambda: seen[0]

    def traced() -> int:
        fns = [m.predict_function for m in models]
        return sum(f.experimental_get_tracing_count() for f in fns if f is not None)

    return traced


@pytest.mark.slow
@needs_shared
def test_warm_engine_meets_new_face_counts_without_tracing(tmp_path: Path) -> None:
    """A worker warms its classifiers up before the first frame: the first time a stream shows 1, 3
    or 5 faces at once, no model is traced or compiled then (each new size cost 0.3-0.4 s of boxes
    on TensorFlow), and a cold engine does trace there (what the warm-up saves)."""
    from streamer.config import ClassifierConfig
    from streamer.inference.engine import Engine, EngineSpec

    _feature_head(tmp_path / "head.keras")
    _pixel_model(tmp_path / "pixels.keras")
    spec = EngineSpec(
        detector="mmod",
        classifiers=(
            ClassifierConfig(name="head", model=str(tmp_path / "head.keras")),
            ClassifierConfig(name="pixels", model=str(tmp_path / "pixels.keras")),
        ),
    )
    one, two = _rgb(SHARED / "media" / "obama-480p.jpg"), _rgb(SHARED / "media" / "two_people.jpg")
    batches = [[one], [two, one], [two, one, two]]

    def faces_and_traces(engine: Engine) -> tuple[list[int], int]:
        models = [c.model for c in engine.classifiers]
        if engine.backbone.runtime == "keras":
            models.append(engine.backbone.model)
        count = _compile_counter(models)
        before = count()
        faces = [sum(len(r.faces) for r in engine.run(b)[0]) for b in batches]
        return faces, count() - before

    warm = Engine(spec)
    assert warm.warm_up() > 0
    counts, traced = faces_and_traces(warm)
    assert counts == [1, 3, 5]
    assert traced == 0
    counts_cold, traced_cold = faces_and_traces(Engine(spec))
    assert counts_cold == counts and traced_cold > 0


def _pixel_model(path: Path) -> None:
    import keras

    from streamer.classify import ModelMeta, save_model

    inp = keras.Input((8, 8, 3))
    out = keras.layers.Dense(2, activation="softmax")(keras.layers.GlobalAveragePooling2D()(inp))
    save_model(keras.Model(inp, out), path, ModelMeta(("x", "y"), (8, 8), 0.25, task="test"))


@pytest.mark.parametrize("broken", ["missing", "corrupt", "runtime"])
@needs_shared
def test_broken_backbone_is_a_startup_error_and_boxes_still_come(
    tmp_path: Path, broken: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from streamer.config import ClassifierConfig
    from streamer.inference.engine import Engine, EngineSpec

    _feature_head(tmp_path / "head.keras")
    _pixel_model(tmp_path / "pixels.keras")
    dat = tmp_path / "resnet.dat"
    if broken == "runtime":  # the file is fine, ONNX Runtime fails to make the session
        pytest.importorskip("onnxruntime")
        import face_recognition_models

        import streamer.classify.face_resnet_onnx as onnx_backbone

        def fail(*_: object) -> None:
            raise RuntimeError("no CPU execution provider")

        monkeypatch.setattr(onnx_backbone, "onnx_session", fail)
        dat = Path(face_recognition_models.face_recognition_model_location())
    if broken == "corrupt":
        import face_recognition_models

        dat.write_bytes(
            Path(face_recognition_models.face_recognition_model_location()).read_bytes()[:1_000_000]
        )
    classifiers = (
        ClassifierConfig(name="head", model=str(tmp_path / "head.keras")),
        ClassifierConfig(name="pixels", model=str(tmp_path / "pixels.keras")),
    )
    runtime = "onnxruntime" if broken == "runtime" else "auto"
    spec = EngineSpec(detector="mmod", classifiers=classifiers, face_backbone=str(dat), runtime=runtime)
    engine = Engine(spec)
    assert engine.status.classifiers == ["pixels"] and list(engine.status.failed) == ["head"]
    msg = engine.status.failed["head"]
    if broken == "runtime":
        assert "face backbone on ONNX Runtime" in msg and "no CPU execution provider" in msg
    else:
        assert "face backbone" in msg and str(dat) in msg
        assert ("not found" if broken == "missing" else "end of file") in msg
    assert "classifier head disabled" in caplog.text
    results, _ = engine.run([_rgb(SHARED / "media" / "obama-480p.jpg")])
    assert results[0].error is None and len(results[0].faces) == 1  # boxes are still served
    assert [lab.classifier for lab in results[0].faces[0].labels] == ["pixels"]


# --- the detect command -----------------------------------------------------------------------


@pytest.mark.slow
@needs_shared
def test_detect_descriptors_adds_128_floats_and_keeps_boxes() -> None:
    from streamer.classify.backbone import FaceBackbone

    image = SHARED / "media" / "two_people.jpg"

    runs = streamer_cli(["detect", str(image)], ["detect", "--descriptors", str(image)])
    for r in runs:
        assert r.returncode == 0, r.stderr[-2000:]
    plain, with_d = (json.loads(r.stdout) for r in runs)
    assert len(plain["faces"]) == 2
    assert [{k: v for k, v in f.items() if k != "descriptor"} for f in with_d["faces"]] == plain["faces"]
    rgb, backbone = _rgb(image), FaceBackbone()  # the command's runtime ("auto")
    for f in with_d["faces"]:
        assert len(f["descriptor"]) == 128
        box = Box(f["left"], f["top"], f["right"], f["bottom"], f["confidence"])
        assert np.linalg.norm(np.asarray(f["descriptor"]) - backbone.descriptors(rgb, [box])[0]) < 1e-4


def test_unknown_feature_name_is_a_model_file_error(tmp_path: Path) -> None:
    from streamer.classify import ModelFileError, load_model

    _feature_head(tmp_path / "odd.keras", "dlib_nonexistent")
    with pytest.raises(ModelFileError, match="dlib_nonexistent"):
        load_model(tmp_path / "odd.keras")


def test_serve_without_config_loads_the_shipped_classifiers() -> None:
    from streamer.config import load_config

    root = Path(__file__).resolve().parents[1]
    c = load_config(None, environ={}, shipped_models=True)
    assert [(x.name, Path(x.model)) for x in c.classifiers] == [
        ("gender", root / "models" / "gender.keras"),
        ("beard", root / "models" / "beard.keras"),
    ]
    listed = load_config(root / "config.toml", environ={}).classifiers
    assert [(x.name, x.model, x.threshold) for x in listed] == [
        (x.name, x.model, x.threshold) for x in c.classifiers
    ]
    assert load_config(None, environ={}).classifiers == []  # tests and library callers: opt in
