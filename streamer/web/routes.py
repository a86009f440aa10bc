"""HTTP routes: the page, WebRTC offers, stream management, MJPEG, metrics and health."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import uuid
from pathlib import Path

from aiohttp import web
from aiortc import RTCPeerConnection, RTCSessionDescription
from pydantic import ValidationError

from streamer.config import SourceConfig, format_validation_error
from streamer.outputs.mjpeg import TooManyViewers
from streamer.outputs.sse import TooManyEventClients
from streamer.outputs.webrtc import AnnotatedTrack
from streamer.pipeline.manager import StreamExists, TooManyStreams
from streamer.server_config import LOOPBACK
from streamer.sources.base import redact_url
from streamer.sources.webrtc import WebRTCSource
from streamer.web.events_api import add_event_routes
from streamer.web.guard import cross_site_refusal, host_allowed, needs_token, presented_token, token_ok
from streamer.web.keys import AUTH_LIMITER, CONFIG, EVENTS, METRICS, MJPEG, OFFER_LIMITER, PEERS, PIPELINE
from streamer.web.openapi import openapi_json
from streamer.web.peers import (
    CAMERA_MEDIA,
    VIEWER_MEDIA,
    BadOffer,
    TooManyPeers,
    load_json,
    offer_error,
    parse_offer,
)
from streamer.web.people_api import add_people_routes

log = logging.getLogger(__name__)
STATIC = Path(__file__).resolve().parent / "static"
CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f-\x9f]")
METRICS_MAX_AGE_S = 1.0  # /metrics renders at most once a second, however often it is asked


def json_error(request: web.Request, status: int, message: str, kind: str) -> web.Response:
    request.app[METRICS].errors.labels(kind).inc()
    return web.json_response({"error": message}, status=status)


@web.middleware
async def guard_middleware(request: web.Request, handler):
    """Host, token and cross-site checks, and every failure as a JSON error with a metric."""
    server = request.app[CONFIG].server
    if not host_allowed(request.headers.get("Host"), server.host, server.allowed_hosts, LOOPBACK):
        return json_error(request, 421, "unexpected Host header (see server.allowed_hosts)", "bad_host")
    expected = server.api_token
    if expected and needs_token(request):
        failures, client = request.app[AUTH_LIMITER], request.remote or "?"
        if failures.exhausted(client):  # the token is not even compared: guessing stops here
            return json_error(
                request,
                429,
                f"too many wrong API tokens from this address (limit {failures.limit} a minute)",
                "auth_rate_limited",
            )
        if not token_ok(expected, presented_token(request)):
            failures.allow(client)
            return json_error(request, 401, "missing or wrong API token", "unauthorized")
    refused = cross_site_refusal(request)
    if refused is not None:
        return json_error(request, refused[0], refused[1], "cross_site")
    try:
        return await handler(request)
    except ConnectionError:
        # the client went away mid-answer: normal, counted, no traceback
        request.app[METRICS].output_disconnects.labels("http", "left").inc()
        return web.Response(status=499)
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
    ice = [s.model_dump(exclude_none=True) for s in request.app[CONFIG].server.ice_servers]
    html = (STATIC / "index.html").read_text().replace("__ICE_SERVERS__", json.dumps(ice))
    return web.Response(text=html, content_type="text/html", headers={"Cache-Control": "no-store"})


async def read_body(request: web.Request) -> bytes:
    """The body, which must arrive within ``header_timeout_s`` (a trickled body holds nothing for long)."""
    timeout = request.app[CONFIG].server.header_timeout_s
    try:
        return await asyncio.wait_for(request.read(), timeout)
    except TimeoutError:
        raise web.HTTPRequestTimeout(reason=f"request body not received within {timeout:g}s") from None


def _offer_limited(request: web.Request) -> web.Response | None:
    limiter = request.app[OFFER_LIMITER]
    if not limiter.allow(request.remote or "?"):
        return json_error(request, 429, f"too many offers (limit {limiter.limit} a minute)", "rate_limited")
    return None


async def _read_offer(request: web.Request, allowed: dict[str, int]) -> RTCSessionDescription | web.Response:
    try:
        desc = parse_offer(await read_body(request), allowed)
    except BadOffer as e:
        return json_error(request, 400, str(e), "bad_offer")
    return _offer_limited(request) or desc


def _new_peer(request: web.Request, on_close=None) -> RTCPeerConnection | web.Response:
    try:
        return request.app[PEERS].create(on_close, request.remote or "?")
    except TooManyPeers as e:
        return json_error(request, 429, str(e), "too_many_peers")


async def _answer(request: web.Request, pc: RTCPeerConnection, offer, extra: dict) -> web.Response:
    try:
        await pc.setRemoteDescription(offer)
        await pc.setLocalDescription(await pc.createAnswer())
    except Exception as e:
        await request.app[PEERS].close(pc)
        return json_error(request, 400, f"cannot use this offer: {offer_error(e)}", "bad_offer")
    ld = pc.localDescription
    return web.json_response({"sdp": ld.sdp, "type": ld.type, **extra})


async def offer(request: web.Request) -> web.Response:
    """The browser sends its camera; it gets the same video back, annotated."""
    desc = await _read_offer(request, CAMERA_MEDIA)
    if isinstance(desc, web.Response):
        return desc
    pipeline = request.app[PIPELINE]
    if pipeline.full():
        return json_error(
            request, 429, f"too many streams (limit {pipeline.max_streams})", "too_many_streams"
        )
    # the slot is held from here: offers answered at the same time cannot all pass the check above
    pipeline.reserved += 1
    try:
        return await _camera_offer(request, desc)
    finally:
        pipeline.reserved -= 1


async def _camera_offer(request: web.Request, desc: RTCSessionDescription) -> web.Response:
    pipeline, peers, metrics = request.app[PIPELINE], request.app[PEERS], request.app[METRICS]
    stream_id = f"webrtc-{uuid.uuid4().hex[:8]}"

    async def on_close() -> None:
        await pipeline.remove(stream_id)

    pc = _new_peer(request, on_close)
    if isinstance(pc, web.Response):
        return pc
    defaults = request.app[CONFIG].source_defaults

    @pc.on("track")
    def on_track(track) -> None:
        if track.kind != "video" or stream_id in pipeline.streams:
            return
        source = WebRTCSource(
            stream_id, track, metrics, pipeline.render_pool, defaults.peer_timeout_s, defaults.max_frame_side
        )
        stream = pipeline.add_stream(source, force=True)
        pc.addTrack(AnnotatedTrack(stream.hub))
        # a camera that stops sending (tab killed, network gone) ends its stream, which closes the peer
        stream.when_done(lambda: peers.close(pc))

    response = await _answer(request, pc, desc, {"stream": stream_id})
    if response.status == 200 and stream_id not in pipeline.streams:
        await peers.close(pc)
        return json_error(request, 400, "the offer sends no video track", "bad_offer")
    return response


async def watch_offer(request: web.Request) -> web.Response:
    """Watch a source's annotated video over WebRTC (the browser's offer is receive-only)."""
    stream = request.app[PIPELINE].streams.get(request.match_info["id"])
    if stream is None:
        return json_error(request, 404, "no such stream", "not_found")
    desc = await _read_offer(request, VIEWER_MEDIA)
    if isinstance(desc, web.Response):
        return desc
    pc = _new_peer(request)
    if isinstance(pc, web.Response):
        return pc
    pc.addTrack(AnnotatedTrack(stream.hub))
    return await _answer(request, pc, desc, {"stream": stream.id})


async def list_streams(request: web.Request) -> web.Response:
    pipeline = request.app[PIPELINE]
    return web.json_response({"streams": [s.info() for s in pipeline.streams.values()]})


async def add_stream(request: web.Request) -> web.Response:
    pipeline = request.app[PIPELINE]
    try:
        body = load_json(await read_body(request))
    except ValueError as e:
        return json_error(request, 400, str(e), "bad_request")
    if not isinstance(body, dict):
        return json_error(request, 400, "body must be a JSON object", "bad_request")
    url, sid = body.get("url"), body.get("id")
    if not isinstance(url, str) or "://" not in url:
        return json_error(request, 400, "'url' (e.g. rtsp://camera/stream) is required", "bad_request")
    limit = request.app[CONFIG].server.max_url_chars
    if len(url) > limit:
        why = f"'url' is {len(url)} characters; the limit is {limit} (server.max_url_chars)"
        return json_error(request, 400, why, "bad_source")
    for key, value in (("url", url), ("id", sid)):
        if isinstance(value, str) and CONTROL_CHARS.search(value):
            why = f"'{key}' contains control characters (CR, LF, ...); they are not allowed"
            return json_error(request, 400, why, "bad_source")
    scheme = url.split("://", 1)[0].lower()
    allowed = request.app[CONFIG].server.allowed_schemes
    if scheme not in allowed:
        return json_error(request, 400, f"scheme {scheme!r} not allowed; use one of {allowed}", "bad_source")
    extra = set(body) - {"id", "url"}
    if extra:
        return json_error(request, 400, f"unknown keys: {sorted(extra)}", "bad_source")
    try:
        cfg = SourceConfig.model_validate({"id": body.get("id", f"cam-{uuid.uuid4().hex[:6]}"), "url": url})
    except ValidationError as e:
        return json_error(request, 400, "invalid source:\n" + format_validation_error(e), "bad_source")
    try:
        stream = await pipeline.add_source(cfg)
    except StreamExists:
        return json_error(request, 409, f"stream {cfg.id!r} exists", "conflict")
    except TooManyStreams as e:
        return json_error(request, 429, str(e), "too_many_streams")
    log.info("API added stream %s: %s", cfg.id, redact_url(url))
    return web.json_response(stream.info(), status=201)


async def delete_stream(request: web.Request) -> web.Response:
    if await request.app[PIPELINE].remove(request.match_info["id"]):
        return web.Response(status=204)
    return json_error(request, 404, "no such stream", "not_found")


async def mjpeg(request: web.Request) -> web.StreamResponse:
    pipeline = request.app[PIPELINE]
    stream = pipeline.streams.get(request.match_info["id"])
    if stream is None:
        return json_error(request, 404, "no such stream", "not_found")
    try:
        return await request.app[MJPEG].serve(request, stream.hub)
    except TooManyViewers as e:
        refused = json_error(request, 429, str(e), "too_many_viewers")
        refused.force_close()
        return refused


async def events(request: web.Request) -> web.StreamResponse:
    stream = request.app[PIPELINE].streams.get(request.match_info["id"])
    if stream is None:
        return json_error(request, 404, "no such stream", "not_found")
    try:
        return await request.app[EVENTS].serve(request, stream.events)
    except TooManyEventClients as e:
        refused = json_error(request, 429, str(e), "too_many_event_clients")
        refused.force_close()  # a client that never reads does not keep the connection
        return refused


async def metrics(request: web.Request) -> web.Response:
    body = request.app[METRICS].render(METRICS_MAX_AGE_S)
    return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})


async def healthz(request: web.Request) -> web.Response:
    pipeline = request.app[PIPELINE]
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
        "peers": len(request.app[PEERS].pcs),
        **pipeline.history.health(),  # the event store ("off", "ok", "failing") and the MQTT broker
    }
    return web.json_response(body, status=200 if st is not None else 503)


async def static_file(request: web.Request) -> web.StreamResponse:
    """The page's files; anything else (a missing name, a path outside the folder) is a JSON 404."""
    name = request.match_info["filename"]
    path = STATIC / name
    if "/" in name or "\\" in name or name.startswith(".") or not path.is_file():
        return json_error(request, 404, "no such file", "not_found")
    return web.FileResponse(path, headers={"Cache-Control": "no-cache"})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/", index)
    app.router.add_post("/offer", offer)
    app.router.add_get("/streams", list_streams)
    app.router.add_post("/streams", add_stream)
    app.router.add_delete("/streams/{id}", delete_stream)
    app.router.add_post("/streams/{id}/offer", watch_offer)
    app.router.add_get("/streams/{id}/mjpeg", mjpeg)
    app.router.add_get("/streams/{id}/events", events)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/openapi.json", openapi_json)
    app.router.add_get("/static/{filename}", static_file)
    add_event_routes(app)  # the event history
    add_people_routes(app)  # the face library
