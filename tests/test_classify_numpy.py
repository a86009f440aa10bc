"""Feature heads run in NumPy (streamer/classify/feature_head.py): the same probabilities as Keras
from the same file, any other model still on Keras, a broken head a clear start-up error, and a
CPU worker on the shipped config that never loads TensorFlow."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from streamer.classify import Classifier, ModelFileError, ModelMeta, save_model

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = [ROOT / "models" / "gender.keras", ROOT / "models" / "beard.keras"]


def realistic_rows(clf: Classifier, n: int, seed: int = 0) -> np.ndarray:
    """Feature rows spread as the head's training features were (its Normalization's statistics)."""
    mean, scale = clf.head.steps[0][1]  # type: ignore[union-attr]
    rng = np.random.default_rng(seed)
    return (mean + scale * rng.normal(size=(n, len(mean)))).astype(np.float32)


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_heads_give_keras_probabilities(path: Path) -> None:
    clf = Classifier(path.stem, path)
    assert clf.head is not None  # the shipped heads are read without Keras
    x = realistic_rows(clf, 300)
    ours = clf.predict_proba(x)
    keras_p = np.asarray(clf.model.predict(x, verbose=0))
    assert ours.shape == keras_p.shape == (300, len(clf.labels))
    assert np.abs(ours - keras_p).max() < 1e-5
    assert (ours.argmax(1) == keras_p.argmax(1)).all()
    assert 0 < ours[:, 1].mean() < 1 and ours.std() > 0.05  # (rows that the head tells apart)


def _trained_head(tmp_path: Path, head: str, hidden: int) -> Path:
    """A head built as train/architectures.py builds one, with random (not zero) weights."""
    import keras

    from train.architectures import CONFIGS, build_feature_head

    cfg = CONFIGS["dlib_resnet"]
    cfg = type(cfg)(**{**cfg.__dict__, "head": head, "hidden": hidden})
    rng = np.random.default_rng(1)
    dim = 128 + 256
    stats = (rng.normal(size=dim).astype(np.float32), rng.uniform(0.5, 2, size=dim).astype(np.float32))
    model = build_feature_head(cfg, 2, head, 0, stats)
    for layer in model.layers:
        if isinstance(layer, keras.layers.Dense):
            shapes = [w.shape for w in layer.get_weights()]
            layer.set_weights([rng.normal(0, 0.3, size=s).astype(np.float32) for s in shapes])
    path = tmp_path / f"{head}-{hidden}.keras"
    save_model(model, path, ModelMeta(("a", "b"), (150, 150), 0.25, task="t", features=cfg.features))
    return path


@pytest.mark.parametrize(("head", "hidden"), [("softmax", 64), ("sigmoid", 0), ("sigmoid", 32)])
def test_every_head_shape_the_trainer_builds(tmp_path: Path, head: str, hidden: int) -> None:
    clf = Classifier("t", _trained_head(tmp_path, head, hidden))
    assert clf.head is not None
    x = realistic_rows(clf, 50, seed=2)
    keras_p = np.asarray(clf.model.predict(x, verbose=0))
    if keras_p.shape[1] == 1:  # a sigmoid head: probability of the second label
        keras_p = np.concatenate([1 - keras_p, keras_p], axis=1)
    assert np.abs(clf.predict_proba(x) - keras_p).max() < 1e-5


def test_a_sequential_head_without_an_input_layer(tmp_path: Path) -> None:
    import keras

    model = keras.Sequential([keras.layers.Dense(8, activation="relu"), keras.layers.Dense(2, "softmax")])
    model.build((None, 128))
    path = tmp_path / "sequential.keras"
    save_model(model, path, ModelMeta(("a", "b"), (150, 150), 0.25, features="dlib_face_descriptor"))
    clf = Classifier("s", path)
    assert clf.head is not None and clf.inputs == 128
    x = np.random.default_rng(3).normal(size=(6, 128)).astype(np.float32)
    assert np.abs(clf.predict_proba(x) - np.asarray(model.predict(x, verbose=0))).max() < 1e-5


def test_a_head_with_another_activation_runs_on_keras(tmp_path: Path) -> None:
    import keras

    layers = [keras.Input((128,)), keras.layers.Dense(8, activation="gelu"), keras.layers.Dense(2, "softmax")]
    path = tmp_path / "gelu.keras"
    save_model(
        keras.Sequential(layers),
        path,
        ModelMeta(("a", "b"), (150, 150), 0.25, features="dlib_face_descriptor"),
    )
    clf = Classifier("g", path)
    assert clf.head is None and clf.predict_proba(np.zeros((2, 128), np.float32)).shape == (2, 2)
    odd = tmp_path / "odd.keras"  # an activation that is not a name: still no crash, Keras says what is wrong
    with zipfile.ZipFile(path) as z:
        config = json.loads(z.read("config.json"))
    for layer in config["config"]["layers"]:  # (every Dense: the first one is checked first)
        if layer["class_name"] == "Dense":
            layer["config"]["activation"] = {"class_name": "Nonesuch", "config": {}}
    _rewrite(path, odd, "config.json", json.dumps(config).encode())
    with pytest.raises(ModelFileError, match=r"odd\.keras"):
        Classifier("o", odd)


def test_a_pixel_model_still_runs_on_keras(tmp_path: Path) -> None:
    import keras

    layers = [keras.Input((32, 32, 3)), keras.layers.Flatten(), keras.layers.Dense(2, "softmax")]
    model = keras.Sequential(layers)
    path = tmp_path / "pixels.keras"
    save_model(model, path, ModelMeta(("a", "b"), (32, 32), 0.25))
    clf = Classifier("p", path)
    assert clf.head is None and not clf.uses_backbone
    assert clf.predict_proba(np.zeros((3, 32, 32, 3), np.uint8)).shape == (3, 2)


def _rewrite(src: Path, dst: Path, name: str, data: bytes) -> None:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.infolist():
            zout.writestr(item, data if item.filename == name else zin.read(item.filename))


def test_a_broken_head_is_a_clear_error_naming_the_file(tmp_path: Path) -> None:
    truncated = tmp_path / "truncated.keras"  # the weights cut short
    with zipfile.ZipFile(SHIPPED[0]) as z:
        weights = z.read("model.weights.h5")
    _rewrite(SHIPPED[0], truncated, "model.weights.h5", weights[: len(weights) // 3])
    with pytest.raises(ModelFileError, match=r"truncated\.keras"):
        Classifier("g", truncated)
    labels = tmp_path / "labels.keras"  # three labels on a two-output head
    with zipfile.ZipFile(SHIPPED[0]) as z:
        meta = json.loads(z.read("streamer.json"))
    meta["labels"] = ["a", "b", "c"]
    _rewrite(SHIPPED[0], labels, "streamer.json", json.dumps(meta).encode())
    with pytest.raises(ModelFileError, match="2 outputs"):
        Classifier("g", labels)


@pytest.mark.slow
def test_a_cpu_worker_on_the_shipped_config_never_loads_tensorflow() -> None:
    """The engine a worker builds from config.toml (ONNX Runtime networks, NumPy heads) warms up
    and classifies a real photo's faces without importing TensorFlow or Keras."""
    code = """
import sys, cv2
from streamer.config import load_config
from streamer.inference.engine import Engine, engine_spec
e = Engine(engine_spec(load_config("config.toml")))
assert [c.name for c in e.classifiers] == ["gender", "beard"], e.status.failed
e.warm_up()
im = cv2.cvtColor(cv2.imread("../shared/media/two_people.jpg"), cv2.COLOR_BGR2RGB)
results, _ = e.run([im])
faces = results[0].faces
assert len(faces) == 2 and all(f.labels for f in faces), results
print(sorted(m for m in ("tensorflow", "keras") if m in sys.modules))
"""
    if not (ROOT.parent / "shared" / "media" / "two_people.jpg").exists():
        pytest.skip("shared media not found")
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "HOME": str(Path.home())}
    cmd = [sys.executable, "-c", code]
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.strip().splitlines()[-1] == "[]"
