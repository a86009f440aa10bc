"""The face library's part of the OpenAPI document (openapi.py merges it into its paths)."""

from __future__ import annotations

from typing import Any

from streamer.web.events_spec import COMMON, JPEG, JSON, _errors, _json

NAME = {"name": "name", "in": "path", "required": True, "schema": {"type": "string", "maxLength": 100}}
FACE = {"name": "face", "in": "path", "required": True, "schema": {"type": "string"}}
ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
NAME_BODY = {
    "required": True,
    "content": {
        JSON: {
            "schema": {
                "type": "object",
                "required": ["name"],
                "properties": {
                    "name": {"type": "string", "minLength": 1, "maxLength": 100},
                    "negative": {
                        "type": "boolean",
                        "description": "true: 'not this person' (kept as a negative)",
                    },
                },
            }
        }
    },
}
FACE_ROW = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "source": {"type": "string", "description": "upload, file, event, event_negative, cluster:<id>"},
        "event_id": {"type": "integer", "nullable": True},
        "created_at": {"type": "number"},
        "crop_url": {"type": "string"},
    },
}
PERSON = {
    "type": "object",
    "required": ["name", "faces", "negatives"],
    "properties": {
        "name": {"type": "string"},
        "created_at": {"type": "number"},
        "faces": {"type": "array", "items": FACE_ROW},
        "negatives": {"type": "array", "items": FACE_ROW, "description": "'not this person' faces"},
    },
}
CLUSTER = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "name": {"type": "string", "description": "'unknown <id>'"},
        "sightings": {"type": "integer", "description": "tracks in the cluster"},
        "first_at": {"type": "number"},
        "last_at": {"type": "number"},
        "event_id": {"type": "integer", "nullable": True},
        "snapshot_url": {"type": "string", "nullable": True},
    },
}
NO_CONTENT = {"204": {"description": "deleted"}}

PATHS: dict[str, Any] = {
    "/people": {
        "get": {
            "summary": "the face library: people, their enrolled faces and negatives",
            "responses": {
                "200": _json(
                    {"type": "object", "properties": {"people": {"type": "array", "items": PERSON}}}
                ),
                **_errors(404, 503, *COMMON),
            },
        }
    },
    "/people/{name}": {
        "delete": {
            "summary": "remove a person and all their faces",
            "parameters": [NAME],
            "responses": {**NO_CONTENT, **_errors(404, 503, *COMMON)},
        }
    },
    "/people/{name}/faces": {
        "post": {
            "summary": "enroll a photo (the raw JPEG or PNG body) of one face; the person is created if new",
            "description": "The face is found, aligned and described as live. 413: over people.max_upload_mb "
            "or people.max_upload_pixels (checked before decoding); 415: not a JPEG or PNG; 422: no face, "
            "or several. Nothing is stored on an error.",
            "parameters": [NAME],
            "requestBody": {
                "required": True,
                "content": {
                    t: {"schema": {"type": "string", "format": "binary"}} for t in ("image/jpeg", "image/png")
                },
            },
            "responses": {
                "201": _json(
                    {"type": "object", "properties": {"person": {"type": "string"}, "face": FACE_ROW}}
                ),
                **_errors(400, 404, 413, 415, 422, 503, *COMMON),
            },
        }
    },
    "/people/{name}/faces/{face}": {
        "delete": {
            "summary": "remove one enrolled face (or negative)",
            "parameters": [NAME, FACE],
            "responses": {**NO_CONTENT, **_errors(404, 503, *COMMON)},
        }
    },
    "/people/{name}/faces/{face}/crop.jpg": {
        "get": {
            "summary": "an enrolled face's picture",
            "parameters": [NAME, FACE],
            "responses": {"200": JPEG, **_errors(404, 503, *COMMON)},
        }
    },
    "/events/{id}/person": {
        "post": {
            "summary": "'this is <name>': enroll the event's snapshot (and set its identity); with "
            "negative true, 'not <name>': kept as a negative that vetoes them for faces like it",
            "parameters": [ID],
            "requestBody": NAME_BODY,
            "responses": {
                "201": _json({"type": "object"}),
                **_errors(400, 404, 415, 422, 503, *COMMON),
            },
        }
    },
    "/unknown": {
        "get": {
            "summary": "unknown people, grouped: clusters of unknown tracks, most sightings first",
            "responses": {
                "200": _json(
                    {"type": "object", "properties": {"clusters": {"type": "array", "items": CLUSTER}}}
                ),
                **_errors(404, 503, *COMMON),
            },
        }
    },
    "/unknown/{id}/name": {
        "post": {
            "summary": "name a cluster: enroll its tracks' descriptors under the name; the cluster goes",
            "parameters": [ID],
            "requestBody": NAME_BODY,
            "responses": {"201": _json({"type": "object"}), **_errors(400, 404, 415, 503, *COMMON)},
        }
    },
    "/unknown/{id}": {
        "delete": {
            "summary": "forget a cluster",
            "parameters": [ID],
            "responses": {**NO_CONTENT, **_errors(404, 503, *COMMON)},
        }
    },
}
