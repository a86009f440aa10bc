"""The event history in the running service, on the bundled demo clip: every track that ends lands
in the store with its best look, a snapshot in which the detector finds a face; the HTTP API
reads it back; a broken store leaves the video flowing; SIGTERM writes what was queued."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from streamer.config import DEMO_VIDEO
from streamer.history.db import EventStore
from streamer.history.schema import DB_FILE, Database
from streamer.web.keys import PIPELINE
from tests.conftest import ROOT, free_port, metric, wait_for

pytestmark = pytest.mark.slow
TOKEN = "events-test-token-0123456789"


def _decode(jpeg: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None, "not a JPEG"
    return image[:, :, ::-1]


@pytest.mark.timeout(900)  # (the waits below bound a hang; a loaded machine needs minutes for them)
async def test_demo_clip_tracks_land_with_face_snapshots_and_the_api_reads_them(
    make_app, tiny_classifier: Path, tmp_path: Path
) -> None:
    client = await make_app(
        server={"api_token": TOKEN},
        sources=[{"id": "demo", "file": str(DEMO_VIDEO), "loop": True, "realtime": True}],
        classifiers=[{"name": "gender", "model": str(tiny_classifier), "threshold": 0.0}],
        store={"dir": str(tmp_path / "store")},
    )
    app = client.server.app
    pipeline = app[PIPELINE]
    stream = pipeline.streams["demo"]
    auth = {"Authorization": f"Bearer {TOKEN}"}
    # (the clip loops until a track has been detected 5 times: a loaded machine may detect none in
    # one play, its detector's worker, below the service's priority, taking minutes to load; a
    # track stopped after one or two looks may hold only a turned face's snapshot, which is a face
    # MMOD does not find again below)
    await wait_for(
        lambda: (
            metric(app, "streamer_tracks_total", stream="demo") >= 1
            and any(tr.hits >= 5 for tr in stream.stage.tracker.tracks)
        ),
        360,
        "a track detected 5 times",
    )
    await stream.stop()  # its open tracks end and are queued for the store before its task is done
    assert stream.task is not None and stream.task.done()
    writer = pipeline.history.writer
    # the writer may hold records taken off the queue but not written yet: closing it writes them,
    # so the counts below are final
    await asyncio.to_thread(writer.close)
    assert writer.written >= 1
    assert writer.q.qsize() == 0 and writer.dropped == 0 and not writer.failing

    assert (await client.get("/events")).status == 401  # the API's guard covers the history
    r = await client.get("/events?stream=demo&limit=500", headers=auth)
    assert r.status == 200
    body = await r.json()
    events = body["events"]
    assert body["next"] is None and len(events) == writer.written
    assert metric(app, "streamer_events_written_total") == len(events)
    for e in events:
        assert e["stream"] == "demo" and e["duration_s"] >= 0 and e["ended_at"] >= e["started_at"]
        assert e["looks"] >= 1 and set(e["labels"]) == {"gender"} and e["identity"] is None
    assert [e["started_at"] for e in events] == sorted((e["started_at"] for e in events), reverse=True)

    # the longest track's snapshot is a face the detector finds again (upsampled: it is small)
    from streamer.detect import make_detector

    longest = max((e for e in events if e["snapshot"]), key=lambda e: e["duration_s"])
    r = await client.get(longest["snapshot_url"], headers=auth)
    assert r.status == 200 and r.content_type == "image/jpeg"
    face = _decode(await r.read())
    assert max(face.shape[:2]) <= pipeline.config.store.face_max_side
    (boxes,) = make_detector("mmod").detect([face], 1)
    assert boxes, "no face found in the snapshot"
    b = max(boxes, key=lambda b: b.width * b.height)
    assert b.width * b.height > 0.15 * face.shape[0] * face.shape[1]  # the face fills the crop
    r = await client.get(longest["thumbnail_url"], headers=auth)
    thumb = _decode(await r.read())
    assert thumb.shape[1] == pipeline.config.store.thumb_width

    one = await (await client.get(f"/events/{longest['id']}", headers=auth)).json()
    assert one["id"] == longest["id"] and one["box"] is not None
    counts = await (await client.get("/events/counts?stream=demo", headers=auth)).json()
    assert sum(h["tracks"] for h in counts["hours"]) == len(events)
    assert sum(sum(h["labels"].values()) for h in counts["hours"]) == len(events)  # one gender label each

    for bad in ("limit=0", "limit=x", "since=yesterday", "cursor=zz"):
        r = await client.get(f"/events?{bad}", headers=auth)
        assert r.status == 400 and (await r.json())["error"], bad
    r = await client.get("/events?label=nobody-has-this", headers=auth)
    assert (await r.json())["events"] == []
    r = await client.delete(f"/events/{longest['id']}", headers=auth)
    assert r.status == 204
    for path in (f"/events/{longest['id']}", longest["snapshot_url"], "/events/999999", "/events/abc"):
        assert (await client.get(path, headers=auth)).status == 404, path
    assert (await client.delete(f"/events/{longest['id']}", headers=auth)).status == 404


async def test_a_broken_store_leaves_the_video_flowing_and_counts_errors(make_app, tmp_path: Path) -> None:
    store = tmp_path / "broken"
    store.mkdir()
    (store / DB_FILE).write_bytes(b"garbage, not SQLite " * 500)  # a corrupt database file
    client = await make_app(
        sources=[{"id": "clip", "file": str(DEMO_VIDEO), "loop": True, "realtime": True}],
        store={"dir": str(store), "queue": 3},
    )
    app = client.server.app
    pipeline = app[PIPELINE]
    stream = pipeline.streams["clip"]
    await wait_for(lambda: metric(app, "streamer_event_store_errors_total") >= 1, 60, "a store error")
    # the face library stops waiting for the store once it has failed (not for 30 s: a thread
    # waiting that long also held up the service's shutdown)
    loading = pipeline.people._loading
    await wait_for(lambda: loading is not None and loading.done(), 10, "the face library's first read")
    # the clip (275 frames) loops: tracks end at each loop's cut and again; frames go out meanwhile
    await wait_for(
        lambda: metric(app, "streamer_frames_out_total", stream="clip") >= 400, 120, "frames out past a loop"
    )
    assert not stream.task.done() and pipeline.history.writer.failing
    r = await client.get("/events")
    assert r.status == 503 and (await r.json())["error"] == "event store unavailable"
    health = await client.get("/healthz")  # the service is up; its store is not
    assert health.status == 200 and (await health.json())["store"] == "failing"


def test_sigterm_writes_the_tracks_it_ends(tmp_path: Path) -> None:
    """`streamer serve`, stopped by SIGTERM mid-clip: the open tracks end and are written."""
    port = free_port()
    store = tmp_path / "store"
    cfg = tmp_path / "config.toml"
    cfg.write_text(
        f'[server]\nport = {port}\n[demo]\nenabled = true\n[store]\ndir = "{store}"\n'
        "retention_interval_s = 3600\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamer", "serve", "--config", str(cfg)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        import json
        import urllib.request

        deadline = time.monotonic() + 180  # (bounds a hang: a loaded machine starts it slowly)
        while True:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            assert time.monotonic() < deadline, "no face shown in time"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/streams", timeout=5) as r:
                    streams = json.load(r)["streams"]
                if streams and streams[0]["tracks"]:
                    break
            except OSError:
                pass
            time.sleep(0.3)
        open_tracks = {t["track"] for t in streams[0]["tracks"]}
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, out[-3000:]
    db = Database("", store)
    rows, _ = EventStore(db).list(db.connect(), stream="demo", limit=500)
    assert open_tracks <= {r["track"] for r in rows}, (open_tracks, rows)
    assert "records not written" not in out


@pytest.mark.slow
def test_annotate_keeps_no_history_unless_asked(tmp_path: Path) -> None:
    """`streamer annotate --realtime` runs the live pipeline, store included, but a run over a file
    adds nothing to the default store (./data) unless ``--history`` says so. The run with history
    plays the whole clip (9 s): a busy machine's detector answers a few times in 3 s, too few to
    confirm a track."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    clip = str(DEMO_VIDEO)
    for history in (False, True):
        cwd = tmp_path / ("kept" if history else "plain")
        cwd.mkdir()
        cmd = [sys.executable, "-m", "streamer", "annotate", clip, "--output", "out.avi", "--realtime"]
        cmd += ["--history"] if history else ["--max-frames", "60"]
        r = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr[-3000:]
        assert (cwd / "out.avi").stat().st_size > 0
        store = cwd / "data"
        assert (store / DB_FILE).exists() == history, sorted(p.name for p in cwd.iterdir())
        if history:  # the clip's tracks, ended when the run stops, are written
            db = Database("", store)
            rows, _ = EventStore(db).list(db.connect(), stream="file0", limit=500)
            assert rows and all(r["stream"] == "file0" for r in rows)
