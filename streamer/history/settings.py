"""The [store], [mqtt] and [webhook] sections of the configuration (config.py takes them in)."""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StoreConfig(_Strict):
    enabled: bool = Field(True, description="keep a record of every track that ends, with its best snapshot")
    dir: str = Field(
        "data", description="folder of the embedded SQLite database (events.db); relative to the config file"
    )
    url: str = Field(
        "", description="postgresql://user:pass@host/db: PostgreSQL instead (several front ends share it)"
    )
    queue: int = Field(
        1000, ge=1, le=1_000_000, description="records waiting for the writer; more are dropped and counted"
    )
    batch: int = Field(200, ge=1, le=10_000, description="records per write transaction at most")
    max_age_days: float = Field(30.0, gt=0, description="records older than this are deleted")
    max_snapshot_mb: float = Field(
        2048.0, gt=0, description="snapshot bytes kept at most; the oldest go first"
    )
    retention_interval_s: float = Field(60.0, gt=0, description="how often retention runs (in the writer)")
    face_max_side: int = Field(
        160, ge=32, le=1024, description="the face snapshot's longer side at most (px)"
    )
    thumb_width: int = Field(256, ge=32, le=1920, description="the frame thumbnail's width (px)")
    jpeg_quality: int = Field(85, ge=10, le=100)

    @field_validator("url")
    @classmethod
    def _postgres(cls, v: str) -> str:
        if v and urlsplit(v).scheme not in ("postgresql", "postgres"):
            raise ValueError("store.url must be postgresql://... (leave it empty for SQLite in store.dir)")
        return v


class MqttConfig(_Strict):
    enabled: bool = Field(False, description="publish track events to an MQTT broker")
    host: str = "127.0.0.1"
    port: int = Field(1883, ge=1, le=65535)
    tls: bool = Field(False, description="TLS to the broker (system CAs, or ca_file)")
    ca_file: str = ""
    username: str = ""
    password: str = Field("", description="prefer STREAMER_MQTT_PASSWORD; never logged")
    topic_prefix: str = Field("streamer", description="<prefix>/<stream>/events, <prefix>/available")
    client_id: str = ""
    qos: int = Field(1, ge=0, le=2)
    keepalive_s: int = Field(30, ge=5, le=3600)
    queue: int = Field(
        1000, ge=1, le=1_000_000, description="events waiting for the broker; more are dropped and counted"
    )


class WebhookConfig(_Strict):
    url: str = Field("", description="POST each track event as JSON here (empty: off)")
    kinds: list[str] = Field(["start", "end"], description="which events: start, update, end")
    timeout_s: float = Field(5.0, gt=0, le=120)
    retries: int = Field(3, ge=0, le=20, description="tries after the first, with a growing pause")
    queue: int = Field(1000, ge=1, le=1_000_000)
    headers: dict[str, str] = Field(
        default_factory=dict, description="extra headers (e.g. Authorization); never logged"
    )

    @field_validator("url")
    @classmethod
    def _http(cls, v: str) -> str:
        if v and urlsplit(v).scheme not in ("http", "https"):
            raise ValueError("webhook.url must be http(s)://...")
        return v
