"""The shipped classifiers: batched, padded and chunked calls give each face its own answer; one trace
of a model serves every batch size."""

from __future__ import annotations

import logging

import cv2
import numpy as np
import pytest

from streamer.classify.classifier import Classifier
from tests.conftest import ROOT, SHARED

CELEBA = SHARED / "data" / "celeba"


@pytest.fixture(scope="module")
def faces() -> list[np.ndarray]:
    names = [r.split()[0] for r in (CELEBA / "list_attr_celeba.txt").read_text().splitlines()[2:9]]
    return [cv2.imread(str(CELEBA / "images" / n))[:, :, ::-1] for n in names]


@pytest.mark.parametrize("name", ["gender", "beard"])
def test_batches_answer_as_single_faces(name: str, faces: list[np.ndarray]) -> None:
    path = ROOT / "models" / f"{name}.keras"
    if not path.exists() or not CELEBA.exists():
        pytest.skip("models/ or ../shared CelebA missing")
    clf = Classifier(name, path, max_batch=4)  # 7 faces: chunks of 4 and 3, the 3 padded to 4
    h, w = clf.meta.input_size
    crops = np.stack([cv2.resize(f, (w, h), interpolation=cv2.INTER_AREA) for f in faces])
    if clf.uses_backbone:  # a head on the face backbone takes its features of each face
        from streamer.classify.backbone import FaceBackbone
        from streamer.classify.face_resnet import needs_mirror

        feats = FaceBackbone().features(crops, mirrored=needs_mirror(clf.meta.features))
        crops = np.concatenate([feats[k] for k in clf.meta.features.split("+")], axis=1)
    one_by_one = np.concatenate(
        [np.asarray(clf.model(crop[None].astype(np.float32), training=False)) for crop in crops]
    )
    if one_by_one.shape[1] == 1:
        one_by_one = np.concatenate([1 - one_by_one, one_by_one], axis=1)
    for n in (1, 3, 7):
        np.testing.assert_allclose(clf.predict_proba(crops[:n]), one_by_one[:n], atol=1e-4)
    # the answers differ between faces: nothing of one face leaks into another's
    assert np.ptp(one_by_one[:, 0]) > 0.05


def test_each_model_is_traced_once_for_every_batch_size(tiny_classifier, caplog) -> None:
    """On TensorFlow every Keras model's predict step shares one Python function, whose traces
    TensorFlow counts together: three models met at two batch sizes each used to trace six times
    and log "tf.function retracing" warnings. Each is traced once now, for any batch size."""
    import keras

    if keras.backend.backend() != "tensorflow":
        pytest.skip("tracing is TensorFlow's")
    heads = [Classifier(f"c{i}", tiny_classifier, max_batch=4) for i in range(3)]
    crops = np.zeros((7, 32, 32, 3), np.uint8)
    with caplog.at_level(logging.WARNING):
        for clf in heads:
            for n in (1, 2, 3, 7):  # padded to 1, 2, 4, and chunks of 4 + 4
                assert clf.predict_proba(crops[:n]).shape == (n, 2)
    assert [clf.model.predict_function.experimental_get_tracing_count() for clf in heads] == [1, 1, 1]
    assert not [r for r in caplog.records if "retracing" in r.getMessage()]
