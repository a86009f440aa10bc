"""Shared helpers of the face backbone's tests: real photos with faces of several sizes, and a tiny
head on the backbone's features."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
# Faces of different sizes: two large ones, one medium, and a group photo with small ones.
PARITY_IMAGES = [
    SHARED / "media" / "two_people.jpg",
    SHARED / "media" / "obama-240p.jpg",
    SHARED / "data" / "dlib_faces" / "2008_002506.jpg",
    SHARED / "data" / "dlib_faces" / "2009_004587.jpg",
]
needs_shared = pytest.mark.skipif(
    not all(p.exists() for p in PARITY_IMAGES), reason="shared images not found"
)


def rgb(path: Path) -> np.ndarray:
    import cv2

    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def feature_head(path: Path, features: str = "dlib_face_descriptor", dim: int = 128) -> None:
    import keras

    from streamer.classify import ModelMeta, save_model

    inp = keras.Input((dim,))
    out = keras.layers.Dense(2, activation="softmax")(inp)
    model = keras.Model(inp, out)
    w = np.zeros((dim, 2), np.float32)
    w[0] = [-1e4, 1e4]  # "b" when the descriptor's first component is positive
    model.layers[-1].set_weights([w, np.zeros(2, np.float32)])
    meta = ModelMeta(("a", "b"), (150, 150), 0.25, task="test", features=features)
    save_model(model, path, meta)
