"""Tests of train/: end-to-end training on a tiny slice (the recipe, the CLI, the backbone head).
Evaluation numbers and the data loaders are checked in test_train_data.py."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from train.cli import main


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


def test_an_output_folder_that_cannot_be_made_stops_a_run_before_it_starts(tmp_path: Path, capsys) -> None:
    """(before: `train gender --out X` died in a traceback; a `train loso` run would have trained first)"""
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    for argv in (["gender", "--out", str(blocked / "run")], ["loso", "--out", str(blocked / "loso")]):
        assert main(argv) == 2
        assert f"train: error: {blocked / argv[2].rsplit('/', 1)[-1]}" in capsys.readouterr().err
    assert main(["evaluate", "--model", "m.keras", "--data", ".", "--report", str(blocked / "r")]) == 2
    assert "cannot make the folder (Not a directory)" in capsys.readouterr().err


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
        # a model trained on several sources: the card's reproduce line names them, in order
        sources = read_meta(models / f"{task}.keras").extra.get("sources")
        if sources:
            assert f"train {task} --sources {','.join(sources)} " in card, task
        # a beard model also trained on the real men: the card's reproduce line says so
        real = read_meta(models / f"{task}.keras").extra.get("real_men")
        if real:
            from train.real_men import REAL_MEN_CSVS

            names = real["csv"].split("+")  # several: A+B, given as A,B, or every CSV as "all"
            every = names == [c.name for c in REAL_MEN_CSVS]
            csvs = "all" if every else ",".join(f"train/{c}" for c in names)
            assert f"--men-only --real-men {csvs} " in card, task
            held = f"--real-men-test {','.join(real['test_sources'])}"
            assert (held in card) == bool(real["test_sources"]), task
    opts = TrainOptions(task="gender", data=Path("."), out=Path("."))
    assert (opts.epochs, opts.patience) == (args.epochs, args.patience)


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


def test_a_face_seen_smaller_keeps_its_place_and_loses_its_detail() -> None:
    """``face<N>``: the image as a camera that sees its face N px wide (video's smaller faces)."""
    import cv2

    from train.degrade import at_face_width, degrade

    rng = np.random.default_rng(0)
    img = cv2.resize(
        rng.integers(0, 256, (50, 60, 3), dtype=np.uint8), (240, 200), interpolation=cv2.INTER_NEAREST
    )

    def sharpness(x: np.ndarray) -> float:
        return float(cv2.Laplacian(cv2.cvtColor(x, cv2.COLOR_RGB2GRAY), cv2.CV_64F).var())

    small = degrade(img, "face40", 0, 3, face_width=120)
    assert small.shape == img.shape and small.dtype == np.uint8
    assert np.array_equal(small, at_face_width(img, 120, 40))
    assert sharpness(small) < 0.3 * sharpness(img)
    assert sharpness(degrade(img, "face64", 0, 3, face_width=120)) > sharpness(small)  # bigger: more detail
    as_is = at_face_width(img, 30, 40)  # already smaller than that: not scaled, only compressed
    assert np.abs(as_is.astype(int) - img).mean() < 0.7 * np.abs(small.astype(int) - img).mean()
    with pytest.raises(ValueError, match="unknown degradation"):
        degrade(img, "facex", 0, 0)


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


def test_mirror_rows_are_the_mirrored_chips_own_features_for_every_set() -> None:
    from train.features import Features

    chip = {"a": np.array([[1.0, 2.0]]), "b": np.array([[4.0]])}
    mirrored = {"a": np.array([[3.0, 0.0]]), "b": np.array([[6.0]])}
    x = {**chip, **{k + "_flip": (chip[k] + mirrored[k]) / 2 for k in chip}}
    feats = Features(x, np.array([True]))
    want = np.concatenate([mirrored["a"], mirrored["b"]], axis=1)
    # the same mirrored rows whether the head takes the chip's sets or their flip means
    np.testing.assert_allclose(feats.mirror_matrix("a+b"), want)
    np.testing.assert_allclose(feats.mirror_matrix("a_flip+b_flip"), want)
    np.testing.assert_allclose(feats.matrix("a+b"), [[1.0, 2.0, 4.0]])
