"""The [server] section: where the service listens, who may use it, and the limits on its clients
(streams, WebRTC peers, HTTP connections, tokens, URLs). Explained key by key in config.toml and
docs/configuration.md; the limits' reasons are in RELIABILITY.md."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class IceServer(Strict):
    urls: list[str] = Field(min_length=1, description="stun:host:port or turn:host:port URLs")
    username: str | None = None
    credential: str | None = None


LOOPBACK = ("127.0.0.1", "::1", "localhost")
MIN_TOKEN_LEN = 16
MIN_TOKEN_DISTINCT = 6


class ServerConfig(Strict):
    host: str = Field("127.0.0.1", description="address to bind")
    port: int = Field(8080, ge=0, le=65535)
    ice_servers: list[IceServer] = Field(default_factory=list)
    api_token: str = Field(
        "",
        description="required for changes (sources, offers) and video; mandatory when host is not loopback",
    )
    allowed_schemes: list[str] = Field(
        ["rtsp", "rtsps", "http", "https"], description="URL schemes the API accepts for new sources"
    )
    max_streams: int = Field(16, ge=1, le=1024, description="sources and browser streams, all together")
    max_peers: int = Field(16, ge=1, le=1024, description="open WebRTC connections")
    offers_per_minute: float = Field(30.0, gt=0, description="WebRTC offers per client address")
    peer_connect_timeout_s: float = Field(
        15.0, gt=0, le=600, description="a WebRTC peer whose ICE/DTLS has not completed by then is closed"
    )
    max_pending_peers_per_client: int = Field(
        4, ge=1, le=1024, description="WebRTC peers not yet connected, per client address"
    )
    max_connections: int = Field(1024, ge=16, le=1 << 20, description="open HTTP connections at most")
    header_timeout_s: float = Field(10.0, gt=0, le=600, description="a request must arrive within this")
    keepalive_timeout_s: float = Field(15.0, gt=0, le=3600, description="idle connections close then")
    auth_failures_per_minute: float = Field(20.0, gt=0, description="wrong API tokens per client address")
    max_url_chars: int = Field(2048, ge=64, le=65536, description="longest camera URL the API accepts")
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description="extra Host header names accepted (loopback names and `host` always are; "
        "any Host is accepted when bound to 0.0.0.0/:: and this is empty)",
    )

    @field_validator("api_token")
    @classmethod
    def _token_strength(cls, v: str) -> str:
        if v == "":
            return v
        if not v.strip():
            raise ValueError("api_token is blank (only spaces); leave it unset or use 16+ real characters")
        if v != v.strip():
            raise ValueError("api_token has leading or trailing whitespace")
        if len(v) < MIN_TOKEN_LEN:
            raise ValueError(f"api_token is too short: use {MIN_TOKEN_LEN} characters or more")
        if len(set(v)) < MIN_TOKEN_DISTINCT:
            raise ValueError(f"api_token is too weak: use at least {MIN_TOKEN_DISTINCT} different characters")
        return v

    @field_validator("allowed_schemes")
    @classmethod
    def _schemes(cls, v: list[str]) -> list[str]:
        bad = [x for x in v if x.lower() in ("file", "") or not re.fullmatch(r"[a-z][a-z0-9+.-]*", x.lower())]
        if bad:
            raise ValueError(f"schemes not allowed for network sources: {bad}")
        return [x.lower() for x in v]

    @model_validator(mode="after")
    def _token_off_loopback(self) -> ServerConfig:
        if self.host not in LOOPBACK and len(self.api_token) < 16:
            raise ValueError(
                f"binding to {self.host!r} exposes the service beyond this machine: set server.api_token "
                "(16 characters or more, e.g. STREAMER_SERVER_API_TOKEN) or bind to 127.0.0.1"
            )
        return self
