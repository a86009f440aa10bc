"""HTTP routes: the page, WebRTC offers, stream management, MJPEG, metrics and health."""

from __future__ import annotations

import json
import logging
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web
from pydantic import ValidationError

from streamer.config import SourceConfig, format_validation_error
from streamer.outputs.mjpeg import serve_mjpeg
from streamer.outputs.webrtc import AnnotatedTrack
from streamer.pipeline.manager import StreamExists
from streamer.sources.base import redact_url
from streamer.sources.webrtc import WebRTCSource
from streamer.web.peers import BadOffer, parse_offer

if TYPE_CHECKING:
    from aiortc import RTCPeerConnection

log = logging.getLogger(__name__)
STATIC = Path(__file__).resolve().parent / "static"
API_SCHEMES = ("rtsp", "rtsps", "http", "https")


def _app_keys():
    from streamer.web import app as a

    return a


def json_error(request: web.Request, status: int, message: str, kind: str) -> web.Response:
    request.app[_app_keys().METRICS].errors.labels(kind).inc()
    return web.json_response({"error": message}, status=status)


@web.middleware
async def error_middleware(request: web.Request, handler):
    try:
        return await handler(request)
    except web.HTTPRequestEntityTooLarge:
        return json_error(request, 413, "request body too large", "request_too_large")
    except web.HTTPException as e:
        if e.status >= 400 and e.content_type != "application/json":
            return json_error(request, e.status, e.reason, f"http_{e.status}")
        raise
    except Exception:
        log.exception("unhandled error in %s %s", request.method, request.path)
        return json_error(request, 500, "internal error", "http_500")


async def index(request: web.Request) -> web.Response:
    ice = [s.model_dump(exclude_none=True) for s in request.app[_app_keys().CONFIG].server.ice_servers]
    html = (STATIC / "index.html").read_text().replace("__ICE_SERVERS__", json.dumps(ice))
    return web.Response(text=html, content_type="text/html", headers={"Cache-Control": "no-store"})


async def _answer(request: web.Request, pc: RTCPeerConnection, offer, extra: dict) -> web.Response:
    a = _app_keys()
    try:
        await pc.setRemoteDescription(offer)
        await pc.setLocalDescription(await pc.createAnswer())
    except Exception as e:
        await request.app[a.PEERS].close(pc)
        return json_error(request, 400, f"cannot use this offer: {e}", "bad_offer")
    ld = pc.localDescription
    return web.json_response({"sdp": ld.sdp, "type": ld.type, **extra})


async def offer(request: web.Request) -> web.Response:
    """The browser sends its camera; it gets the same video back, annotated."""
    a = _app_keys()
    try:
        desc = parse_offer(await request.read())
    except BadOffer as e:
        return json_error(request, 400, str(e), "bad_offer")
    pipeline, peers, metrics = request.app[a.PIPELINE], request.app[a.PEERS], request.app[a.METRICS]
    stream_id = f"webrtc-{uuid.uuid4().hex[:8]}"

    async def on_close() -> None:
        await pipeline.remove(stream_id)

    pc = peers.create(on_close)

    @pc.on("track")
    def on_track(track) -> None:
        if track.kind != "video" or stream_id in pipeline.streams:
            return
        stream = pipeline.add_stream(WebRTCSource(stream_id, track, metrics, pipeline.render_pool))
        pc.addTrack(AnnotatedTrack(stream.hub))

    response = await _answer(request, pc, desc, {"stream": stream_id})
    if response.status == 200 and stream_id not in pipeline.streams:
        await peers.close(pc)
        return json_error(request, 400, "the offer sends no video track", "bad_offer")
    return response


async def watch_offer(request: web.Request) -> web.Response:
    """Watch a source's annotated video over WebRTC (the browser's offer is receive-only)."""
    a = _app_keys()
    stream = request.app[a.PIPELINE].streams.get(request.match_info["id"])
    if stream is None:
        return json_error(request, 404, "no such stream", "not_found")
    try:
        desc = parse_offer(await request.read())
    except BadOffer as e:
        return json_error(request, 400, str(e), "bad_offer")
    pc = request.app[a.PEERS].create()
    pc.addTrack(AnnotatedTrack(stream.hub))
    return await _answer(request, pc, desc, {"stream": stream.id})


async def list_streams(request: web.Request) -> web.Response:
    pipeline = request.app[_app_keys().PIPELINE]
    return web.json_response({"streams": [s.info() for s in pipeline.streams.values()]})


async def add_stream(request: web.Request) -> web.Response:
    a = _app_keys()
    pipeline = request.app[a.PIPELINE]
    try:
        body = json.loads(await request.read())
    except (json.JSONDecodeError, UnicodeDecodeError):
        return json_error(request, 400, "body must be JSON", "bad_request")
    if not isinstance(body, dict):
        return json_error(request, 400, "body must be a JSON object", "bad_request")
    url = body.get("url")
    if not isinstance(url, str) or "://" not in url:
        return json_error(request, 400, "'url' (e.g. rtsp://camera/stream) is required", "bad_request")
    scheme = url.split("://", 1)[0].lower()
    if scheme not in API_SCHEMES:
        return json_error(
            request, 400, f"scheme {scheme!r} not allowed; use one of {API_SCHEMES}", "bad_source"
        )
    body.setdefault("id", f"cam-{uuid.uuid4().hex[:6]}")
    try:
        cfg = SourceConfig.model_validate({k: body[k] for k in ("id", "url") if k in body} | {"url": url})
    except ValidationError as e:
        return json_error(request, 400, "invalid source:\n" + format_validation_error(e), "bad_source")
    extra = set(body) - {"id", "url"}
    if extra:
        return json_error(request, 400, f"unknown keys: {sorted(extra)}", "bad_source")
    try:
        stream = await pipeline.add_source(cfg)
    except StreamExists:
        return json_error(request, 409, f"stream {cfg.id!r} exists", "conflict")
    log.info("API added stream %s: %s", cfg.id, redact_url(url))
    return web.json_response(stream.info(), status=201)


async def delete_stream(request: web.Request) -> web.Response:
    pipeline = request.app[_app_keys().PIPELINE]
    if await pipeline.remove(request.match_info["id"]):
        return web.Response(status=204)
    return json_error(request, 404, "no such stream", "not_found")


async def mjpeg(request: web.Request) -> web.StreamResponse:
    a = _app_keys()
    stream = request.app[a.PIPELINE].streams.get(request.match_info["id"])
    if stream is None:
        return json_error(request, 404, "no such stream", "not_found")
    out = request.app[a.CONFIG].output
    return await serve_mjpeg(
        request, stream.hub, out.jpeg_quality, out.mjpeg_max_fps, request.app[a.PIPELINE].render_pool
    )


async def metrics(request: web.Request) -> web.Response:
    body = request.app[_app_keys().METRICS].render()
    return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})


async def healthz(request: web.Request) -> web.Response:
    a = _app_keys()
    pipeline = request.app[a.PIPELINE]
    st = pipeline.status
    streams = list(pipeline.streams.values())
    body = {
        "status": "ok" if st is not None else "starting",
        "detector": st.detector if st else None,
        "classifiers": st.classifiers if st else [],
        "classifiers_failed": st.failed if st else {},
        "streams": len(streams),
        "streams_up": sum(1 for s in streams if s.source.state.up),
        "worker_restarts": pipeline.pool.restarts,
        "peers": len(request.app[a.PEERS].pcs),
    }
    return web.json_response(body, status=200 if st is not None else 503)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/", index)
    app.router.add_post("/offer", offer)
    app.router.add_get("/streams", list_streams)
    app.router.add_post("/streams", add_stream)
    app.router.add_delete("/streams/{id}", delete_stream)
    app.router.add_post("/streams/{id}/offer", watch_offer)
    app.router.add_get("/streams/{id}/mjpeg", mjpeg)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_static("/static", STATIC)
