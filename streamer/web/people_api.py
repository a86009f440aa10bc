"""The face library over HTTP (issue #33): people, their faces, enrollment from a photo or an
event's snapshot, "not this person", the unknown clusters. Behind the API guard; a photo upload is
the raw JPEG or PNG body (``Content-Type: image/jpeg`` or ``image/png``), read up to
``people.max_upload_mb``. Nothing is stored unless the photo holds exactly one face.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import cv2
import numpy as np
from aiohttp import web

from streamer.history.db import EventStore
from streamer.people.clusters import listing
from streamer.people.faces import BadPhoto
from streamer.people.library import check_name, jpeg
from streamer.people.service import ModelsUnavailable
from streamer.web.keys import CONFIG, METRICS, PIPELINE

log = logging.getLogger(__name__)


def _error(request: web.Request, status: int, message: str, kind: str) -> web.Response:
    request.app[METRICS].errors.labels(kind).inc()
    return web.json_response({"error": message}, status=status)


def _people(request: web.Request):
    p = getattr(request.app[PIPELINE], "people", None)
    return p if p is not None and p.enabled else None


def _off(request: web.Request) -> web.Response:
    return _error(request, 404, "the face library is off (people.enabled, store.enabled)", "not_found")


def _unavailable(request: web.Request, e: Exception) -> web.Response:
    log.warning("face library: %s", f"{type(e).__name__}: {e}".splitlines()[0][:300])
    return _error(request, 503, "event store unavailable", "event_store_read")


def _no_models(request: web.Request, e: Exception) -> web.Response:
    log.warning("face library: %s", str(e)[:300])
    return _error(request, 503, f"{e}; nothing was stored, try again", "models_unavailable")


def _int(raw: str) -> int | None:
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) < 19 else None


def _name(request: web.Request, raw: str) -> str:
    return check_name(raw)


def _face_urls(name: str, person: dict[str, Any]) -> dict[str, Any]:
    from urllib.parse import quote

    for f in person["faces"] + person["negatives"]:
        f["crop_url"] = f"/people/{quote(name, safe='')}/faces/{f['id']}/crop.jpg"
    return person


async def list_people(request: web.Request) -> web.Response:
    people = _people(request)
    if people is None:
        return _off(request)
    try:
        rows = await people.history.read(lambda s, c: people.library.people(c))
    except Exception as e:
        return _unavailable(request, e)
    return web.json_response({"people": [_face_urls(p["name"], p) for p in rows]})


async def _body(request: web.Request, limit: int) -> bytes:
    data = bytearray()
    async for chunk in request.content.iter_chunked(65536):
        data += chunk
        if len(data) > limit:
            raise BadPhoto(f"the photo is over {limit // 1_000_000} MB", 413)
    return bytes(data)


async def add_face(request: web.Request) -> web.Response:
    people = _people(request)
    if people is None:
        return _off(request)
    try:
        name = _name(request, request.match_info["name"])
        data = await _body(request, int(request.app[CONFIG].people.max_upload_mb * 1_000_000))
        fid, got = await people.enroll_photo(name, data)
    except ValueError as e:  # (BadPhoto too)
        return _error(request, getattr(e, "status", 400), str(e), "bad_request")
    except ModelsUnavailable as e:
        return _no_models(request, e)
    except Exception as e:
        return _unavailable(request, e)
    b = got.box
    return web.json_response(
        {"person": name, "face": {"id": fid, "box": [b.left, b.top, b.right, b.bottom]}}, status=201
    )


async def delete_person(request: web.Request) -> web.Response:
    people = _people(request)
    if people is None:
        return _off(request)
    name = request.match_info["name"]
    try:
        gone = await people.history.read(lambda s, c: people.library.remove_person(c, name))
        await people.reload()
    except Exception as e:
        return _unavailable(request, e)
    return web.Response(status=204) if gone else _error(request, 404, "no such person", "not_found")


def _person_face(request: web.Request) -> tuple[Any, str, int] | web.Response:
    """The library, the person's name and the face id of ``/people/{name}/faces/{face}``, or the
    error answer (the library off: 404; a face id that is no number: 404)."""
    people = _people(request)
    if people is None:
        return _off(request)
    fid = _int(request.match_info["face"])
    if fid is None:
        return _error(request, 404, "no such face", "not_found")
    return people, request.match_info["name"], fid


async def delete_face(request: web.Request) -> web.Response:
    found = _person_face(request)
    if isinstance(found, web.Response):
        return found
    people, name, fid = found
    try:
        gone = await people.history.read(lambda s, c: people.library.remove_face(c, name, fid))
        await people.reload()
    except Exception as e:
        return _unavailable(request, e)
    return web.Response(status=204) if gone else _error(request, 404, "no such face", "not_found")


async def face_crop(request: web.Request) -> web.Response:
    found = _person_face(request)
    if isinstance(found, web.Response):
        return found
    people, name, fid = found
    try:
        data = await people.history.read(lambda s, c: people.library.crop(c, name, fid))
    except Exception as e:
        return _unavailable(request, e)
    if data is None:
        return _error(request, 404, "no picture of this face", "not_found")
    return web.Response(
        body=data, content_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"}
    )


async def _json(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError("the body must be a JSON object") from e
    if not isinstance(body, dict) or not isinstance(body.get("name"), str):
        raise ValueError('the body must be {"name": "..."}')
    return body


async def event_person(request: web.Request) -> web.Response:
    """ "This is Alice" (the event's snapshot enrolled) or, with ``"negative": true``, "not Alice"."""
    people = _people(request)
    eid = _int(request.match_info["id"])
    if people is None:
        return _off(request)
    if eid is None:
        return _error(request, 404, "no such event", "not_found")
    try:
        body = await _json(request)
        name = check_name(body["name"])
        negative = bool(body.get("negative", False))
    except ValueError as e:
        return _error(request, 400, str(e), "bad_request")
    try:
        data = await people.history.read(EventStore.snapshot, eid, "face")
    except Exception as e:
        return _unavailable(request, e)
    if data is None:
        return _error(request, 404, "no such event, or it has no snapshot", "not_found")
    try:
        got = await people.describe(_enlarged(data))
    except BadPhoto as e:
        return _error(request, e.status, f"event snapshot: {e}", "bad_request")
    except ModelsUnavailable as e:
        return _no_models(request, e)
    source = "event_negative" if negative else "event"
    try:
        fid = (await people.enroll(name, [(got.descriptor, data)], source, eid, negative))[0]
        if not negative:
            db = people.history.db
            await people.history.read(
                lambda s, c: db.execute(c, "UPDATE events SET identity = ? WHERE id = ?", (name, eid))
            )
    except Exception as e:
        return _unavailable(request, e)
    return web.json_response({"person": name, "face": {"id": fid}, "negative": negative}, status=201)


def _enlarged(data: bytes) -> bytes:
    """A snapshot crop (160 px at most) scaled up to about 320 px: the detector's smallest face
    is ~40 px, a distant face's crop would hold none at its own size."""
    im = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if im is None or max(im.shape[:2]) >= 320:
        return data
    k = 320 / max(im.shape[:2])
    im = cv2.resize(im, (round(im.shape[1] * k), round(im.shape[0] * k)), interpolation=cv2.INTER_CUBIC)
    return jpeg(cv2.cvtColor(im, cv2.COLOR_BGR2RGB), 95) or data


async def list_unknown(request: web.Request) -> web.Response:
    people = _people(request)
    if people is None:
        return _off(request)
    try:
        await asyncio.to_thread(people.clusters.flush)
        rows = await people.history.read(lambda s, c: listing(people.history.db, c))
    except Exception as e:
        return _unavailable(request, e)
    for r in rows:
        r["snapshot_url"] = f"/events/{r['event_id']}/snapshot.jpg" if r["event_id"] else None
    return web.json_response({"clusters": rows})


async def name_unknown(request: web.Request) -> web.Response:
    people = _people(request)
    cid = _int(request.match_info["id"])
    if people is None:
        return _off(request)
    try:
        name = check_name((await _json(request))["name"])
    except ValueError as e:
        return _error(request, 400, str(e), "bad_request")
    try:
        n = await people.name_cluster(cid, name) if cid is not None else 0
    except Exception as e:
        return _unavailable(request, e)
    if not n:
        return _error(request, 404, "no such cluster", "not_found")
    return web.json_response({"person": name, "enrolled": n}, status=201)


async def delete_unknown(request: web.Request) -> web.Response:
    people = _people(request)
    cid = _int(request.match_info["id"])
    if people is None:
        return _off(request)
    try:
        gone = await people.drop_cluster(cid) if cid is not None else False
    except Exception as e:
        return _unavailable(request, e)
    return web.Response(status=204) if gone else _error(request, 404, "no such cluster", "not_found")


def add_people_routes(app: web.Application) -> None:
    app.router.add_get("/people", list_people)
    app.router.add_delete("/people/{name}", delete_person)
    app.router.add_post("/people/{name}/faces", add_face)
    app.router.add_delete("/people/{name}/faces/{face}", delete_face)
    app.router.add_get("/people/{name}/faces/{face}/crop.jpg", face_crop)
    app.router.add_post("/events/{id}/person", event_person)
    app.router.add_get("/unknown", list_unknown)
    app.router.add_post("/unknown/{id}/name", name_unknown)
    app.router.add_delete("/unknown/{id}", delete_unknown)
