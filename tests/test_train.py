"""Tests of train/: end-to-end training on a tiny slice, evaluation numbers against a
hand-computed confusion matrix, and clear errors on bad data."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

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


def _shared() -> Path:
    env = os.environ.get("STREAMER_SHARED")
    return Path(env) if env else Path(__file__).resolve().parents[1].parent / "shared"


CELEBA = _shared() / "data" / "celeba"
needs_celeba = pytest.mark.skipif(
    not (CELEBA / "list_attr_celeba.txt").exists(), reason="shared CelebA not found"
)


def _write_image(path: Path, rgb: np.ndarray) -> None:
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


def _train_cli(
    task: str, data: Path, config: str, out: Path, model: Path, epochs: int, cache: Path, *extra: str
) -> int:
    """``train TASK`` on ``data`` without evaluation or progress bars; its exit code."""
    args = ["--data", str(data), "--config", config, "--out", str(out), "--model", str(model)]
    return main(
        [task, *args, "--epochs", str(epochs), "--cache-dir", str(cache), *extra, "--quiet", "--no-eval"]
    )


@pytest.fixture(scope="module")
def tiny_celeba(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first 40 CelebA images with their attribute rows, in a CelebA-style folder."""
    if not (CELEBA / "list_attr_celeba.txt").exists():
        pytest.skip("shared CelebA not found")
    root = tmp_path_factory.mktemp("celeba")
    lines = (CELEBA / "list_attr_celeba.txt").read_text().splitlines()
    n = 40
    (root / "list_attr_celeba.txt").write_text("\n".join([str(n), lines[1], *lines[2 : 2 + n]]) + "\n")
    (root / "images").mkdir()
    for row in lines[2 : 2 + n]:
        name = row.split()[0]
        shutil.copy(CELEBA / "images" / name, root / "images" / name)
    return root


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


# --- training end to end -------------------------------------------------------------------


@needs_celeba
def test_train_gender_end_to_end(tiny_celeba: Path, cache_dir: Path, tmp_path: Path) -> None:
    from streamer.classify import Classifier, load_model
    from train.fit import TrainOptions, train

    m = train(
        TrainOptions(
            task="gender",
            config="gender_tutorial",
            data=tiny_celeba,
            out=tmp_path / "run",
            epochs=1,
            batch_size=16,
            cache_dir=cache_dir,
            progress=False,
        )
    )
    path = tmp_path / "run" / "model.keras"
    model, meta = load_model(path)
    assert meta.labels == ("female", "male")
    assert meta.input_size == (64, 64)
    assert meta.crop_margin == 0.25
    assert meta.task == "gender"
    assert meta.attribute == "Male" and meta.positive_label == "male"
    assert meta.extra["detector"] == "mmod" and meta.extra["config"] == "gender_tutorial"
    assert model.output_shape[-1] == 2
    for f in (
        "history.png",
        "metrics.json",
        "report_test/confusion_matrix.png",
        "report_val/misclassified.png",
    ):
        assert (tmp_path / "run" / f).is_file(), f
    assert any((tmp_path / "run" / "tensorboard").rglob("events.out.tfevents.*"))
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert saved["n_images"] == 40 and saved["split"]["n_test"] == 4
    assert m["test"]["n_images"] == 4  # type: ignore[index]
    p = Classifier("g", path).predict_proba(np.zeros((3, 64, 64, 3), np.uint8))
    assert p.shape == (3, 2) and np.allclose(p.sum(axis=1), 1, atol=1e-5)


@needs_celeba
def test_train_beard_cli(
    tiny_celeba: Path, cache_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from streamer.classify import load_model

    model_path = tmp_path / "beard.keras"
    rc = _train_cli(
        "beard",
        tiny_celeba,
        "beard_tutorial",
        tmp_path / "run",
        model_path,
        1,
        cache_dir,
        "--batch-size",
        "16",
    )
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["config"] == "beard_tutorial" and out["n_images"] == 40
    model, meta = load_model(model_path)
    assert meta.labels == ("shaved", "unshaved")
    assert meta.attribute == "No_Beard" and meta.positive_label == "shaved"
    assert meta.extra["label_rule"]["unless_any"] == ["5_o_Clock_Shadow", "Goatee", "Mustache"]
    assert model.output_shape[-1] == 1  # one sigmoid unit: P(unshaved)


@needs_celeba
def test_backbone_head_trains_and_evaluates_end_to_end(
    tiny_celeba: Path, cache_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """dlib_resnet: cached face-backbone features, a head fitted in seconds, a model file that
    names its features, and ``train evaluate`` going through the backbone again."""
    from streamer.classify import Classifier, load_model

    model_path = tmp_path / "gender.keras"
    rc = _train_cli("gender", tiny_celeba, "dlib_resnet", tmp_path / "run", model_path, 20, cache_dir)
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["config"] == "dlib_resnet" and out["detector"] == "mmod"
    assert list((cache_dir / "features").glob("dlib_resnet-flip-mmod-up1-*.npz"))
    model, meta = load_model(model_path)
    assert meta.features == "dlib_face_descriptor+dlib_pooled" and meta.input_size == (150, 150)
    assert model.input_shape[-1] == 128 + 256
    assert Classifier("g", model_path).uses_backbone
    rc = main(
        [
            *("evaluate", "--model", str(model_path), "--data", str(tiny_celeba), "--split", "train"),
            *("--cache-dir", str(cache_dir), "--report", str(tmp_path / "report"), "--quiet"),
        ]
    )
    assert rc == 0
    s = json.loads(capsys.readouterr().out)
    assert s["features"] == "dlib_face_descriptor+dlib_pooled" and s["detector"] == "mmod"
    # Identity descriptors separate gender easily: the head fits its own training faces.
    assert s["accuracy"] >= 0.9, s["confusion_matrix"]


def test_default_recipe_is_the_shipped_models() -> None:
    """``train gender`` / ``train beard`` with no --config retrain what models/ ships (a user
    retraining on their own faces gets the recipe the cards measure, not a tutorial CNN)."""
    from streamer.classify import read_meta
    from train.cli import _parser
    from train.fit import TASKS, TrainOptions

    models = Path(__file__).resolve().parents[1] / "models"
    for task in ("gender", "beard"):
        shipped = read_meta(models / f"{task}.keras").extra["config"]
        args = _parser().parse_args([task])
        assert args.config == TASKS[task][1] == shipped, task
        # the card's reproduce line is the CLI's defaults
        card = (models / f"{task}.md").read_text()
        assert f"--epochs {args.epochs} --patience {args.patience}" in card, task
    opts = TrainOptions(task="gender", data=Path("."), out=Path("."))
    assert (opts.epochs, opts.patience) == (args.epochs, args.patience)


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


# --- video-like degradations -----------------------------------------------------------------


def test_degradations_are_deterministic_and_do_what_they_say() -> None:
    import cv2

    from train.degrade import KINDS, VIDEO, degrade

    img = cv2.cvtColor(cv2.imread(str(CELEBA / "images" / "000001.jpg")), cv2.COLOR_BGR2RGB)
    if img is None:
        pytest.skip("shared CelebA not found")

    def sharpness(x: np.ndarray) -> float:
        return float(cv2.Laplacian(cv2.cvtColor(x, cv2.COLOR_RGB2GRAY), cv2.CV_64F).var())

    for kind in (*KINDS, VIDEO):
        a, b = degrade(img, kind, 0, 7), degrade(img, kind, 0, 7)
        assert a.shape == img.shape and a.dtype == np.uint8
        assert np.array_equal(a, b), kind  # the same image, seed and index: the same result
    for kind in ("blur", "motion", "combined"):
        assert sharpness(degrade(img, kind, 0, 0)) < 0.5 * sharpness(img), kind
    assert degrade(img, "dark", 0, 0).mean() < 0.7 * img.mean()
    # the training mix differs from image to image, and most copies are changed
    copies = [degrade(img, VIDEO, 0, i) for i in range(20)]
    assert sum(not np.array_equal(c, img) for c in copies) >= 15
    assert len({c.tobytes() for c in copies}) >= 15
    with pytest.raises(ValueError, match="unknown degradation"):
        degrade(img, "fog", 0, 0)


@needs_celeba
def test_video_config_trains_on_degraded_copies_and_evaluates_degraded(
    tiny_celeba: Path, cache_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """dlib_resnet_video: every training face also as two video-like copies (their own cached
    features), and ``train evaluate --degrade`` measures a head on degraded faces."""
    model_path = tmp_path / "gender.keras"
    rc = _train_cli("gender", tiny_celeba, "dlib_resnet_video", tmp_path, model_path, 3, cache_dir)
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["degraded_copies"] == 2 and out["rows_fit"] == 3 * out["split"]["n_train"]
    feats = cache_dir / "features"
    copies = [np.load(next(feats.glob(f"*-video{k}v*.npz"))) for k in (0, 1)]
    d = "dlib_face_descriptor"
    clean = next(  # the whole data set's clean features (other tests may cache a split's)
        z for z in map(np.load, feats.glob("*-up1-[0-9a-f]*.npz")) if len(z[d]) == len(copies[0][d]) == 40
    )
    moved = [np.linalg.norm(c[d] - clean[d], axis=1) for c in copies]
    assert all((m > 1e-3).mean() >= 0.8 for m in moved)  # most copies are really degraded
    assert (np.linalg.norm(copies[0][d] - copies[1][d], axis=1) > 1e-3).mean() >= 0.6
    assert all(float(np.median(m)) < 0.6 for m in moved)  # and still the same faces

    ev = ["evaluate", "--model", str(model_path), "--data", str(tiny_celeba), "--split", "test"]
    rc = main(
        [*ev, "--cache-dir", str(cache_dir), "--report", str(tmp_path / "r"), "--quiet", "--degrade", "blur"]
    )
    assert rc == 0
    s = json.loads(capsys.readouterr().out)
    assert s["degraded"] == "blur" and s["n_images"] == 4
    assert list(feats.glob("*-blur0v*.npz"))
    other = Path(__file__).resolve().parents[1] / "train" / "other_faces.json"
    assert main(["evaluate", "--model", str(model_path), "--data", str(other), "--degrade", "blur"]) == 2
