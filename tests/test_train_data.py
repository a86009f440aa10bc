"""Tests of train/ without training: evaluation numbers against a hand-computed confusion matrix,
the data loaders, and clear errors on bad data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.test_train import _write_image
from train.cli import main
from train.data import (
    GENDER_RULE,
    DataError,
    load_any,
    load_celeba,
    load_class_folders,
    read_celeba_attributes,
)
from train.evaluate import confusion_metrics, wilson

# --- evaluation numbers --------------------------------------------------------------------


def test_confusion_metrics_hand_computed() -> None:
    y_true = np.array([0, 0, 0, 0, 1, 1, 1])
    y_pred = np.array([0, 0, 1, 1, 1, 1, 0])
    m = confusion_metrics(y_true, y_pred, ("a", "b"))
    assert m["confusion_matrix"] == [[2, 2], [1, 2]]
    assert m["accuracy"] == round(4 / 7, 4)
    a, b = m["per_class"]["a"], m["per_class"]["b"]  # type: ignore[index]
    assert (a["precision"], a["recall"], a["support"]) == (round(2 / 3, 4), 0.5, 4)
    assert (b["precision"], b["recall"], b["support"]) == (0.5, round(2 / 3, 4), 3)
    assert a["f1"] == b["f1"] == round(4 / 7, 4)


def test_wilson_interval() -> None:
    lo, hi = wilson(95, 100)
    assert lo == pytest.approx(0.8882, abs=1e-3) and hi == pytest.approx(0.9785, abs=1e-3)
    assert wilson(0, 0) == (0.0, 1.0)


def _brightness_model(path: Path) -> None:
    """A model that says "bright" when the mean pixel exceeds 128, else "dark"."""
    import keras

    from streamer.classify import ModelMeta, save_model

    inp = keras.Input((16, 16, 3))
    x = keras.layers.GlobalAveragePooling2D()(inp)
    dense = keras.layers.Dense(1, activation="sigmoid")
    model = keras.Model(inp, dense(x))
    dense.set_weights([np.full((3, 1), 0.1, np.float32), np.array([-0.3 * 128], np.float32)])
    meta = ModelMeta(
        labels=("dark", "bright"),
        input_size=(16, 16),
        crop_margin=0.25,
        task="test",
        extra={"detector": "dlib", "upsample": 0},
    )
    save_model(model, path, meta)


def test_evaluate_known_confusion_matrix(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    model = tmp_path / "bright.keras"
    _brightness_model(model)
    data = tmp_path / "data"
    # dark/: 3 dark images and 1 bright one (-> 1 dark->bright error);
    # bright/: 2 bright images and 1 dark one (-> 1 bright->dark error).
    for i, v in enumerate([30, 40, 50, 220]):
        _write_image(data / "dark" / f"{i}.png", np.full((40, 32, 3), v, np.uint8))
    for i, v in enumerate([200, 230, 20]):
        _write_image(data / "bright" / f"{i}.png", np.full((40, 32, 3), v, np.uint8))
    report = tmp_path / "report"
    rc = main(
        [
            "evaluate",
            "--model",
            str(model),
            "--data",
            str(data),
            "--report",
            str(report),
            "--cache-dir",
            str(tmp_path / "cache"),
            "--quiet",
        ]
    )
    assert rc == 0
    s = json.loads(capsys.readouterr().out)
    assert s["confusion_matrix"] == [[3, 1], [1, 2]]
    assert s["accuracy"] == round(5 / 7, 4)
    assert s["n_images"] == 7
    assert s["n_no_face"] == 7  # flat grey images hold no face: classified whole, still counted
    assert s["per_class"]["dark"]["recall"] == 0.75 and s["per_class"]["bright"]["precision"] == round(
        2 / 3, 4
    )
    for f in ("confusion_matrix.png", "classification_report.txt", "misclassified.png", "summary.json"):
        assert (report / f).is_file(), f
    assert len((report / "misclassified.txt").read_text().splitlines()) == 2


def test_dataframe_loader(tmp_path: Path) -> None:
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(0)
    df = pd.DataFrame(
        {
            "image": [rng.integers(0, 256, (48, 48), dtype=np.uint8) for _ in range(6)],
            "gender": [0, 1, 1, 0, "male", "female"],
        }
    )
    pkl = tmp_path / "faces.pkl"
    df.to_pickle(pkl)
    ds = load_any(pkl, GENDER_RULE, None, tmp_path / "cache")
    assert len(ds) == 6 and ds.y.tolist() == [0, 1, 1, 0, 1, 0]
    assert all(p.is_file() for p in ds.paths)
    pd.DataFrame({"image": df["image"], "gender": [0] * 6}).to_pickle(pkl)
    with pytest.raises(DataError, match="only one class"):
        load_any(pkl, GENDER_RULE, None, tmp_path / "cache2")


# --- bad data ------------------------------------------------------------------------------


def test_missing_data_folder_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    rc = main(["gender", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "o"), "--quiet"])
    assert rc == 2
    assert "data path not found" in capsys.readouterr().err


def test_wrong_labels_file(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    (tmp_path / "list_attr_celeba.txt").write_text("name,gender\n000001.jpg,1\n")
    with pytest.raises(DataError, match="image count"):
        read_celeba_attributes(tmp_path / "list_attr_celeba.txt")
    (tmp_path / "list_attr_celeba.txt").write_text("1\nSmiling Young\n000001.jpg 1 -1\n")
    with pytest.raises(DataError, match="no attribute column"):
        load_celeba(tmp_path, GENDER_RULE)
    (tmp_path / "list_attr_celeba.txt").write_text("2\nMale Young\n000001.jpg 1 -1\n")
    with pytest.raises(DataError, match="says 2 images but 1 rows"):
        load_celeba(tmp_path, GENDER_RULE)


def test_missing_image_files(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "images").mkdir()
    (tmp_path / "list_attr_celeba.txt").write_text("2\nMale\n000001.jpg 1\n000002.jpg -1\n")
    rc = main(["gender", "--data", str(tmp_path), "--out", str(tmp_path / "o"), "--quiet"])
    assert rc == 2
    assert "2 image(s) listed in list_attr_celeba.txt are missing" in capsys.readouterr().err


def test_unreadable_image_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    model = tmp_path / "bright.keras"
    _brightness_model(model)
    _write_image(tmp_path / "d" / "dark" / "0.png", np.zeros((20, 20, 3), np.uint8))
    (tmp_path / "d" / "bright").mkdir()
    (tmp_path / "d" / "bright" / "broken.jpg").write_text("not a jpeg")
    rc = main(
        [
            "evaluate",
            "--model",
            str(model),
            "--data",
            str(tmp_path / "d"),
            "--cache-dir",
            str(tmp_path / "cache"),
            "--quiet",
        ]
    )
    assert rc == 2
    err = capsys.readouterr().err
    assert "unreadable image" in err and "broken.jpg" in err


def test_one_class_folder(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    _write_image(tmp_path / "d" / "male" / "0.png", np.zeros((20, 20, 3), np.uint8))
    with pytest.raises(DataError, match="only one class"):
        load_class_folders(tmp_path / "d")
    rc = main(["gender", "--data", str(tmp_path / "d"), "--out", str(tmp_path / "o"), "--quiet"])
    assert rc == 2
    assert "only one class" in capsys.readouterr().err


def test_unknown_class_folder(tmp_path: Path) -> None:
    _write_image(tmp_path / "d" / "male" / "0.png", np.zeros((20, 20, 3), np.uint8))
    _write_image(tmp_path / "d" / "cat" / "0.png", np.zeros((20, 20, 3), np.uint8))
    with pytest.raises(DataError, match="not labels of this model"):
        load_class_folders(tmp_path / "d", ("female", "male"))


def test_missing_model_file_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    rc = main(["evaluate", "--model", str(tmp_path / "none.keras"), "--data", str(tmp_path)])
    assert rc == 2
    assert "model file not found" in capsys.readouterr().err


def test_the_box_cache_survives_new_modification_times_but_not_new_contents(tmp_path) -> None:
    """A copied or re-mounted data set (same bytes, new mtimes) keeps its cached boxes; a file whose
    bytes changed is detected again."""
    import os

    import cv2
    import numpy as np

    from streamer.types import Box
    from train.crops import detect_all

    class Counting:
        calls = 0

        def detect(self, images, upsample=0):
            Counting.calls += len(images)
            return [[Box(1, 2, 30, 40, 1.0)] for _ in images]

    paths = []
    for i in range(2):
        p = tmp_path / "images" / f"{i}.png"
        p.parent.mkdir(exist_ok=True)
        cv2.imwrite(str(p), np.full((20, 20, 3), i * 50, np.uint8))
        paths.append(p)
    det = Counting()
    first = detect_all(paths, cache_dir=tmp_path / "c", progress=False, detector_obj=det)
    assert Counting.calls == 2 and all(d.boxes for d in first.values())
    for p in paths:
        os.utime(p, (1, 1))  # (a copy: new times, same bytes)
    assert detect_all(paths, cache_dir=tmp_path / "c", progress=False, detector_obj=det) == first
    assert Counting.calls == 2
    cv2.imwrite(str(paths[1]), np.full((20, 20, 3), 255, np.uint8))
    os.utime(paths[1], (1, 1))
    detect_all(paths, cache_dir=tmp_path / "c", progress=False, detector_obj=det)
    assert Counting.calls == 3


def test_caches_built_on_fresh_detections_are_found_with_the_boxes_read_back(tmp_path, monkeypatch) -> None:
    """The feature and crop caches' keys hold each image's box: the detector's full-precision
    confidence on the run that detects, the box cache's rounded one on every later run. Both
    give one key, so the second run reads what the first wrote instead of computing it again."""
    import cv2

    import streamer.detect
    from streamer.classify.face_resnet import ALL_FEATURES
    from streamer.types import Box
    from train.data import Dataset
    from train.faces import crops_for
    from train.features import features_for

    class Detector:
        def detect(self, images, upsample=0):
            return [[Box(2, 3, 30, 33, 1.0632104158401489)] for _ in images]

    class Backbone:
        passes = 0

        def chips(self, image, boxes):
            return [np.zeros((150, 150, 3), np.uint8) for _ in boxes]

        def features(self, chips, mirrored=False):
            Backbone.passes += 1
            return {k: np.ones((len(chips), 4), np.float32) for k in ALL_FEATURES}

    monkeypatch.setattr(streamer.detect, "make_detector", lambda name: Detector())
    paths = []
    for i in range(2):
        p = tmp_path / "images" / f"{i}.png"
        p.parent.mkdir(exist_ok=True)
        cv2.imwrite(str(p), np.full((40, 40, 3), i * 50, np.uint8))
        paths.append(p)
    ds = Dataset(paths, np.array([0, 1]), ("a", "b"), "test")
    cache = tmp_path / "cache"
    first = features_for(ds, "mmod", 1, cache, progress=False, backbone=Backbone())
    assert Backbone.passes == 1 and first.found.all()
    again = features_for(ds, "mmod", 1, cache, progress=False, backbone=Backbone())
    assert Backbone.passes == 1, "the features were computed again"
    assert len(list((cache / "features").glob("*.npz"))) == 1
    np.testing.assert_array_equal(again.matrix("dlib_pooled"), first.matrix("dlib_pooled"))
    crops_for(ds, "mmod", 1, (20, 20), 0.2, cache, progress=False)
    crops_for(ds, "mmod", 1, (20, 20), 0.2, cache, progress=False)
    assert len(list((cache / "crops").glob("*.npz"))) == 1
