"""Keras face classifiers and their self-describing model files."""

from streamer.classify.classifier import UNCERTAIN, Classifier
from streamer.classify.modelfile import ModelFileError, ModelMeta, load_model, read_meta, save_model

__all__ = ["UNCERTAIN", "Classifier", "ModelFileError", "ModelMeta", "load_model", "read_meta", "save_model"]
