"""The HTTP API as an OpenAPI 3 document (``GET /openapi.json``); a test keeps it true to the routes."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from streamer.web.events_spec import PATHS as EVENT_PATHS
from streamer.web.peers import MAX_SDP_BYTES
from streamer.web.people_spec import PATHS as PEOPLE_PATHS

JSON = "application/json"
ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "string", "minLength": 1}},
}
STREAM_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
OFFER = {
    "type": "object",
    "required": ["sdp", "type"],
    "properties": {
        "sdp": {"type": "string", "maxLength": MAX_SDP_BYTES, "description": "SDP text, starting 'v=0'"},
        "type": {"type": "string", "enum": ["offer"]},
    },
}
ANSWER = {
    "type": "object",
    "required": ["sdp", "type", "stream"],
    "properties": {"sdp": {"type": "string"}, "type": {"type": "string"}, "stream": {"type": "string"}},
}
STREAM = {"type": "object", "required": ["id", "kind", "source", "up"], "additionalProperties": True}


def _errors(*codes: int) -> dict[str, Any]:
    return {str(c): {"description": "error", "content": {JSON: {"schema": ERROR}}} for c in codes}


def _json(schema: dict[str, Any], description: str = "ok") -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def _body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {JSON: {"schema": schema}}}


COMMON = (401, 403, 415, 421, 429)  # 429: too many wrong tokens from the address
SPEC: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {
        "title": "streamer",
        "version": "1",
        "description": "Face analytics on live video. Errors are JSON objects with an 'error' reason.",
    },
    "paths": {
        "/": {"get": {"summary": "the page", "responses": {"200": {"description": "HTML page"}}}},
        "/healthz": {
            "get": {
                "summary": "health",
                "responses": {"200": _json({"type": "object"}), "503": _json({"type": "object"}, "starting")},
            }
        },
        "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {"200": {"description": "text"}}}},
        "/openapi.json": {
            "get": {"summary": "this document", "responses": {"200": _json({"type": "object"})}}
        },
        "/streams": {
            "get": {
                "summary": "list streams",
                "responses": {
                    "200": _json(
                        {"type": "object", "properties": {"streams": {"type": "array", "items": STREAM}}}
                    ),
                    **_errors(*COMMON),
                },
            },
            "post": {
                "summary": "add a network camera",
                "requestBody": _body(
                    {
                        "type": "object",
                        "required": ["url"],
                        "additionalProperties": False,
                        "properties": {
                            "id": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"},
                            "url": {"type": "string", "description": "rtsp://, rtsps://, http(s):// (MJPEG)"},
                        },
                    }
                ),
                "responses": {"201": _json(STREAM), **_errors(400, 408, 409, 413, 429, *COMMON)},
            },
        },
        "/streams/{id}": {
            "delete": {
                "summary": "remove a stream",
                "parameters": [STREAM_ID],
                "responses": {"204": {"description": "removed"}, **_errors(404, *COMMON)},
            }
        },
        "/streams/{id}/offer": {
            "post": {
                "summary": "watch a stream over WebRTC (receive-only offer: one video section)",
                "parameters": [STREAM_ID],
                "requestBody": _body(OFFER),
                "responses": {"200": _json(ANSWER), **_errors(400, 404, 408, 413, 429, *COMMON)},
            }
        },
        "/streams/{id}/mjpeg": {
            "get": {
                "summary": "watch a stream as MJPEG (multipart/x-mixed-replace)",
                "parameters": [STREAM_ID],
                "responses": {"200": {"description": "MJPEG stream"}, **_errors(404, 429, *COMMON)},
            }
        },
        "/streams/{id}/events": {
            "get": {
                "summary": "the stream's tracks as Server-Sent Events: start, update (labels changed), end",
                "parameters": [STREAM_ID],
                "responses": {"200": {"description": "text/event-stream"}, **_errors(404, 429, *COMMON)},
            }
        },
        "/offer": {
            "post": {
                "summary": "send a browser camera (one video, at most one audio); get it back annotated",
                "requestBody": _body(OFFER),
                "responses": {"200": _json(ANSWER), **_errors(400, 408, 413, 429, *COMMON)},
            }
        },
        "/static/{filename}": {
            "get": {
                "summary": "the page's scripts and styles",
                "parameters": [
                    {"name": "filename", "in": "path", "required": True, "schema": {"type": "string"}}
                ],
                "responses": {"200": {"description": "file"}, **_errors(404)},
            }
        },
        **EVENT_PATHS,  # the event history (web/events_api.py)
        **PEOPLE_PATHS,  # the face library (web/people_api.py)
    },
}


def routes_of(app: web.Application) -> set[tuple[str, str]]:
    """(METHOD, path template) of every route the app serves (HEAD aliases left out)."""
    out = set()
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        path = info.get("formatter") or info.get("path")
        if route.method != "HEAD" and path:
            out.add((route.method, path))
    return out


def spec_routes(spec: dict[str, Any] = SPEC) -> set[tuple[str, str]]:
    return {(m.upper(), p) for p, ops in spec["paths"].items() for m in ops}


async def openapi_json(request: web.Request) -> web.Response:
    return web.json_response(SPEC)
