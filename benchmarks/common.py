"""Shared pieces of the benchmark scenarios: options, progress, media, classifier models, detectors."""

from __future__ import annotations

import importlib.util
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from streamer.config import DEMO_VIDEO, ClassifierConfig, load_config

ROOT = Path(__file__).resolve().parents[1]
RESOLUTIONS = {
    "240p": (426, 240),
    "360p": (640, 360),
    "480p": (854, 480),
    "720p": (1280, 720),
    "1080p": (1920, 1080),
}


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
    seconds: float = 20.0  # measuring window of a live run
    warmup: float = 6.0  # after the first detection, before measuring
    max_streams: int = 16
    stream_counts: tuple[int, ...] = ()  # the streams sweep's levels; () = 1, 2, 4, ... (see sweeps.py)
    sweeps: tuple[str, ...] = ("streams", "max_batch", "resolution", "detector")
    work: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="streamer-bench-")))
    notes: list[str] = field(default_factory=list)


_T0 = time.monotonic()


def progress(msg: str, end: str = "\n") -> None:
    """One line of progress on stderr, with the elapsed time."""
    print(f"[{time.monotonic() - _T0:6.1f}s] {msg}", file=sys.stderr, end=end, flush=True)


def detector_available(name: str) -> str | None:
    """None when the detector can be built here, else why not."""
    if name == "mmod" and importlib.util.find_spec("streamer.detect.mmod") is None:
        return "streamer.detect.mmod is not importable (the Keras port is not merged on this branch)"
    return None


def read_frames(path: Path, n: int, start: int = 0) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames: list[np.ndarray] = []
    i = 0
    while len(frames) < n:
        ok, bgr = cap.read()
        if not ok:
            break
        if i >= start:
            frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
        i += 1
    cap.release()
    return frames


def video_fps(path: Path) -> float:
    cap = cv2.VideoCapture(str(path))
    fps = cap.get(cv2.CAP_PROP_FPS)
    cap.release()
    return fps if 1.0 <= fps <= 240.0 else 30.0


def scaled_video(src: Path, res: str, out_dir: Path, max_frames: int = 150) -> Path:
    """``src`` resized to ``res`` ("240p".."1080p" or "WxH"): H.264 via PyAV, stretched, not letterboxed."""
    import av

    w, h = RESOLUTIONS[res] if res in RESOLUTIONS else (int(v) for v in res.lower().split("x"))
    dst = out_dir / f"{src.stem}-{res}.mp4"
    if dst.exists():
        return dst
    fps = video_fps(src)
    with av.open(str(dst), "w") as out:
        st = out.add_stream("libx264", rate=round(fps))
        st.width, st.height, st.pix_fmt = w, h, "yuv420p"
        st.options = {"preset": "ultrafast", "tune": "zerolatency"}
        for rgb in read_frames(src, max_frames):
            img = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA)
            for pkt in st.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(pkt)
        for pkt in st.encode():
            out.mux(pkt)
    return dst


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
