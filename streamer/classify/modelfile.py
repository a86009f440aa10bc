"""Classifier model files: a Keras ``.keras`` archive that carries its own metadata.

The metadata (labels, input size, crop margin, training attribute, ...) is stored
as ``streamer.json`` inside the .keras zip, beside Keras's own files, so a model
file always travels with what the service needs to use it correctly. Keras
ignores the extra entry when loading.
"""

from __future__ import annotations

import json
import os
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

META_NAME = "streamer.json"
PIXELS = "pixels"  # ModelMeta.features of a model that takes RGB crops


class ModelFileError(ValueError):
    """A model file is missing, unreadable, or lacks its metadata."""


@dataclass(frozen=True)
class ModelMeta:
    labels: tuple[str, ...]
    input_size: tuple[int, int]  # (height, width) of the RGB crop the model takes
    crop_margin: float
    # Pixels go in as float32 in [0, 255]; any scaling is a layer of the model.
    task: str = ""
    attribute: str | None = None  # CelebA column the model was trained on, if any
    positive_label: str | None = None  # label meaning attribute == 1
    description: str = ""
    version: str = "1"
    extra: dict[str, object] = field(default_factory=dict)
    # What the model takes: "pixels" (RGB crops of input_size, cut with crop_margin), or a
    # feature set of the face backbone (streamer.classify.face_resnet.ALL_FEATURES; several
    # joined by "+" are concatenated in that order; "_flip" sets average the mirrored chip's), computed
    # once per face from dlib's 150x150 chip and shared by every classifier that wants it.
    features: str = PIXELS

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ModelMeta:
        d = json.loads(text)
        try:
            return cls(
                labels=tuple(d["labels"]),
                input_size=(int(d["input_size"][0]), int(d["input_size"][1])),
                crop_margin=float(d["crop_margin"]),
                task=d.get("task", ""),
                attribute=d.get("attribute"),
                positive_label=d.get("positive_label"),
                description=d.get("description", ""),
                version=str(d.get("version", "1")),
                extra=dict(d.get("extra", {})),
                features=str(d.get("features", PIXELS)),
            )
        except (KeyError, TypeError, IndexError, ValueError) as e:
            raise ModelFileError(f"bad {META_NAME}: {e}") from e


def save_model(model: object, path: str | os.PathLike[str], meta: ModelMeta) -> None:
    """Save a Keras model to ``path`` (.keras) with ``meta`` inside."""
    path = Path(path)
    if path.suffix != ".keras":
        raise ModelFileError(f"{path}: model files must end in .keras")
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save(path)  # type: ignore[attr-defined]
    with zipfile.ZipFile(path, "a") as zf:
        zf.writestr(META_NAME, meta.to_json())


def read_meta(path: str | os.PathLike[str]) -> ModelMeta:
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: model file not found")
    try:
        with zipfile.ZipFile(path) as zf:
            text = zf.read(META_NAME).decode()
    except KeyError as e:
        raise ModelFileError(
            f"{path}: no {META_NAME} inside; save it with streamer.classify.save_model"
        ) from e
    except zipfile.BadZipFile as e:
        raise ModelFileError(f"{path}: not a .keras archive ({e})") from e
    return ModelMeta.from_json(text)


def check_features(path: str | os.PathLike[str], meta: ModelMeta) -> None:
    """ModelFileError unless the backbone features the model takes (if any) are known ones."""
    from streamer.classify.face_resnet import ALL_FEATURES

    if meta.features != PIXELS and not set(meta.features.split("+")) <= set(ALL_FEATURES):
        raise ModelFileError(
            f"{path}: takes features {meta.features!r}; known: {', '.join([PIXELS, *ALL_FEATURES])}"
        )


def check_outputs(path: str | os.PathLike[str], n_out: int, meta: ModelMeta) -> None:
    """ModelFileError unless the model's outputs fit the labels its metadata names."""
    if n_out not in (1, len(meta.labels)) or (n_out == 1 and len(meta.labels) != 2):
        raise ModelFileError(
            f"{path}: model has {n_out} outputs but metadata names labels {list(meta.labels)}"
        )


def load_model(path: str | os.PathLike[str]) -> tuple[object, ModelMeta]:
    """Load a model (Keras) and its metadata. Raises ModelFileError with the path on failure."""
    meta = read_meta(path)
    check_features(path, meta)
    return load_keras(path, meta), meta


def load_keras(path: str | os.PathLike[str], meta: ModelMeta) -> object:
    """The Keras model in ``path``, its outputs checked against ``meta``."""
    from streamer.quiet import import_tensorflow

    import_tensorflow()
    import keras

    try:
        model = keras.saving.load_model(path, compile=False)
    except Exception as e:  # keras raises many types for a broken file
        raise ModelFileError(f"{path}: cannot load model: {e}") from e
    check_outputs(path, model.output_shape[-1], meta)
    return model
