"""Batched face classification with a self-describing Keras model."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from streamer.classify.modelfile import ModelMeta, load_model
from streamer.crop import crop_face
from streamer.types import Box, Label

UNCERTAIN = "?"


class Classifier:
    """One Keras classifier: RGB face crops in, class probabilities out.

    The crop size, margin and labels come from the model file itself.
    """

    def __init__(
        self, name: str, path: str | os.PathLike[str], threshold: float = 0.5, max_batch: int = 64
    ) -> None:
        self.name = name
        self.path = str(path)
        self.threshold = threshold
        self.max_batch = max_batch
        self.model, self.meta = load_model(path)
        self._predict = _compiled_predict(self.model)

    @property
    def labels(self) -> tuple[str, ...]:
        return self.meta.labels

    def crops(self, image: np.ndarray, boxes: Sequence[Box]) -> list[np.ndarray]:
        return [crop_face(image, b, self.meta.input_size, self.meta.crop_margin) for b in boxes]

    def predict_proba(self, crops: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
        """(N, h, w, 3) uint8 crops -> (N, n_labels) probabilities, in chunks of max_batch."""
        x = np.asarray(crops, dtype=np.float32)
        if len(x) == 0:
            return np.zeros((0, len(self.labels)), np.float32)
        h, w = self.meta.input_size
        if x.shape[1:] != (h, w, 3):
            raise ValueError(f"{self.name}: expected crops of shape ({h}, {w}, 3), got {x.shape[1:]}")
        out = []
        for i in range(0, len(x), self.max_batch):
            out.append(np.asarray(self._predict(x[i : i + self.max_batch])))
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


def _compiled_predict(model: object):
    """A predict function that skips Keras's per-call overhead of ``model.predict``."""

    def predict(x: np.ndarray) -> np.ndarray:
        return model(x, training=False)  # type: ignore[operator]

    return predict


def describe(meta: ModelMeta) -> str:
    h, w = meta.input_size
    return f"labels={list(meta.labels)} input={w}x{h} margin={meta.crop_margin}"
