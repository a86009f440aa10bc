"""The face library's HTTP API (issue #33): enroll a photo, list, remove; bad uploads get a clear
4xx and nothing is stored; "this is" / "not this person" on an event; unknown clusters named."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from streamer.config import load_config
from streamer.history.db import EventStore, Record
from streamer.history.service import History
from streamer.metrics import Metrics
from streamer.people.faces import FaceFinder
from streamer.people.service import People
from streamer.web.keys import CONFIG, METRICS, PIPELINE
from streamer.web.people_api import add_people_routes


@pytest.fixture
async def api(tmp_path: Path, request, photo_pool):
    people_cfg = getattr(request, "param", {})
    overrides = {"demo": {"enabled": False}, "store": {"dir": str(tmp_path)}, "people": people_cfg}
    config = load_config(None, overrides, environ={})
    metrics = Metrics()
    history = History(config, metrics)
    conn = history.db.connect()
    history.db.migrate(conn)
    history.start()  # (the writer opens the store: the library is read once it is ready)
    people = People(config, metrics, history, photo_pool)  # (photos described by a worker)
    await people.start()
    app = web.Application()
    app[CONFIG], app[METRICS] = config, metrics
    app[PIPELINE] = SimpleNamespace(history=history, people=people)  # (no video pipeline needed)
    add_people_routes(app)
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    yield client, people, history, conn
    await client.close()
    people.close()
    await history.close()


def png_header(w: int, h: int) -> bytes:
    """A PNG that claims w x h pixels (its pixels never come: the size check must come first)."""
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + chunk + struct.pack(">I", zlib.crc32(chunk))


def got_descriptor(people: People) -> np.ndarray:
    return people.gallery._d[0]


def face_with(d: np.ndarray):
    from streamer.types import Box, Face, Label

    return Face(Box(0, 0, 99, 99, 1.0), (Label("gender", "male", 0.9),), identity=d)


async def faces_stored(client: TestClient) -> int:
    r = await client.get("/people")
    assert r.status == 200
    return sum(len(p["faces"]) + len(p["negatives"]) for p in (await r.json())["people"])


async def test_enroll_list_get_crop_and_remove(api, shared: Path) -> None:
    client, people, _, _ = api
    photo = (shared / "media" / "obama-720p.jpg").read_bytes()
    r = await client.post("/people/Obama/faces", data=photo, headers={"Content-Type": "image/jpeg"})
    assert r.status == 201, await r.text()
    fid = (await r.json())["face"]["id"]
    body = await (await client.get("/people")).json()
    (p,) = body["people"]
    assert p["name"] == "Obama" and [f["id"] for f in p["faces"]] == [fid]
    r = await client.get(p["faces"][0]["crop_url"])
    assert r.status == 200 and r.content_type == "image/jpeg"
    assert people.gallery.names == ["Obama"]
    for outcome in ("known", "unknown", "uncertain", "too_small"):  # (every series from the start)
        assert people.metrics.recognitions.labels(outcome)._value.get() == 0
    stage = SimpleNamespace(id="cam", stage=SimpleNamespace(people=None))
    people.attach(stage)
    assert stage.stage.people is not None
    assert stage.stage.people.label([face_with(got_descriptor(people))])[0].labels[-1].label == "Obama"
    assert people.metrics.recognitions.labels("known")._value.get() == 1
    assert (await client.delete(f"/people/Obama/faces/{fid}")).status == 204
    assert (await client.delete("/people/Obama")).status == 204
    assert (await client.delete("/people/Obama")).status == 404
    assert people.gallery.names == []


async def test_an_uploaded_photo_is_enrolled_as_the_mean_of_its_chip_and_its_mirror_image(
    api, shared: Path
) -> None:
    client, people, _, _ = api
    path = shared / "media" / "obama-720p.jpg"
    r = await client.post(
        "/people/Obama/faces", data=path.read_bytes(), headers={"Content-Type": "image/jpeg"}
    )
    assert r.status == 201, await r.text()
    im = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    finder = FaceFinder()  # (this process's own models: the service's are in the worker)
    (box,) = finder.boxes(im)
    backbone = finder._backbone
    chip = backbone.chips(im, [box])[0]
    live, mirror = backbone.features(np.stack([chip, chip[:, ::-1]]))["dlib_face_descriptor"]
    stored = got_descriptor(people)
    assert np.allclose(stored, (live + mirror) / 2, atol=1e-5)
    assert np.linalg.norm(stored - live) > 0.02  # (a live face of the photo is described by one pass)


async def test_bad_uploads_get_a_clear_4xx_and_nothing_is_stored(api, shared: Path) -> None:
    client, _, _, _ = api
    blank = cv2.imencode(".jpg", np.full((300, 300, 3), 128, np.uint8))[1].tobytes()
    cases = [
        (b"this is not an image at all", 415, "not a JPEG or PNG"),
        (png_header(60000, 60000), 413, "pixels"),
        (blank, 422, "no face"),
        ((shared / "media" / "two_people.jpg").read_bytes(), 422, "2 faces"),
        (b"", 400, "empty"),
    ]
    for data, status, said in cases:
        r = await client.post("/people/Alice/faces", data=data, headers={"Content-Type": "image/jpeg"})
        assert r.status == status, (said, await r.text())
        assert said in (await r.json())["error"]
    r = await client.post("/people/unknown/faces", data=blank, headers={"Content-Type": "image/jpeg"})
    assert r.status == 400  # (a reserved name)
    assert await faces_stored(client) == 0
    assert (await (await client.get("/people")).json())["people"] == []


async def test_this_is_and_not_this_person_on_an_event(api, shared: Path) -> None:
    client, people, history, conn = api
    im = cv2.imread(str(shared / "media" / "obama-480p.jpg"))
    face = cv2.imencode(".jpg", im[40:210, 360:530])[1].tobytes()  # an event's snapshot: the face crop
    EventStore(history.db).write(
        conn, [Record("cam", 1, 10.0, 12.0, 2.0, {}, face_jpeg=face, thumb_jpeg=face)]
    )
    (ev,) = EventStore(history.db).list(conn)[0]
    r = await client.post(f"/events/{ev['id']}/person", json={"name": "Obama"})
    assert r.status == 201, await r.text()
    assert EventStore(history.db).get(conn, ev["id"])["identity"] == "Obama"
    r = await client.post(f"/events/{ev['id']}/person", json={"name": "Biden", "negative": True})
    assert r.status == 201
    (biden,) = [p for p in (await (await client.get("/people")).json())["people"] if p["name"] == "Biden"]
    assert biden["faces"] == [] and len(biden["negatives"]) == 1
    assert people.gallery.names == ["Biden", "Obama"] or people.gallery.names == ["Obama"]
    assert (await client.post("/events/999/person", json={"name": "Obama"})).status == 404
    assert (await client.post(f"/events/{ev['id']}/person", json={"nom": 1})).status == 400


async def test_unknown_clusters_list_and_name_in_one_step(api) -> None:
    client, people, _, _ = api
    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 0.09, 128).astype(np.float32), rng.normal(0, 0.09, 128).astype(np.float32)
    for i in range(5):  # five tracks of one stranger, two of another
        people.clusters.add("cam", i, a + rng.normal(0, 0.01, 128).astype(np.float32), 3)
    for i in range(2):
        people.clusters.add("door", 10 + i, b + rng.normal(0, 0.01, 128).astype(np.float32), 3)
    people.clusters.add("door", 20, b, 1)  # (one look: not grouped)
    body = await (await client.get("/unknown")).json()
    assert [(c["name"], c["sightings"]) for c in body["clusters"]] == [("unknown 1", 5), ("unknown 2", 2)]
    r = await client.post("/unknown/1/name", json={"name": "Carol"})
    assert r.status == 201 and (await r.json())["enrolled"] == 5
    assert people.gallery.names == ["Carol"]
    assert [c["id"] for c in (await (await client.get("/unknown")).json())["clusters"]] == [2]
    assert (await client.delete("/unknown/2")).status == 204
    assert (await client.post("/unknown/2/name", json={"name": "Dan"})).status == 404


@pytest.mark.parametrize("api", [{"refresh_s": 0.2}], indirect=True)
async def test_changes_made_elsewhere_reach_the_running_service(api) -> None:
    """``streamer people`` or another front end writes the same store: the running service names
    the newly enrolled person, forgets the removed one and takes in the other's clusters."""
    import asyncio

    from streamer.people.clusters import Clusters
    from streamer.people.library import Library

    _, people, history, conn = api
    other_lib, other = Library(history.db), Clusters(history.db, 0.45)  # (another process, same store)
    other.load(conn)
    rng = np.random.default_rng(1)
    d, stranger = rng.normal(0, 0.09, 128).astype(np.float32), rng.normal(0, 0.09, 128).astype(np.float32)
    other_lib.add_faces(conn, "Erin", [(d, None)], "file")
    theirs = other.add("door", 1, stranger, 3)
    other.flush()
    for _ in range(50):
        await asyncio.sleep(0.1)
        if people.gallery.names == ["Erin"] and people.clusters.clusters:
            break
    assert people.gallery.names == ["Erin"]
    assert [c.id for c in people.clusters.clusters] == [c.id for c in other.clusters] and theirs < 0
    mine = people.clusters.add("cam", 2, stranger + 0.001, 3)  # (the same stranger: their cluster)
    assert mine == other.clusters[0].id > 0
    other_lib.remove_person(conn, "Erin")
    for _ in range(50):
        await asyncio.sleep(0.1)
        if not people.gallery.names:
            break
    assert people.gallery.names == []
    other.close()


async def test_only_the_configured_streams_recognise_and_privacy_applies_to_all(tmp_path: Path) -> None:
    overrides = {"store": {"dir": str(tmp_path)}, "people": {"streams": ["door"], "privacy": "blur_unknown"}}
    config = load_config(None, overrides, environ={})
    metrics = Metrics()
    people = People(config, metrics, History(config, metrics))
    door, hall = (SimpleNamespace(id=s, stage=SimpleNamespace(people=None)) for s in ("door", "hall"))
    people.attach(door)
    people.attach(hall)
    assert door.stage.people.recognise and not hall.stage.people.recognise
    assert hall.stage.people.privacy == "blur_unknown"
    # each recognising stream learns faces of its own (learned.py); the other learns none
    assert door.stage.people.learned is not None and hall.stage.people.learned is None
    assert door.stage.people.learned.distance == config.people.learn_distance
    door.stage.people.learned.on_learn()  # (what a learned face does: counted)
    assert metrics.registry.get_sample_value("streamer_faces_learned_total") == 1
    off = load_config(None, {"store": {"dir": str(tmp_path)}, "people": {"streams": ["door"]}}, environ={})
    quiet = SimpleNamespace(id="hall", stage=SimpleNamespace(people=None))
    People(off, Metrics(), History(off, Metrics())).attach(quiet)
    assert quiet.stage.people is None  # (neither recognition nor privacy: the stage is untouched)
