"""Keras face classifiers and their self-describing model files."""

from streamer.classify.modelfile import ModelFileError, ModelMeta, load_model, read_meta, save_model

__all__ = ["ModelFileError", "ModelMeta", "load_model", "read_meta", "save_model"]
