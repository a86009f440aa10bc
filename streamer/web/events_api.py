"""The event history over HTTP: list (newest first, by cursor), one event, its snapshot and
thumbnail, delete, and counts per label per hour. Behind the same guard as the rest of the API
(routes.guard_middleware: Host, token, cross-site checks). Reads run in the history's reader
threads, never on the event loop.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timezone
from typing import Any

from aiohttp import web

from streamer.history.db import BadCursor, EventStore
from streamer.web.keys import METRICS, PIPELINE

log = logging.getLogger(__name__)
MAX_LIMIT = 500
DEFAULT_LIMIT = 50
MAX_TEXT = 200
MAX_TIME = 95_617_584_000.0  # 5000-01-01


def _error(request: web.Request, status: int, message: str, kind: str) -> web.Response:
    request.app[METRICS].errors.labels(kind).inc()
    return web.json_response({"error": message}, status=status)


class BadQuery(ValueError):
    pass


def _time(q: Any, key: str) -> float | None:
    """Seconds since the epoch, given as a number or an ISO 8601 time (naive: UTC)."""
    raw = q.get(key)
    if raw is None or raw == "":
        return None
    bad = BadQuery(f"'{key}' must be seconds since the epoch or an ISO 8601 time (years 1970-5000)")
    try:
        v = float(raw)
    except ValueError:
        try:
            t = datetime.fromisoformat(raw.replace("Z", "+00:00"))
            v = (t if t.tzinfo is not None else t.replace(tzinfo=timezone.utc)).timestamp()
        except (ValueError, TypeError, OverflowError) as e:
            raise bad from e
    if not 0 <= v <= MAX_TIME:  # (also NaN and infinities)
        raise bad
    return v


def _text(q: Any, key: str) -> str | None:
    v = q.get(key)
    if v is None or v == "":
        return None
    if len(v) > MAX_TEXT:
        raise BadQuery(f"'{key}' is too long")
    return v


def _history(request: web.Request):
    h = request.app[PIPELINE].history
    return h if h.enabled else None


async def _read(request: web.Request, fn, *args: Any, **kwargs: Any) -> Any:
    return await request.app[PIPELINE].history.read(fn, *args, **kwargs)


def _links(row: dict[str, Any]) -> dict[str, Any]:
    if row.get("snapshot"):
        row["snapshot_url"] = f"/events/{row['id']}/snapshot.jpg"
        row["thumbnail_url"] = f"/events/{row['id']}/thumbnail.jpg"
    return row


def _unavailable(request: web.Request, e: Exception) -> web.Response:
    log.warning("event store read failed: %s", f"{type(e).__name__}: {e}".splitlines()[0][:300])
    return _error(request, 503, "event store unavailable", "event_store_read")


async def list_events(request: web.Request) -> web.Response:
    if _history(request) is None:
        return _error(request, 404, "the event store is off (store.enabled)", "not_found")
    q = request.query
    try:
        raw_limit = q.get("limit", str(DEFAULT_LIMIT))
        if not (raw_limit.isascii() and raw_limit.isdigit()) or not 1 <= int(raw_limit) <= MAX_LIMIT:
            raise BadQuery(f"'limit' must be 1 to {MAX_LIMIT}")
        args = {
            "stream": _text(q, "stream"),
            "label": _text(q, "label"),
            "person": _text(q, "person"),
            "since": _time(q, "since"),
            "until": _time(q, "until"),
            "limit": int(raw_limit),
            "cursor": _text(q, "cursor"),
        }
    except BadQuery as e:
        return _error(request, 400, str(e), "bad_request")
    try:
        rows, nxt = await _read(request, EventStore.list, **args)
    except BadCursor as e:
        return _error(request, 400, str(e), "bad_request")
    except Exception as e:
        return _unavailable(request, e)
    return web.json_response({"events": [_links(r) for r in rows], "next": nxt})


def _id(request: web.Request) -> int | None:
    raw = request.match_info["id"]
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) < 19 else None


async def get_event(request: web.Request) -> web.Response:
    eid = _id(request)
    if _history(request) is None or eid is None:
        return _error(request, 404, "no such event", "not_found")
    try:
        row = await _read(request, EventStore.get, eid)
    except Exception as e:
        return _unavailable(request, e)
    if row is None:
        return _error(request, 404, "no such event", "not_found")
    return web.json_response(_links(row))


async def _image(request: web.Request, which: str) -> web.Response:
    eid = _id(request)
    if _history(request) is None or eid is None:
        return _error(request, 404, "no such event", "not_found")
    try:
        data = await _read(request, EventStore.snapshot, eid, which)
    except Exception as e:
        return _unavailable(request, e)
    if data is None:
        return _error(request, 404, "no snapshot for this event", "not_found")
    return web.Response(
        body=data, content_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"}
    )


async def snapshot(request: web.Request) -> web.Response:
    return await _image(request, "face")


async def thumbnail(request: web.Request) -> web.Response:
    return await _image(request, "thumb")


async def delete_event(request: web.Request) -> web.Response:
    eid = _id(request)
    if _history(request) is None or eid is None:
        return _error(request, 404, "no such event", "not_found")
    try:
        gone = await _read(request, EventStore.delete, eid)
    except Exception as e:
        return _unavailable(request, e)
    if not gone:
        return _error(request, 404, "no such event", "not_found")
    return web.Response(status=204)


async def counts(request: web.Request) -> web.Response:
    if _history(request) is None:
        return _error(request, 404, "the event store is off (store.enabled)", "not_found")
    q = request.query
    try:
        stream = _text(q, "stream")
        until = _time(q, "until")
        since = _time(q, "since")
    except BadQuery as e:
        return _error(request, 400, str(e), "bad_request")
    if since is None:
        since = (until if until is not None else time.time()) - 86400.0
    try:
        hours = await _read(request, EventStore.counts, stream, since, until)
    except Exception as e:
        return _unavailable(request, e)
    return web.json_response({"stream": stream, "since": since, "until": until, "hours": hours})


def add_event_routes(app: web.Application) -> None:
    app.router.add_get("/events", list_events)
    app.router.add_get("/events/counts", counts)
    app.router.add_get("/events/{id}", get_event)
    app.router.add_delete("/events/{id}", delete_event)
    app.router.add_get("/events/{id}/snapshot.jpg", snapshot)
    app.router.add_get("/events/{id}/thumbnail.jpg", thumbnail)
