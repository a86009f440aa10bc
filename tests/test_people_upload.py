"""An uploaded photo is described by the model stage (a worker process), not by the web process:
the same faces and descriptors as ``FaceFinder`` (``streamer people add``) on the same photo, the
mirrored mean, the second look at upsample 1, and a worker that dies on a photo costs that upload a
503, not the service (issue #33)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from streamer.config import load_config
from streamer.history.service import History
from streamer.inference.engine import scale_for_detection
from streamer.inference.triton_client import TritonPool
from streamer.metrics import Metrics
from streamer.people.faces import ENROL_MIRRORED, FaceFinder
from streamer.people.service import People
from streamer.web.keys import CONFIG, METRICS, PIPELINE
from streamer.web.people_api import add_people_routes
from tests.conftest import free_port
from tests.support.photo_pool import die


@pytest.fixture(scope="module")
def finder() -> FaceFinder:
    return FaceFinder()  # (the default config's detector, detect_max_side and upsample)


def rgb(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def small_face(shared: Path) -> np.ndarray:
    """The 720p photo in the corner of a 2560x1440 one: at the detection size (640) its face is
    ~40 px, which MMOD finds only upsampled."""
    canvas = np.zeros((1440, 2560, 3), np.uint8)
    canvas[:720, :1280] = rgb(shared / "media" / "obama-720p.jpg")
    return canvas


@pytest.mark.parametrize("photo", ["obama-720p", "small face"])
async def test_the_pool_describes_a_photo_as_the_face_finder_does(
    photo_pool, finder: FaceFinder, shared: Path, photo: str
) -> None:
    image = small_face(shared) if photo == "small face" else rgb(shared / "media" / f"{photo}.jpg")
    if photo == "small face":  # (the photo this case is about: nothing at upsample 0)
        finder.boxes(image)
        assert finder._detector.detect([scale_for_detection(image, 640)[0]], 0) == [[]]
    (face,) = await photo_pool.describe_photo(image, ENROL_MIRRORED)
    want = finder.one_face(image, mirrored=ENROL_MIRRORED)
    assert face.box == want.box
    assert face.descriptor.shape == (128,) and face.descriptor.dtype == np.float32
    assert np.abs(face.descriptor - want.descriptor).max() < 1e-5
    backbone = finder._backbone  # the mirrored mean, computed here from the chip
    assert face.chip.shape == (150, 150, 3) and np.array_equal(
        face.chip, backbone.chips(image, [want.box])[0]
    )
    live, mirror = backbone.features(np.stack([face.chip, face.chip[:, ::-1]]))["dlib_face_descriptor"]
    assert np.abs(face.descriptor - (live + mirror) / 2).max() < 1e-5
    assert np.linalg.norm(face.descriptor - live) > 0.02
    (plain,) = await photo_pool.describe_photo(image, mirrored=False)
    assert np.abs(plain.descriptor - live).max() < 1e-5


async def test_every_face_of_a_photo_and_none_of_a_blank_one(
    photo_pool, finder: FaceFinder, shared: Path
) -> None:
    image = rgb(shared / "media" / "two_people.jpg")
    faces = await photo_pool.describe_photo(image, ENROL_MIRRORED)
    assert [f.box for f in faces] == finder.boxes(image) and len(faces) == 2
    # an upload wants one face: with two found, neither is aligned nor described (the worker's
    # time goes to the streams), their boxes say why the photo is turned down
    crowd = await photo_pool.describe_photo(image, ENROL_MIRRORED, most=1)
    assert [f.box for f in crowd] == [f.box for f in faces]
    assert all(f.chip is None and f.descriptor is None for f in crowd)
    assert len(await photo_pool.describe_photo(image, ENROL_MIRRORED, most=2)) == 2
    assert await photo_pool.describe_photo(np.full((300, 300, 3), 128, np.uint8), ENROL_MIRRORED) == []


async def library_app(tmp_path: Path, models) -> tuple[TestClient, People, History]:
    config = load_config(None, {"demo": {"enabled": False}, "store": {"dir": str(tmp_path)}}, environ={})
    metrics = Metrics()
    history = History(config, metrics)
    history.db.migrate(history.db.connect())
    history.start()
    people = People(config, metrics, history, models)
    await people.start()
    app = web.Application()
    app[CONFIG], app[METRICS] = config, metrics
    app[PIPELINE] = SimpleNamespace(history=history, people=people)
    add_people_routes(app)
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    return client, people, history


async def test_a_worker_dying_on_an_upload_answers_503_and_the_service_goes_on(
    tmp_path: Path, photo_pool, shared: Path
) -> None:
    client, people, history = await library_app(tmp_path, photo_pool)
    photo = (shared / "media" / "obama-720p.jpg").read_bytes()
    restarts = photo_pool.restarts
    try:
        photo_pool._photo_call = die
        r = await client.post("/people/Obama/faces", data=photo, headers={"Content-Type": "image/jpeg"})
        assert r.status == 503, await r.text()
        assert "died" in (await r.json())["error"]
        del photo_pool._photo_call
        assert photo_pool.restarts == restarts + 1
        assert (await (await client.get("/people")).json())["people"] == []  # nothing stored
        r = await client.post("/people/Obama/faces", data=photo, headers={"Content-Type": "image/jpeg"})
        assert r.status == 201, await r.text()  # the restarted worker describes the next one
    finally:
        photo_pool.__dict__.pop("_photo_call", None)
        await client.close()
        people.close()
        await history.close()


async def test_no_model_server_answering_an_upload_is_a_503_that_names_none(
    tmp_path: Path, shared: Path
) -> None:
    dead = f"127.0.0.1:{free_port()}"  # (a Triton front end whose model servers are all down)
    pool = TritonPool([dead], Metrics(), 640, 0.5)
    client, people, history = await library_app(tmp_path, pool)
    try:
        photo = (shared / "media" / "obama-720p.jpg").read_bytes()
        r = await client.post("/people/Obama/faces", data=photo, headers={"Content-Type": "image/jpeg"})
        assert r.status == 503, await r.text()
        error = (await r.json())["error"]
        assert "could not describe the photo" in error and dead not in error
        assert (await (await client.get("/people")).json())["people"] == []
    finally:
        await client.close()
        people.close()
        await history.close()
        await pool.close()
