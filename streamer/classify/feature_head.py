"""A feature head run in NumPy: the Keras model file read without Keras.

A classifier on the face backbone's features (``train/architectures.py``'s ``build_feature_head``)
is a chain of a few layers: Normalization (fixed mean and variance), Dropout (nothing at
inference), Dense (ReLU, sigmoid, softmax or linear). Its ``.keras`` file is a zip of the layer
graph (``config.json``) and the weights (``model.weights.h5``); this reads both and runs the chain
as matrix products, the same arithmetic as Keras's, in float32 (tests/test_classify_numpy.py: within
1e-5 of Keras's predictions on the shipped heads).

Why: the heads are the only Keras models a CPU worker runs (the detector and the backbone run on
ONNX Runtime, ``streamer.runtime``), so reading them without Keras means a worker never loads
TensorFlow: it starts sooner and holds less memory, and a head call takes microseconds instead of
Keras's per-call overhead. A model file that is anything else (a CNN on pixels, another layer) is
not read here (``read_feature_head`` returns None) and runs on Keras as before.
"""

from __future__ import annotations

import io
import itertools
import json
import os
import re
import zipfile
from collections.abc import Callable

import numpy as np

from streamer.classify.modelfile import ModelFileError

EPSILON = 1e-7  # keras.backend.epsilon(): Normalization divides by max(sqrt(variance), this)
ACTIVATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "linear": lambda x: x,
    "relu": lambda x: np.maximum(x, 0.0),
    "sigmoid": lambda x: 1.0 / (1.0 + np.exp(-x)),
    "softmax": lambda x: _softmax(x),
}
CHAIN = {"InputLayer", "Normalization", "Dropout", "Dense"}  # the layers a feature head is made of


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _snake(name: str) -> str:
    """Keras's name for a layer class in the weights file (``Dense`` -> ``dense``)."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


class FeatureHead:
    """(N, D) float32 feature rows -> (N, outputs) float32, as the Keras model computes them."""

    def __init__(self, steps: list[tuple[str, tuple[np.ndarray, ...], str]], inputs: int) -> None:
        self.steps = steps  # ("norm", (mean, scale)) or ("dense", (kernel, bias), activation)
        self.inputs = inputs
        self.outputs = int(steps[-1][1][0].shape[1])  # (the last step is a Dense layer: _build)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, np.float32)
        for kind, w, act in self.steps:
            x = (x - w[0]) / w[1] if kind == "norm" else ACTIVATIONS[act](x @ w[0] + w[1])
        return x.astype(np.float32, copy=False)


def read_feature_head(path: str | os.PathLike[str]) -> FeatureHead | None:
    """The head in a ``.keras`` file, or None when the file holds another kind of model (it runs on
    Keras). ModelFileError when it is a feature head whose weights cannot be read."""
    try:
        with zipfile.ZipFile(path) as zf:
            config = json.loads(zf.read("config.json"))
            weights = zf.read("model.weights.h5")
    except (KeyError, zipfile.BadZipFile, ValueError, OSError):
        return None  # (Keras's loader says what is wrong with it)
    try:
        layers = _chain(config)
    except (KeyError, TypeError, AttributeError):  # an unexpected config: Keras's loader reads it
        layers = None
    if layers is None:
        return None
    try:
        return _build(layers, weights)
    except (KeyError, ValueError, TypeError, OSError) as e:
        raise ModelFileError(f"{path}: cannot read the head's weights: {e}") from e


def _chain(config: dict) -> list[dict] | None:
    """The model's layers in order when it is one chain of CHAIN layers from one input to one
    output (each layer's only input the previous layer), else None."""
    if config.get("class_name") not in ("Functional", "Sequential"):
        return None
    layers = config.get("config", {}).get("layers", [])
    if not layers or any(layer.get("class_name") not in CHAIN for layer in layers):
        return None
    if config["class_name"] == "Functional":
        for prev, layer in itertools.pairwise(layers):
            inbound = json.dumps(layer.get("inbound_nodes", []))
            if f'"{prev["config"]["name"]}"' not in inbound or inbound.count('"keras_history"') != 1:
                return None
    for layer in layers:
        c = layer["config"]
        act = c.get("activation")
        if layer["class_name"] == "Dense" and not (isinstance(act, str) and act in ACTIVATIONS):
            return None
        if layer["class_name"] == "Normalization" and (c.get("invert") or c.get("axis") not in ([-1], -1)):
            return None
    return layers


def _build(layers: list[dict], weights: bytes) -> FeatureHead:
    import h5py  # (installed with Keras, a dependency)

    counts: dict[str, int] = {}
    steps: list[tuple[str, tuple[np.ndarray, ...], str]] = []
    inputs = 0
    with h5py.File(io.BytesIO(weights), "r") as h5:
        for layer in layers:
            kind, c = layer["class_name"], layer["config"]
            base = _snake(kind)
            n = counts.get(base, 0)
            counts[base] = n + 1
            saved = h5.get(f"layers/{base}{'' if n == 0 else f'_{n}'}/vars")
            if kind == "InputLayer":
                shape = c.get("batch_shape") or c.get("batch_input_shape")
                inputs = int(shape[-1])
            elif kind == "Normalization":
                if c.get("mean") is not None:
                    mean, var = np.asarray(c["mean"], np.float32), np.asarray(c["variance"], np.float32)
                else:  # (adapted: the statistics are among the weights)
                    mean, var = np.asarray(saved["0"], np.float32), np.asarray(saved["1"], np.float32)
                scale = np.maximum(np.sqrt(var), np.float32(EPSILON)).astype(np.float32)
                steps.append(("norm", (mean.reshape(-1), scale.reshape(-1)), ""))
            elif kind == "Dense":
                kernel = np.asarray(saved["0"], np.float32)
                bias = (
                    np.asarray(saved["1"], np.float32)
                    if c.get("use_bias", True)
                    else np.zeros(kernel.shape[1], np.float32)
                )
                if kernel.shape[1] != int(c["units"]) or bias.shape != (kernel.shape[1],):
                    raise ValueError(f"layer {c['name']}: weights of shape {kernel.shape}, {bias.shape}")
                steps.append(("dense", (kernel, bias), c["activation"]))
    if not steps or steps[-1][0] != "dense":
        raise ValueError("no Dense layer at the end")
    dense_in = next(w[0].shape[0] for kind, w, _ in steps if kind == "dense")
    width = inputs = inputs or dense_in  # (a Sequential model saved without its InputLayer)
    for kind, w, _ in steps:
        if kind == "norm" and w[0].shape[0] not in (1, width):
            raise ValueError(f"a Normalization of {w[0].shape[0]} values after {width}")
        if kind == "dense":
            if w[0].shape[0] != width:
                raise ValueError(f"a Dense layer takes {w[0].shape[0]} values after {width}")
            width = w[0].shape[1]
    return FeatureHead(steps, inputs)
