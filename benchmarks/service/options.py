"""What the service scenario's parts share: their options, the classifier models, which detector runs."""

from __future__ import annotations

import importlib.util
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from streamer.config import DEMO_VIDEO, ClassifierConfig, load_config

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Options:
    """What every scenario reads; ``quick`` shortens everything."""

    quick: bool = False
    detector: str = "mmod"
    video: Path = DEMO_VIDEO
    max_batch: int = 4
    workers: int = 1
    worker_nice: int = 10
    strategy: str = "regions"  # pipeline.strategy: where the detector looks
    sync_output: str = "off"  # pipeline.sync_output: off measures the service's own latency
    seconds: float = 20.0  # measuring window of a live run
    warmup: float = 6.0  # after the first detection, before measuring
    max_streams: int = 16
    stream_counts: tuple[int, ...] = ()  # the streams sweep's levels; () = 1, 2, 4, ... (see sweeps.py)
    sweeps: tuple[str, ...] = ("streams", "max_batch", "resolution", "detector")
    work: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="streamer-bench-")))
    notes: list[str] = field(default_factory=list)


def detector_available(name: str) -> str | None:
    """None when the detector can be built here, else why not."""
    if name == "mmod" and importlib.util.find_spec("streamer.detect.mmod") is None:
        return "streamer.detect.mmod is not importable (the Keras port is not merged on this branch)"
    return None


def _synthetic_model(path: Path, labels: tuple[str, ...], seed: int) -> None:
    import keras

    from streamer.classify import ModelMeta, save_model

    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input((64, 64, 3)),
            keras.layers.Rescaling(1 / 255.0),
            keras.layers.Conv2D(16, 3, strides=2, activation="relu"),
            keras.layers.Conv2D(32, 3, strides=2, activation="relu"),
            keras.layers.Conv2D(64, 3, strides=2, activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(len(labels), activation="softmax"),
        ]
    )
    save_model(
        model,
        path,
        ModelMeta(
            labels=labels, input_size=(64, 64), crop_margin=0.25, description="untrained benchmark stand-in"
        ),
    )


def classifier_configs(opts: Options) -> list[ClassifierConfig]:
    """config.toml's classifiers when their model files exist; otherwise two untrained stand-ins (noted)."""
    cfg = load_config(ROOT / "config.toml", environ={}) if (ROOT / "config.toml").exists() else None
    real = [c for c in (cfg.classifiers if cfg else []) if Path(c.model).is_file()]
    if cfg and real and len(real) == len(cfg.classifiers):
        return list(real)
    path_g, path_b = opts.work / "gender.keras", opts.work / "beard.keras"
    if not path_g.exists():
        _synthetic_model(path_g, ("female", "male"), 0)
        _synthetic_model(path_b, ("beard", "shaved"), 1)
    note = (
        "classifiers: models/gender.keras and models/beard.keras not found; two untrained stand-in Keras "
        "models (64x64 input, 3 conv layers) were used, so classify costs are indicative only"
    )
    if note not in opts.notes:
        opts.notes.append(note)
    return [
        ClassifierConfig(name="gender", model=str(path_g), threshold=0.6),
        ClassifierConfig(name="beard", model=str(path_b), threshold=0.6),
    ]


def quiet_tf() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
