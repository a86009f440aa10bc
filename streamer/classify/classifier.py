"""Batched face classification with a self-describing Keras model.

A head on the face backbone's features runs in NumPy (``feature_head.py``: the same arithmetic,
read from the same file, no TensorFlow); any other model runs on Keras.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from streamer.classify.feature_head import FeatureHead, read_feature_head
from streamer.classify.modelfile import (
    PIXELS,
    ModelMeta,
    check_features,
    check_outputs,
    load_keras,
    read_meta,
)
from streamer.crop import crop_face
from streamer.types import Box, Label

UNCERTAIN = "?"


class Classifier:
    """One Keras classifier: RGB face crops in, class probabilities out.

    The crop size, margin and labels come from the model file itself. A classifier whose
    model file names backbone features (``meta.features``, e.g. ``dlib_face_descriptor``)
    takes (N, D) feature rows instead of crops; the Engine computes them once per face.
    """

    def __init__(
        self, name: str, path: str | os.PathLike[str], threshold: float = 0.5, max_batch: int = 64
    ) -> None:
        self.name = name
        self.path = str(path)
        self.threshold = threshold
        self.max_batch = max_batch
        self.meta = read_meta(path)
        check_features(path, self.meta)
        self._model: Any = None
        self.head: FeatureHead | None = read_feature_head(path) if self.uses_backbone else None
        if self.head is not None:
            check_outputs(path, self.head.outputs, self.meta)
            self._predict: Callable[[np.ndarray], np.ndarray] = self.head
            self.inputs = self.head.inputs
        else:
            self._predict = _compiled_predict(self.model)
            self.inputs = int(self.model.input_shape[-1])

    @property
    def model(self) -> Any:
        """The Keras model (loaded on first use where the head runs in NumPy: for training tools)."""
        if self._model is None:
            self._model = load_keras(self.path, self.meta)
        return self._model

    @property
    def labels(self) -> tuple[str, ...]:
        return self.meta.labels

    @property
    def uses_backbone(self) -> bool:
        return self.meta.features != PIXELS

    def crops(self, image: np.ndarray, boxes: Sequence[Box]) -> list[np.ndarray]:
        return [crop_face(image, b, self.meta.input_size, self.meta.crop_margin) for b in boxes]

    def predict_proba(self, crops: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
        """(N, h, w, 3) uint8 crops (or (N, D) backbone features, see ``uses_backbone``)
        -> (N, n_labels) probabilities, in chunks of max_batch."""
        x = np.asarray(crops, dtype=np.float32)
        if len(x) == 0:
            return np.zeros((0, len(self.labels)), np.float32)
        h, w = self.meta.input_size
        if self.uses_backbone:
            d = self.inputs
            if x.ndim != 2 or x.shape[1] != d:
                raise ValueError(f"{self.name}: expected {self.meta.features} rows of {d}, got {x.shape[1:]}")
        elif x.shape[1:] != (h, w, 3):
            raise ValueError(f"{self.name}: expected crops of shape ({h}, {w}, 3), got {x.shape[1:]}")
        out = []
        for i in range(0, len(x), self.max_batch):
            chunk = x[i : i + self.max_batch]
            out.append(self._predict(chunk)[: len(chunk)])
        p = np.concatenate(out).astype(np.float32)
        if p.shape[1] == 1:  # a sigmoid head: probability of the second label
            p = np.concatenate([1.0 - p, p], axis=1)
        return p

    def to_labels(self, probs: np.ndarray) -> list[Label]:
        result = []
        for row in probs:
            k = int(np.argmax(row))
            p = float(row[k])
            name = self.labels[k] if p >= self.threshold else UNCERTAIN
            result.append(Label(self.name, name, p))
        return result


def _compiled_predict(model: Any) -> Callable[[np.ndarray], np.ndarray]:
    """Keras's compiled predict step (traced / jitted once per input shape), without ``model.predict``'s
    per-call overhead. Calling the model eagerly instead costs 10x more on TensorFlow (40 ms vs 3 ms
    for one 64x64 face, 2 CPU cores). Batches are padded up to a power of two so that the number of
    compiled shapes stays small whatever the number of faces. On TensorFlow the step is traced
    once, for every batch size (``quiet.trace_predict_once``)."""
    from streamer.quiet import trace_predict_once

    def predict(x: np.ndarray) -> np.ndarray:
        n = len(x)
        size = 1 << (n - 1).bit_length()
        if size != n:
            x = np.concatenate([x, np.zeros((size - n, *x.shape[1:]), x.dtype)])
        trace_predict_once(model, x)
        y = model.predict_on_batch(x)
        if isinstance(y, dict):  # a multi-output model (the face backbone)
            return {k: np.asarray(v) for k, v in y.items()}  # type: ignore[return-value]
        return np.asarray(y)

    return predict


def describe(meta: ModelMeta) -> str:
    h, w = meta.input_size
    return f"labels={list(meta.labels)} input={w}x{h} margin={meta.crop_margin}"
