"""Tracking end to end: annotate's track ids on a clip, track events over SSE with their metrics,
the engine leaving settled tracks' faces unclassified."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import aiortc  # noqa: F401  (before TensorFlow, which the camera fixture loads: pylibsrtp segfaults otherwise)
import cv2
import numpy as np
import pytest

from streamer.track.matching import iou_matrix
from streamer.types import Box
from tests.conftest import CLIP, metric, wait_for
from tests.support.tracking import moving_camera, xyxy


@pytest.fixture(scope="module")
def camera(shared: Path):
    """The moving camera over real faces (tests/support/tracking.py)."""
    return moving_camera(shared)


@pytest.mark.slow
def test_annotate_every_nth_frame_writes_track_ids_that_stay_on_the_faces(camera, tmp_path: Path) -> None:
    _, _, path, images, people = camera
    clip = tmp_path / "moving.avi"
    w = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 30, path.size)
    for im in images:
        w.write(cv2.cvtColor(im, cv2.COLOR_RGB2BGR))
    w.release()
    out, jsonl = tmp_path / "out.avi", tmp_path / "faces.jsonl"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "streamer",
            "annotate",
            str(clip),
            "--output",
            str(out),
            "--detections",
            str(jsonl),
            "--every",
            "6",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    lines = [json.loads(x) for x in jsonl.read_text().splitlines()]
    assert len(lines) == len(images) and [x["frame"] for x in lines] == list(range(len(images)))
    found = total = 0
    ids: dict[int, set[int]] = {}
    for n, line in enumerate(lines):
        got = [(f["left"], f["top"], f["right"], f["bottom"]) for f in line["faces"]]
        assert all(isinstance(f["track"], int) for f in line["faces"])
        m = iou_matrix([xyxy(b) for _, b in people[n]], got)
        for i, (k, _) in enumerate(people[n]):
            total += 1
            if len(got) and m[i].max() >= 0.5:
                found += 1
                ids.setdefault(k, set()).add(line["faces"][int(np.argmax(m[i]))]["track"])
    assert found / total >= 0.9, f"recall vs the true boxes {found / total:.3f}"
    assert sum(len(v) for v in ids.values()) / len(ids) <= 1.2


@pytest.mark.slow
async def test_track_events_arrive_over_sse_and_metrics_carry_the_stream(make_app) -> None:
    client = await make_app(sources=[{"id": "clip", "file": str(CLIP), "loop": True}])
    app = client.server.app
    resp = await client.get("/streams/clip/events")
    assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/event-stream")
    kind = data = None
    async with asyncio.timeout(90):
        while True:
            line = (await resp.content.readline()).decode()
            if line.startswith("event: "):
                kind = line[7:].strip()
            elif line.startswith("data: "):
                data = json.loads(line[6:])
                break
    resp.close()
    assert kind == "start" and data["stream"] == "clip" and isinstance(data["track"], int)
    assert set(data) >= {"time", "box", "labels"}
    await wait_for(lambda: metric(app, "streamer_tracks_total", stream="clip") >= 1, 30, "a track counted")
    assert metric(app, "streamer_stage_seconds_count", stage="track") > 0
    listed = await (await client.get("/streams")).json()
    (s,) = [x for x in listed["streams"] if x["id"] == "clip"]
    assert "tracks" in s
    assert (await client.get("/streams/nope/events")).status == 404


@pytest.mark.slow
def test_engine_leaves_faces_of_settled_tracks_unclassified(shared: Path, tiny_classifier: Path) -> None:
    from streamer.config import ClassifierConfig
    from streamer.inference.engine import Engine, EngineSpec

    engine = Engine(EngineSpec(classifiers=(ClassifierConfig(name="gender", model=str(tiny_classifier)),)))
    rgb = cv2.cvtColor(cv2.imread(str(shared / "media" / "two_people.jpg")), cv2.COLOR_BGR2RGB)
    (full,), t_full = engine.run([rgb])
    assert len(full.faces) == 2 and all(f.labels for f in full.faces)
    assert t_full.classifier_batches["gender"] == 2
    settled = full.faces[0].box
    nudged = Box(settled.left + 3, settled.top - 2, settled.right + 3, settled.bottom - 2, 1.0)  # predicted
    (part,), t_part = engine.run([rgb], [(nudged,)])
    assert [bool(f.labels) for f in part.faces] == [False, True]
    assert [f.box for f in part.faces] == [f.box for f in full.faces]  # the boxes are all still there
    assert t_part.classifier_batches["gender"] == 1
    (none,), t_none = engine.run([rgb], [tuple(f.box for f in full.faces)])
    assert not any(f.labels for f in none.faces) and "gender" not in t_none.classifier_batches
