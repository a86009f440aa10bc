"""Typed configuration: config.toml, then STREAMER_* environment variables, then CLI flags.

Validation only; no I/O beyond reading the file, no model loading.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

import tomllib
from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from streamer.detect import DETECTORS
from streamer.detect.proposals import PROPOSE_THRESHOLD
from streamer.history.settings import MqttConfig, StoreConfig, WebhookConfig
from streamer.people.settings import PeopleConfig
from streamer.server_config import ServerConfig, Strict

ASSETS = Path(__file__).resolve().parent / "assets"
DEMO_VIDEO = ASSETS / "demo.mp4"
STREAM_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")  # fullmatch: "$" would let "id\n" through


class ConfigError(ValueError):
    """The configuration is invalid; the message says which key and why."""


class PipelineConfig(Strict):
    detector: Literal["dlib", "mmod"] = "mmod"
    upsample: int = Field(0, ge=0, le=2, description="dlib upsample_num_times")
    detect_max_side: int = Field(
        640, ge=0, description="frames with a longer side are scaled down for detection (0 = never)"
    )
    max_batch: int = Field(4, ge=1, le=256, description="frames per detector batch, across streams")
    max_wait_ms: float = Field(10.0, ge=0, le=1000, description="how long a batch waits to fill")
    workers: int = Field(1, ge=1, le=16, description="inference worker processes")
    worker_nice: int = Field(
        10, ge=0, le=19, description="CPU niceness of the workers: on a full CPU the display path comes first"
    )
    weak_score: float = Field(
        0.0,
        ge=-2.0,
        le=0.0,
        description="mmod: detections scoring from this up to 0 (dlib's threshold) are weak: they keep a "
        "track whose box they overlap and place its box, never start a track, and are not classified "
        "(0: off)",
    )
    render_threads: int = Field(2, ge=1, le=32)
    runtime: Literal["auto", "onnxruntime", "keras"] = Field(
        "auto",
        description="mmod network and face backbone: ONNX Runtime (CPU), Keras (GPU), "
        "auto: ONNX Runtime unless a GPU",
    )
    worker_threads: int = Field(
        0, ge=0, le=64, description="compute threads per inference worker (0 = 2 for ONNX Runtime)"
    )
    detect_every: int = Field(
        1,
        ge=1,
        le=300,
        description="send every Nth frame of a stream to the detector (1: as often as it keeps up); "
        "tracking carries the boxes in between",
    )
    detect_between: bool = Field(
        True,
        description="with detect_every > 1: between detection rounds, a small look at what is new (the "
        "picture a panning or zooming camera brought into view, faces seen once and not shown yet)",
    )
    sync_output: Literal["auto", "on", "off"] = Field(
        "auto",
        description="hold the frames that arrive while a detection is in flight and show each with the "
        "boxes as of its own content (the video out is late by about one detection); auto: on for "
        "cameras and files, off for browser cameras (WebRTC self-view wants low lag)",
    )
    sync_max_hold_s: float = Field(
        1.0,
        gt=0,
        le=30,
        description="sync_output: a frame is held at most this long; past it the held frames go out with "
        "the tracked boxes (a slow detector never stalls the video)",
    )
    reidentify_s: float = Field(
        30.0,
        ge=0,
        le=3600,
        description="a face whose track ended (out of view, hidden, lost) and that comes back within "
        "this many seconds, recognised by its dlib face descriptor (kept in memory only), gets its "
        "track id and labels back; needs the face-backbone classifiers (0: off)",
    )
    strategy: Literal["regions", "whole"] = Field(
        "regions",
        description="where to detect: regions (tracks, motion, a slow sweep; each at the scale "
        "min_face_px needs) or the whole frame (scaled to detect_max_side, at upsample)",
    )
    min_face_px: int = Field(
        40, ge=10, le=2000, description="strategy regions: the smallest face to find, in the source's pixels"
    )
    region_budget_px: int = Field(
        640 * 480,
        ge=64 * 64,
        le=16_000_000,
        description="strategy regions: detector pixels one detection round of a 640x480 stream may cost "
        "(a bigger frame gets more, by the square root of its area)",
    )
    propose: bool = Field(
        True,
        description="strategy regions: dlib's HOG detector proposes where faces may be, a tile of the "
        "frame per round, and MMOD looks at each face proposed (finds still small faces sooner)",
    )
    propose_threshold: float = Field(
        PROPOSE_THRESHOLD,
        ge=-2.0,
        le=1.0,
        description="regions: dlib HOG's adjust_threshold for proposals: lower proposes more faces, each "
        "looked at by MMOD (-0.8 finds more turned and faint faces where there is CPU to spare)",
    )
    backend: Literal["local", "triton"] = Field(
        "local", description="where the models run: worker processes here, or Triton model servers"
    )
    triton_urls: list[str] = Field(
        ["127.0.0.1:8001"], min_length=1, description="backend triton: model servers' gRPC host:port"
    )
    triton_timeout_ms: float = Field(
        500.0, gt=0, le=60000, description="backend triton: a request not answered by then is dropped"
    )
    triton_in_flight: int = Field(2, ge=1, le=64, description="backend triton: batches in flight at once")
    triton_transport: Literal["raw", "jpeg"] = Field(
        "raw", description="backend triton: frames as raw RGB (same host, fast LAN) or JPEG (~15x smaller)"
    )

    @field_validator("triton_urls")
    @classmethod
    def _host_port(cls, v: list[str]) -> list[str]:
        bad = [u for u in v if not re.fullmatch(r"[A-Za-z0-9.\-_]+:\d{1,5}|\[[0-9A-Fa-f:]+\]:\d{1,5}", u)]
        if bad:
            raise ValueError(f"triton_urls must be host:port (gRPC), got {bad}")
        return v

    @field_validator("detector")
    @classmethod
    def _known(cls, v: str) -> str:
        if v not in DETECTORS:
            raise ValueError(f"unknown detector {v!r}")
        return v

    @property
    def proposes(self) -> bool:
        """Whether streams get propose regions (HOG's proposals): strategy regions with ``propose``,
        on the local workers (a Triton front end would run HOG on its event loop, where dlib holds
        the GIL: it plans without them)."""
        return self.strategy == "regions" and self.propose and self.backend == "local"


class ClassifierConfig(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,32}$")
    model: str = Field(description="path to a .keras file made by train/ (relative to the config file)")
    threshold: float = Field(0.5, ge=0.0, le=1.0, description="below this the label shows as '?'")
    labels: list[str] | None = Field(None, description="optional; must match the model file's labels")
    input_size: tuple[int, int] | None = Field(None, description="optional [h, w]; must match the model")
    when: str | None = Field(None, pattern=r"^[A-Za-z0-9_-]{1,32}:[^:\s]+$", description="'classifier:label'")


class SourceConfig(Strict):
    id: str
    url: str | None = Field(None, description="rtsp://, rtsps://, http(s):// (MJPEG) camera URL")
    device: int | None = Field(None, ge=0, description="local camera index")
    file: str | None = Field(None, description="video file path")
    loop: bool = Field(True, description="files only: start again at the end")
    realtime: bool = Field(True, description="files only: pace at the file's frame rate")

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        if not STREAM_ID.fullmatch(v):
            raise ValueError("id must be 1-64 letters, digits, '_' or '-'")
        return v

    @model_validator(mode="after")
    def _one_kind(self) -> SourceConfig:
        given = [k for k in ("url", "device", "file") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"a source needs exactly one of url, device, file (got {given or 'none'})")
        return self

    @property
    def kind(self) -> str:
        if self.file is not None:
            return "file"
        if self.device is not None:
            return "camera"
        assert self.url is not None
        return self.url.split(":", 1)[0].lower()


class SourcesDefaults(Strict):
    reconnect_initial_s: float = Field(1.0, gt=0, description="first retry delay after a failure")
    reconnect_max_s: float = Field(30.0, gt=0, description="cap of the exponential backoff")
    open_timeout_s: float = Field(10.0, gt=0)
    read_timeout_s: float = Field(5.0, gt=0, description="a camera silent this long is reconnected")
    rtsp_transport: Literal["tcp", "udp"] = Field("tcp", description="how RTSP cameras send video")
    max_frame_side: int = Field(4096, ge=64, le=16384, description="larger frames are dropped and counted")
    peer_timeout_s: float = Field(10.0, gt=0, description="a browser camera silent this long is closed")
    max_abandoned_opens: int = Field(
        16, ge=0, le=1024, description="removed cameras whose open (uncancellable) may still run"
    )


class DemoConfig(Strict):
    enabled: bool = Field(True, description="serve the demo video when no source is configured")
    file: str = str(DEMO_VIDEO)


class OutputConfig(Strict):
    jpeg_quality: int = Field(80, ge=10, le=100)
    mjpeg_max_fps: float = Field(30.0, gt=0)
    mjpeg_max_viewers: int = Field(32, ge=1, le=4096, description="MJPEG viewers at once, all streams")
    mjpeg_write_timeout_s: float = Field(
        5.0, gt=0, le=600, description="an MJPEG viewer whose socket has not drained by then is dropped"
    )
    events_max_clients: int = Field(64, ge=1, le=4096, description="event-stream clients at once")
    events_write_timeout_s: float = Field(5.0, gt=0, le=600, description="undrained event client is dropped")


class ModelServerConfig(Strict):
    """`streamer model-server`: Triton serving this config's detector and classifiers."""

    host: str = Field("127.0.0.1", description="address Triton binds (gRPC, HTTP, metrics)")
    grpc_port: int = Field(8001, ge=0, le=65535)
    http_port: int = Field(8000, ge=0, le=65535)
    metrics_port: int = Field(8002, ge=0, le=65535, description="Triton's own Prometheus metrics")
    max_batch: int = Field(16, ge=1, le=256, description="frames per model call, across front ends")
    queue_delay_ms: float = Field(2.0, ge=0, le=1000, description="how long Triton waits to fill a batch")
    request_timeout_ms: float = Field(
        1000.0, ge=0, description="queued longer than this, a request is rejected (0 = never)"
    )
    max_image_pixels: int = Field(
        4096 * 4096, ge=4096, le=1 << 30, description="more pixels: a per-frame error (JPEG: by its header)"
    )
    log_file: str = Field(
        "",
        description="tritonserver's own log (relative to the config file; empty: "
        "streamer-triton-<grpc_port>.log in the temporary folder)",
    )


class Config(Strict):
    server: ServerConfig = ServerConfig()
    pipeline: PipelineConfig = PipelineConfig()
    classifiers: list[ClassifierConfig] = Field(default_factory=list)
    sources: list[SourceConfig] = Field(default_factory=list)
    source_defaults: SourcesDefaults = SourcesDefaults()
    demo: DemoConfig = DemoConfig()
    output: OutputConfig = OutputConfig()
    model_server: ModelServerConfig = ModelServerConfig()
    store: StoreConfig = StoreConfig()
    mqtt: MqttConfig = MqttConfig()
    webhook: WebhookConfig = WebhookConfig()
    people: PeopleConfig = PeopleConfig()

    @model_validator(mode="after")
    def _unique(self) -> Config:
        for what, names in (
            ("source id", [s.id for s in self.sources]),
            ("classifier name", [c.name for c in self.classifiers]),
        ):
            dup = {n for n in names if names.count(n) > 1}
            if dup:
                raise ValueError(f"duplicate {what}: {', '.join(sorted(dup))}")
        return self


def _parse_env_value(raw: str) -> Any:
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def env_overrides(environ: dict[str, str] | None = None) -> dict[str, dict[str, Any]]:
    """STREAMER_<SECTION>_<KEY>=value for the scalar keys of the table sections.

    e.g. STREAMER_SERVER_PORT=9000, STREAMER_PIPELINE_DETECTOR=mmod. Text keys take the value as
    written; other values are read as TOML values when they parse, else as strings.
    """
    environ = dict(os.environ if environ is None else environ)
    out: dict[str, dict[str, Any]] = {}
    for section, model in Config.model_fields.items():
        sub = model.annotation
        if not (isinstance(sub, type) and issubclass(sub, BaseModel)):
            continue
        for key in sub.model_fields:
            name = f"STREAMER_{section}_{key}".upper()
            if name in environ:
                raw = environ[name]
                # a text key (a token, a host) is the variable as written: "0123..." stays a string
                value = raw if sub.model_fields[key].annotation is str else _parse_env_value(raw)
                out.setdefault(section, {})[key] = value
    return out


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _resolve_paths(data: dict[str, Any], base: Path) -> dict[str, Any]:
    def rel(p: str) -> str:
        q = Path(p).expanduser()
        return str(q if q.is_absolute() else (base / q))

    for c in data.get("classifiers", []) or []:
        if isinstance(c, dict) and isinstance(c.get("model"), str):
            c["model"] = rel(c["model"])
    for s in data.get("sources", []) or []:
        if isinstance(s, dict) and isinstance(s.get("file"), str):
            s["file"] = rel(s["file"])
    # (an empty model_server.log_file stays empty: it means the default, in the temporary folder)
    for section, key, empty_is_default in (("store", "dir", False), ("model_server", "log_file", True)):
        part = data.get(section)
        if isinstance(part, dict) and isinstance(part.get(key), str) and (part[key] or not empty_is_default):
            part[key] = rel(part[key])
    return data


def format_validation_error(e: ValidationError) -> str:
    lines = []
    for err in e.errors():
        loc = ".".join(str(x) for x in err["loc"]) or "(top)"
        lines.append(f"  {loc}: {err['msg']}")
    return "\n".join(lines)


SHIPPED_MODELS = Path(__file__).resolve().parents[1] / "models"


def shipped_classifiers() -> list[dict[str, Any]]:
    """The classifiers config.toml lists: the shipped models/gender.keras and models/beard.keras."""
    return [
        {"name": n, "model": str(SHIPPED_MODELS / f"{n}.keras"), "threshold": 0.6, **w}
        for n, w in (("gender", {}), ("beard", {"when": "gender:male"}))
    ]


def load_config(
    path: str | os.PathLike[str] | None = None,
    overrides: dict[str, Any] | None = None,
    environ: dict[str, str] | None = None,
    shipped_models: bool = False,
) -> Config:
    """Read and validate the config. Raises ConfigError with every problem listed.

    With no file and ``shipped_models`` (``streamer serve`` without --config), the classifiers
    are config.toml's: the shipped models."""
    data: dict[str, Any] = {}
    base = Path.cwd()
    if path is None and shipped_models:
        data["classifiers"] = shipped_classifiers()
    if path is not None:
        p = Path(path)
        try:
            data = tomllib.loads(p.read_text())
        except FileNotFoundError as e:
            raise ConfigError(f"{p}: config file not found") from e
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{p}: not valid TOML: {e}") from e
        base = p.resolve().parent
        store = data.get("store")
        if isinstance(store, dict) and "dir" not in store:  # (the default "data" is beside the file too)
            store["dir"] = "data"
        elif store is None:
            data["store"] = {"dir": "data"}
    data = _resolve_paths(data, base)
    data = _merge(data, env_overrides(environ))
    data = _merge(data, overrides or {})
    try:
        return Config.model_validate(data)
    except ValidationError as e:
        where = f"{path}" if path else "config"
        raise ConfigError(f"{where}: invalid configuration:\n{format_validation_error(e)}") from e
