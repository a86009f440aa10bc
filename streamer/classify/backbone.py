"""The shared face backbone: dlib's 5-point alignment and face-recognition ResNet, once per face.

Alignment is dlib's own (dlib-bin's ``shape_predictor`` and ``get_face_chip(img, shape, 150,
0.25)``, ~0.5 ms per face): a box shifted by one pixel moves dlib's descriptor by ~0.03, so the
chip must be exactly dlib's for the descriptors to match ``compute_face_descriptor``. The
ResNet is the port in :mod:`streamer.classify.face_resnet`, run on ONNX Runtime
(:mod:`.face_resnet_onnx`) or Keras, as ``pipeline.runtime`` says (:mod:`streamer.runtime`); both
give the same features to about 1e-6.

Files: ``STREAMER_FACE_BACKBONE`` / ``STREAMER_FACE_LANDMARKS`` (or the arguments) name the
.dat files; by default the copies in the ``face_recognition_models`` package.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from streamer.classify.face_resnet import (
    CHIP_PADDING,
    CHIP_SIZE,
    FEATURE_SIZES,
    FEATURES,
    FLIP_SUFFIX,
    build_model,
    plan,
)
from streamer.classify.modelfile import ModelFileError
from streamer.types import Box


class BackboneError(ModelFileError):
    """The face backbone's files are missing or unreadable."""


def default_paths() -> tuple[Path, Path]:
    """(ResNet .dat, 5-point landmarks .dat), from the environment or face_recognition_models."""
    net = os.environ.get("STREAMER_FACE_BACKBONE")
    marks = os.environ.get("STREAMER_FACE_LANDMARKS")
    if not net or not marks:
        import face_recognition_models as frm

        net = net or frm.face_recognition_model_location()
        marks = marks or frm.pose_predictor_five_point_model_location()
    return Path(net), Path(marks)


class FaceAligner:
    """dlib's 5-point landmarks and aligned chips alone (a front end that sends chips to a model
    server cuts them itself, as the backbone does)."""

    def __init__(self, landmarks_path: str | os.PathLike[str] | None = None) -> None:
        self.landmarks_path = Path(landmarks_path) if landmarks_path else default_paths()[1]
        import dlib

        if not self.landmarks_path.is_file():
            raise BackboneError(f"face landmarks {self.landmarks_path}: file not found")
        try:
            self._shape = dlib.shape_predictor(str(self.landmarks_path))
        except RuntimeError as e:
            raise BackboneError(f"face landmarks {self.landmarks_path}: cannot load ({e})") from e
        self._dlib = dlib

    def chips(self, image: np.ndarray, boxes: Sequence[Box]) -> list[np.ndarray]:
        """dlib's aligned 150x150 chips (RGB uint8) of ``boxes`` in an RGB image."""
        image = np.ascontiguousarray(image)
        out = []
        for b in boxes:
            shape = self._shape(image, self._dlib.rectangle(b.left, b.top, b.right, b.bottom))
            out.append(self._dlib.get_face_chip(image, shape, CHIP_SIZE, CHIP_PADDING))
        return out


class FaceBackbone:
    """Face chips and features (:data:`FEATURES`) for a batch of faces.

    runtime: "onnxruntime", "keras" or "auto" (:func:`streamer.runtime.choose_runtime`);
    threads: ONNX Runtime's intra-op threads (0 = 2; Keras takes the process' settings)."""

    def __init__(
        self,
        model_path: str | os.PathLike[str] | None = None,
        landmarks_path: str | os.PathLike[str] | None = None,
        max_batch: int = 32,
        runtime: str = "auto",
        threads: int = 0,
    ) -> None:
        d_net, d_marks = default_paths()
        self.model_path = Path(model_path) if model_path else d_net
        self.landmarks_path = Path(landmarks_path) if landmarks_path else d_marks
        self.max_batch = max_batch
        from streamer.dlib_format import DatFormatError, read_dlib_net
        from streamer.runtime import choose_runtime

        self.runtime = choose_runtime(runtime)
        self._model = None
        try:
            self._steps = plan(read_dlib_net(self.model_path))
        except (DatFormatError, OSError) as e:
            raise BackboneError(f"face backbone: {e}") from e
        if self.runtime == "onnxruntime":
            from streamer.classify.face_resnet_onnx import OnnxBackbone

            try:
                self._predict = OnnxBackbone(self._steps, threads).run
            except Exception as e:  # onnxruntime's own errors (a broken install): a start-up error too
                raise BackboneError(f"face backbone on ONNX Runtime: {e}") from e
        else:
            self._predict = self._keras_predict()
        self.aligner = FaceAligner(self.landmarks_path)

    @property
    def model(self):
        """The Keras model (built on first use where the backbone runs on ONNX Runtime: fine-tuning
        takes its layers)."""
        if self._model is None:
            self._model = build_model(self._steps)
        return self._model

    def _keras_predict(self):
        from streamer.classify.classifier import _compiled_predict

        return _compiled_predict(self.model)

    def chips(self, image: np.ndarray, boxes: Sequence[Box]) -> list[np.ndarray]:
        """dlib's aligned 150x150 chips (RGB uint8) of ``boxes`` in an RGB image."""
        return self.aligner.chips(image, boxes)

    def features(
        self, chips: np.ndarray | Sequence[np.ndarray], mirrored: bool = False
    ) -> dict[str, np.ndarray]:
        """(N, 150, 150, 3) chips -> {feature name: (N, D) float32}, in chunks of max_batch.

        ``mirrored``: also the test-time-flip sets (``<name>_flip``: the mean of the chip's
        features and its mirror image's), at the cost of a second pass. Training and the
        service both get them from here, so they are the same features."""
        x = np.asarray(chips, dtype=np.float32)
        if len(x) == 0:
            empty = {k: np.zeros((0, FEATURE_SIZES[k]), np.float32) for k in FEATURES}
            if mirrored:
                empty.update({k + FLIP_SUFFIX: v for k, v in empty.items()})
            return empty
        if x.shape[1:] != (CHIP_SIZE, CHIP_SIZE, 3):
            raise ValueError(f"face backbone: expected chips of shape (150, 150, 3), got {x.shape[1:]}")
        out = self._features(x)
        if mirrored:
            mirror = self._features(np.ascontiguousarray(x[:, :, ::-1]))
            out.update({k + FLIP_SUFFIX: (out[k] + mirror[k]) * np.float32(0.5) for k in FEATURES})
        return out

    def _features(self, x: np.ndarray) -> dict[str, np.ndarray]:
        parts: dict[str, list[np.ndarray]] = {k: [] for k in FEATURES}
        for i in range(0, len(x), self.max_batch):
            chunk = x[i : i + self.max_batch]
            out = self._predict(chunk)
            for k in FEATURES:
                parts[k].append(np.asarray(out[k])[: len(chunk)])
        return {k: np.concatenate(v).astype(np.float32) for k, v in parts.items()}

    def descriptors(self, image: np.ndarray, boxes: Sequence[Box]) -> np.ndarray:
        """(len(boxes), 128) face descriptors, as dlib's compute_face_descriptor gives them."""
        if not boxes:
            return np.zeros((0, 128), np.float32)
        return self.features(self.chips(image, boxes))["dlib_face_descriptor"]
