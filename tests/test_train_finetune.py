"""``train finetune``'s pieces: the ResNet cut into a frozen trunk and a trainable tail that
together are dlib's network exactly, the branch that starts as the frozen head, and the box
cache read by file name and size."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from train.data import Dataset


@pytest.fixture(scope="module")
def resnet():
    from streamer.classify.face_resnet import load_face_resnet

    return load_face_resnet()


def _chips(n: int = 4) -> np.ndarray:
    return np.random.default_rng(0).uniform(0, 255, (n, 150, 150, 3)).astype("float32")


def test_trunk_then_tail_is_the_whole_network(resnet) -> None:
    from train.trunk import split_resnet

    trunk, tail = split_resnet(resnet)
    x = _chips()
    whole = resnet.predict(x, verbose=0)
    a = trunk.predict(x, verbose=0)
    assert a.shape == (4, 4, 4, 256)
    out = tail.predict(a, verbose=0)
    for k in ("dlib_face_descriptor", "dlib_pooled"):
        np.testing.assert_allclose(out[k], whole[k], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("blocks", [1, 2])
def test_branch_starts_as_dlib_and_trains_only_its_last_blocks(resnet, blocks: int) -> None:
    from train.finetune import branch_model
    from train.trunk import BLOCKS, split_resnet

    stats = (np.zeros(384), np.ones(384))
    pre, branch = branch_model(blocks, stats)
    x = _chips()
    a = split_resnet(resnet)[0].predict(x, verbose=0)
    d, p = branch.get_layer("dlib_tail_finetuned").predict(pre.predict(a, verbose=0), verbose=0)
    whole = resnet.predict(x, verbose=0)
    np.testing.assert_allclose(d, whole["dlib_face_descriptor"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(p, whole["dlib_pooled"], rtol=1e-5, atol=1e-5)
    tail = branch.get_layer("dlib_tail_finetuned")
    trained = {layer.name for layer in tail.layers if layer.trainable and layer.weights}
    assert trained == {n for b in BLOCKS[:blocks] for n in b} | {"fc"}
    assert not any(layer.trainable_weights for layer in pre.layers)
    assert branch.output.shape[-1] == 2


def _faces(paths: list[Path]):
    from train.sources import Faces

    n = len(paths)
    ds = Dataset(paths, np.zeros(n, np.int64), ("female", "male"), "test")
    return Faces(ds, np.array(["x"] * n), np.full(n, np.nan), np.array([""] * n), np.array([""] * n))


def test_cached_boxes_match_by_name_and_size_not_time(tmp_path: Path, monkeypatch) -> None:
    import train.trunk as trunk
    from train.crops import _cache_name

    folder = tmp_path / "images"
    folder.mkdir()
    paths = []
    for i in range(2):
        p = folder / f"{i}.jpg"
        p.write_bytes(b"x" * (10 + i))
        paths.append(p)
    cache = tmp_path / "cache"
    (cache / "boxes").mkdir(parents=True)
    recs = [
        {"name": "0.jpg", "tag": "10:1", "boxes": [[1, 2, 30, 40, 1.0]]},
        {"name": "1.jpg", "tag": "11:1", "boxes": []},
    ]
    cfile = cache / "boxes" / _cache_name("mmod", 0, str(folder.resolve()))
    cfile.write_text("\n".join(json.dumps(r) for r in recs) + "\n")
    detected = []
    monkeypatch.setattr(trunk, "detections_or_fail", lambda *a, **k: detected.append(1) or "detected")
    boxes = trunk.cached_boxes(_faces(paths), 0, cache, progress=False)
    assert not detected
    assert [[(b.left, b.top, b.right, b.bottom) for b in bs] for bs in boxes] == [[(1, 2, 30, 40)], []]
    paths[1].write_bytes(b"y" * 12)  # another file now: detect again
    os.utime(paths[1], (1, 1))
    assert trunk.cached_boxes(_faces(paths), 0, cache, progress=False) == "detected"


def test_old_feature_caches_give_the_lower_face_sets_to_the_multi_source_recipe_and_finetune(
    tmp_path: Path, monkeypatch
) -> None:
    """A source's feature cache written before the lower-face sets existed: ``load_multi`` (and
    ``take`` on what it returns) and ``frozen_features`` give those sets from the file computed
    beside it, once per source, and cost no backbone pass for a head that needs none of them."""
    import cv2

    import streamer.classify.backbone
    import streamer.detect
    import train.multi as multi
    from streamer.classify.face_resnet import ALL_FEATURES
    from streamer.types import Box
    from train.features import feature_cache_file, features_for
    from train.sources import UPSAMPLE
    from train.trunk import frozen_features

    class Detector:
        def detect(self, images, upsample=0):
            return [[Box(2, 3, 30, 33, 0.5)] for _ in images]

    class Backbone:
        passes = 0

        def chips(self, image, boxes):
            return [np.full((150, 150, 3), image.mean(), np.float32) for _ in boxes]

        def features(self, chips, mirrored=False):
            Backbone.passes += 1
            v = chips.mean(axis=(1, 2, 3))[:, None]
            return {k: np.repeat(v + i, 4, axis=1) for i, k in enumerate(ALL_FEATURES)}

    monkeypatch.setattr(streamer.detect, "make_detector", lambda name: Detector())
    monkeypatch.setattr(streamer.classify.backbone, "FaceBackbone", Backbone)
    faces = {}
    for s, shade in (("tiny_a", 10), ("tiny_b", 200)):
        monkeypatch.setitem(UPSAMPLE, s, 0)
        paths = []
        for i in range(2):
            p = tmp_path / s / f"{i}.png"
            p.parent.mkdir(exist_ok=True)
            cv2.imwrite(str(p), np.full((40, 40, 3), shade + i, np.uint8))
            paths.append(p)
        faces[s] = _faces(paths)
    monkeypatch.setattr(multi, "load_source", lambda name, shared, rule: faces[name])
    cache = tmp_path / "cache"
    full = {}
    old = [k for k in ALL_FEATURES if "lower" not in k and "cheeks" not in k]
    for s, f in faces.items():  # each source's cache as it was before the lower-face sets
        full[s] = features_for(f.ds, "mmod", 0, cache, progress=False)
        cfile = feature_cache_file(f.ds, "mmod", 0, [[Box(2, 3, 30, 33, 0.5)]] * 2, cache)
        np.savez(cfile, found=full[s].found, **{k: full[s].x[k] for k in old})
    Backbone.passes = 0

    _, feats = multi.load_multi(("tiny_a", "tiny_b"), tmp_path, cache_dir=cache, progress=False)
    some = multi.take(feats, np.array([3, 0]))
    assert feats.matrix("dlib_pooled").shape == (4, 4) and some.matrix("dlib_pooled").shape == (2, 4)
    assert Backbone.passes == 0  # a head without the lower-face sets computes nothing
    joined = np.concatenate([full[s].matrix("dlib_lower2+dlib_lower4_flip") for s in faces])
    np.testing.assert_array_equal(some.matrix("dlib_lower2+dlib_lower4_flip"), joined[[3, 0]])
    np.testing.assert_array_equal(feats.matrix("dlib_lower2+dlib_lower4_flip"), joined)
    assert Backbone.passes == 2  # once per source
    assert len(list((cache / "features").glob("*-more-*.npz"))) == 2

    frozen = frozen_features("tiny_b", faces["tiny_b"], cache)
    np.testing.assert_array_equal(frozen.matrix("dlib_lower3"), full["tiny_b"].matrix("dlib_lower3"))
    assert Backbone.passes == 2
