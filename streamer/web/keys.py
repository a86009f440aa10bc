"""Typed keys for the state kept on the aiohttp application."""

from __future__ import annotations

from aiohttp import web

from streamer.config import Config
from streamer.metrics import Metrics
from streamer.outputs.mjpeg import MjpegOutput
from streamer.outputs.sse import EventsOutput
from streamer.pipeline.manager import Pipeline
from streamer.web.guard import RateLimiter
from streamer.web.peers import Peers

CONFIG = web.AppKey("config", Config)
METRICS = web.AppKey("metrics", Metrics)
PIPELINE = web.AppKey("pipeline", Pipeline)
PEERS = web.AppKey("peers", Peers)
OFFER_LIMITER = web.AppKey("offer_limiter", RateLimiter)
MJPEG = web.AppKey("mjpeg", MjpegOutput)
EVENTS = web.AppKey("events", EventsOutput)
AUTH_LIMITER = web.AppKey("auth_limiter", RateLimiter)  # failed tokens per client address
