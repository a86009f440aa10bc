"""The evaluation on faces from other sources (train/other_faces.json) and the test-time-flip
and lower-face features: the same numbers in training (train/features.py) as in the service
(Engine)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from train.other_faces import DEFAULT_FILE, REPO, load_annotations, shared_root

SHARED = shared_root()
GENDER = REPO / "models" / "gender.keras"


def test_annotation_file_is_well_formed() -> None:
    raw = json.loads(DEFAULT_FILE.read_text())
    allowed = {"gender": {"female", "male", None}, "beard": {"shaved", "unshaved", None}}
    n = 0
    for entry in raw["images"]:
        assert entry["root"] in ("shared", "repo") and not Path(entry["image"]).is_absolute()
        for face in entry["faces"]:
            left, top, right, bottom = face["box"]
            assert 0 <= left < right and 0 <= top < bottom, entry["image"]
            assert set(face) == {"box", "gender", "beard"}, face
            assert face["gender"] in allowed["gender"] and face["beard"] in allowed["beard"], face
            n += 1
    assert n >= 80
    # The demo clip is part of the repository: its frames are always there.
    assert any(im.frame is not None for im in load_annotations().images)


@pytest.mark.slow
def test_other_source_evaluation_runs_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Two labelled faces of a demo-clip frame and one box where there is no face: the two go
    through the Engine and are scored, the third is counted as missed."""
    from train.cli import main

    raw = json.loads(DEFAULT_FILE.read_text())
    frame = next(e for e in raw["images"] if e["root"] == "repo" and e["frame"] == 270)
    faces = [f for f in frame["faces"] if f["gender"]][:2]
    nowhere = {"box": [560, 300, 600, 340], "gender": "male", "beard": None}
    tiny = {**raw, "images": [{**frame, "faces": [*faces, nowhere]}]}
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(tiny))
    assert main(["evaluate", "--model", str(GENDER), "--data", str(path)]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["n_faces"] == 2 and s["n_missed"] == 1 and s["missed"][0]["box"] == nowhere["box"]
    assert np.sum(s["confusion_matrix"]) == 2
    assert len(s["errors"]) == 2 - s["n_correct"]
    assert s["features"] == json.loads(_meta_json(GENDER))["features"]


def _meta_json(path: Path) -> str:
    from streamer.classify import read_meta

    return read_meta(path).to_json()


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED / "media" / "two_people.jpg").exists(), reason="shared images not found")
def test_flip_and_lower_face_features_are_the_same_in_training_and_in_the_engine(tmp_path: Path) -> None:
    import cv2
    import keras

    from streamer.classify import ModelMeta, save_model
    from streamer.classify.face_resnet import ALL_FEATURES
    from streamer.config import ClassifierConfig
    from streamer.inference.engine import Engine, EngineSpec
    from train.architectures import CONFIGS
    from train.data import Dataset
    from train.faces import detections_or_fail
    from train.features import feature_cache_file, features_for

    paths = [SHARED / "media" / "two_people.jpg", SHARED / "media" / "obama-240p.jpg"]
    ds = Dataset(paths, np.array([0, 1]), ("a", "b"), "test")
    cache = tmp_path / "cache"
    trained = features_for(ds, "mmod", 1, cache, progress=False)
    boxes = [b[:1] for b in detections_or_fail(ds, "mmod", 1, cache, False)]
    assert all(boxes) and trained.found.all()
    # the beard head's sets (lower-face ones among them) and flip means, each a head of its own
    heads = {"flip": "dlib_face_descriptor_flip+dlib_pooled_flip", "lower": CONFIGS["dlib_lower"].features}
    for name, names in heads.items():
        inp = keras.Input((trained.matrix(names).shape[1],))
        save_model(
            keras.Model(inp, keras.layers.Dense(2, activation="softmax")(inp)),
            tmp_path / f"{name}.keras",
            ModelMeta(("a", "b"), (150, 150), 0.25, task="test", features=names),
        )
    engine = Engine(
        EngineSpec(
            detector="mmod",
            classifiers=tuple(ClassifierConfig(name=n, model=str(tmp_path / f"{n}.keras")) for n in heads),
        )
    )
    images = [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in paths]
    served = engine.face_features(images, boxes)
    for k in "+".join(heads.values()).split("+"):
        np.testing.assert_allclose(served[k], trained.x[k], atol=1e-5, rtol=0)
    # the lower face's average is not the whole face's
    assert np.abs(served["dlib_lower2"] - served["dlib_level2"]).max() > 1e-2
    # The mirror pass happened (the flip mean is not the chip's own), and it mirrors left-right:
    # the flip mean of a mirrored chip is that of the chip.
    assert np.abs(served["dlib_pooled_flip"] - served["dlib_pooled"]).max() > 1e-3
    bb = engine.backbone
    chips = np.stack(bb.chips(images[0], boxes[0]))
    a = bb.features(chips, mirrored=True)
    b = bb.features(chips[:, :, ::-1], mirrored=True)
    for k in ("dlib_face_descriptor_flip", "dlib_lower2_flip"):
        np.testing.assert_allclose(a[k], b[k], atol=1e-5, rtol=0)

    # A cache file written before the lower-face sets existed keeps its bytes: the sets it lacks
    # are computed once into a file beside it when first asked for (a head that needs none of
    # them costs no backbone pass), and the two read together give every set.
    again = features_for(ds, "mmod", 1, cache, progress=False)  # boxes read back from their cache
    cfile = feature_cache_file(ds, "mmod", 1, detections_or_fail(ds, "mmod", 1, cache, False), cache)
    old = [k for k in ALL_FEATURES if "lower" not in k and "cheeks" not in k]
    np.savez(cfile, found=again.found, **{k: again.x[k] for k in old})
    before = cfile.read_bytes()
    again = features_for(ds, "mmod", 1, cache, progress=False)
    more = list((cache / "features").glob("*-more-*.npz"))
    assert again.matrix("dlib_pooled").shape == (2, 256) and not more
    assert again.matrix("dlib_lower2+dlib_lower4_flip").shape == (2, 128 + 256)
    assert cfile.read_bytes() == before and len(list((cache / "features").glob("*-more-*.npz"))) == 1
    for k in ALL_FEATURES:
        np.testing.assert_allclose(again.x[k], trained.x[k], atol=1e-5, rtol=0)
