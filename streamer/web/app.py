"""The aiohttp application: state on the app, background work started and stopped with it."""

from __future__ import annotations

import logging

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage

from streamer.config import Config
from streamer.metrics import Metrics
from streamer.outputs.mjpeg import MjpegOutput
from streamer.outputs.sse import EventsOutput
from streamer.pipeline.manager import Pipeline
from streamer.web import routes
from streamer.web.connections import track_requests
from streamer.web.guard import RateLimiter
from streamer.web.keys import AUTH_LIMITER, CONFIG, EVENTS, METRICS, MJPEG, OFFER_LIMITER, PEERS, PIPELINE
from streamer.web.peers import Peers

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 256 * 1024

__all__ = ["CONFIG", "METRICS", "PEERS", "PIPELINE", "create_app"]


class MalformedRequestsQuietly(logging.Filter):
    """aiohttp answers a request it cannot parse (a NUL in a header, a broken request line) with
    400 but logs it as an ERROR with a traceback; it is bad client input, so one INFO line."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, BadHttpMessage):
            record.levelno, record.levelname = logging.INFO, "INFO"
            record.msg, record.args = "malformed HTTP request refused (400): %s", (str(exc).splitlines()[0],)
            record.exc_info, record.exc_text = None, None
        return True


_QUIET = MalformedRequestsQuietly()


def create_app(config: Config, metrics: Metrics | None = None) -> web.Application:
    metrics = metrics or Metrics()
    server_log = logging.getLogger("aiohttp.server")
    if _QUIET not in server_log.filters:
        server_log.addFilter(_QUIET)
    app = web.Application(
        client_max_size=MAX_BODY_BYTES, middlewares=[track_requests, routes.guard_middleware]
    )
    app[CONFIG] = config
    app[METRICS] = metrics
    app[PIPELINE] = Pipeline(config, metrics)
    server, out = config.server, config.output
    app[PEERS] = Peers(
        server.ice_servers,
        metrics,
        server.max_peers,
        server.peer_connect_timeout_s,
        server.max_pending_peers_per_client,
    )
    app[MJPEG] = MjpegOutput(
        metrics,
        out.jpeg_quality,
        out.mjpeg_max_fps,
        out.mjpeg_max_viewers,
        out.mjpeg_write_timeout_s,
        app[PIPELINE].render_pool,
    )
    app[EVENTS] = EventsOutput(metrics, out.events_max_clients, out.events_write_timeout_s)
    app[OFFER_LIMITER] = RateLimiter(config.server.offers_per_minute)
    app[AUTH_LIMITER] = RateLimiter(config.server.auth_failures_per_minute)
    routes.add_routes(app)
    app.on_startup.append(_start)
    app.on_shutdown.append(_shutdown)
    return app


async def _start(app: web.Application) -> None:
    status = await app[PIPELINE].start()
    log.info(
        "pipeline ready: detector=%s classifiers=%s%s",
        status.detector,
        status.classifiers or "none (boxes only)",
        f" failed={list(status.failed)}" if status.failed else "",
    )


async def _shutdown(app: web.Application) -> None:
    await app[PEERS].close_all()
    await app[PIPELINE].close()
