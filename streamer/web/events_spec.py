"""The event history's part of the OpenAPI document (openapi.py merges it into its paths)."""

from __future__ import annotations

from typing import Any

JSON = "application/json"
ERROR = {"type": "object", "required": ["error"], "properties": {"error": {"type": "string", "minLength": 1}}}
COMMON = (401, 403, 421)
EVENT_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
TIME = {"type": "string", "description": "seconds since the epoch, or an ISO 8601 time (UTC if no zone)"}
LABELS = {
    "type": "object",
    "description": "classifier -> settled label and its probability ('?' when it never settled)",
    "additionalProperties": {
        "type": "object",
        "properties": {"label": {"type": "string"}, "p": {"type": "number"}},
    },
}
EVENT = {
    "type": "object",
    "required": [
        "id",
        "stream",
        "track",
        "started_at",
        "ended_at",
        "duration_s",
        "labels",
        "looks",
        "snapshot",
    ],
    "properties": {
        "id": {"type": "integer"},
        "stream": {"type": "string"},
        "track": {"type": "integer"},
        "started_at": {"type": "number", "description": "first seen, seconds since the epoch"},
        "ended_at": {"type": "number", "description": "last seen"},
        "duration_s": {"type": "number"},
        "labels": LABELS,
        "looks": {"type": "integer", "description": "detections of the face"},
        "identity": {"type": "string", "nullable": True, "description": "the face library's settled name"},
        "box": {
            "type": "array",
            "nullable": True,
            "items": {"type": "integer"},
            "description": "the snapshot's face box",
        },
        "snapshot_at": {"type": "number", "nullable": True},
        "snapshot": {"type": "boolean"},
        "snapshot_url": {"type": "string"},
        "thumbnail_url": {"type": "string"},
    },
}


def _q(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


def _errors(*codes: int) -> dict[str, Any]:
    return {str(c): {"description": "error", "content": {JSON: {"schema": ERROR}}} for c in codes}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": "ok", "content": {JSON: {"schema": schema}}}


JPEG = {"description": "JPEG", "content": {"image/jpeg": {"schema": {"type": "string", "format": "binary"}}}}

PATHS: dict[str, Any] = {
    "/events": {
        "get": {
            "summary": "what happened: one record per ended track, newest first (by start), paged by cursor",
            "parameters": [
                _q("stream", {"type": "string"}, "only this stream"),
                _q("label", {"type": "string"}, "a label ('male') or classifier:label ('gender:male')"),
                _q("person", {"type": "string"}, "only this identity"),
                _q("since", TIME, "started at or after"),
                _q("until", TIME, "started before"),
                _q("limit", {"type": "integer", "minimum": 1, "maximum": 500}, "page size (default 50)"),
                _q("cursor", {"type": "string"}, "the previous page's 'next'"),
            ],
            "responses": {
                "200": _json(
                    {
                        "type": "object",
                        "required": ["events", "next"],
                        "properties": {
                            "events": {"type": "array", "items": EVENT},
                            "next": {"type": "string", "nullable": True},
                        },
                    }
                ),
                **_errors(400, 404, 503, *COMMON),
            },
        }
    },
    "/events/counts": {
        "get": {
            "summary": "tracks per hour, and per classifier:label, by start (default: the last 24 h)",
            "parameters": [
                _q("stream", {"type": "string"}, "only this stream"),
                _q("since", TIME, "from (default: until - 24 h)"),
                _q("until", TIME, "to (default: now)"),
            ],
            "responses": {
                "200": _json({"type": "object", "required": ["hours"]}),
                **_errors(400, 404, 503, *COMMON),
            },
        }
    },
    "/events/{id}": {
        "get": {
            "summary": "one event",
            "parameters": [EVENT_ID],
            "responses": {"200": _json(EVENT), **_errors(404, 503, *COMMON)},
        },
        "delete": {
            "summary": "delete an event and its snapshots",
            "parameters": [EVENT_ID],
            "responses": {"204": {"description": "deleted"}, **_errors(404, 503, *COMMON)},
        },
    },
    "/events/{id}/snapshot.jpg": {
        "get": {
            "summary": "the event's best face snapshot (sharpest, largest look)",
            "parameters": [EVENT_ID],
            "responses": {"200": JPEG, **_errors(404, 503, *COMMON)},
        }
    },
    "/events/{id}/thumbnail.jpg": {
        "get": {
            "summary": "the frame of that look, small, with the face boxed",
            "parameters": [EVENT_ID],
            "responses": {"200": JPEG, **_errors(404, 503, *COMMON)},
        }
    },
}
