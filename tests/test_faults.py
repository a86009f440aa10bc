"""Faults the service must survive, each with a real component: a real RTSP camera that stalls,
changes resolution or sends corrupted bytes; a worker process killed; a model that raises; a
browser peer that vanishes; out-of-memory batches."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import cv2
import pytest

from streamer.inference.oom import is_out_of_memory, split_on_oom
from streamer.web.keys import PIPELINE
from tests.conftest import CLIP, ROOT, RtspServer, metric, wait_for
from tests.support.media import encode_clip, read_frames
from tests.support.proxy import CorruptingProxy

FAST = {"reconnect_initial_s": 0.3, "reconnect_max_s": 1.0, "read_timeout_s": 2.0, "open_timeout_s": 3.0}


@pytest.mark.slow
@pytest.mark.system
async def test_rtsp_camera_stalls_then_returns_with_another_resolution(
    make_app,
    rtsp_server: RtspServer,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # (deadlines here only bound a hang: a loaded machine is slow to start, decode and notice)
    client = await make_app(sources=[{"id": "cam", "url": rtsp_server.url}], source_defaults=FAST)
    app = client.server.app
    src = app[PIPELINE].streams["cam"].source
    await wait_for(lambda: src.state.up and src.state.frames > 10, 120, "the camera")
    assert (src.state.width, src.state.height) == (640, 360)

    assert rtsp_server.proc is not None
    logged = len(caplog.records)
    os.kill(rtsp_server.proc.pid, signal.SIGSTOP)  # connection stays open, no data flows
    try:
        await wait_for(lambda: not src.state.up, 60, "the stall to be noticed (read timeout)")
        # the state's error says so until the next try to open fails (seconds later: a slow test
        # may look after that); the log keeps what was noticed
        said = [r.getMessage() for r in caplog.records[logged:] if r.getMessage().startswith("source cam ")]
        assert said and "timed out" in said[0], said
    finally:
        os.kill(rtsp_server.proc.pid, signal.SIGCONT)
    await wait_for(lambda: src.state.up, 120, "the camera after the stall")

    # the camera restarts with another resolution on the same address
    small = [cv2.resize(f, (320, 180)) for f in read_frames(CLIP, 120)]
    rtsp_server.stop()
    rtsp_server.clip = encode_clip(small * 4, tmp_path / "small.mp4")
    rtsp_server.start()
    await wait_for(lambda: src.state.up and src.state.width == 320, 120, "the camera at its new resolution")
    frames = metric(app, "streamer_frames_in_total", stream="cam")
    await wait_for(
        lambda: metric(app, "streamer_frames_in_total", stream="cam") > frames + 20, 60, "new frames"
    )
    hub = app[PIPELINE].streams["cam"].hub
    await wait_for(  # (frames in come before frames out: the output follows when it can)
        lambda: hub.latest is not None and hub.latest.image.shape == (180, 320, 3),
        60,
        "output frames at 320x180",
    )
    assert metric(app, "streamer_source_reconnects_total", stream="cam") >= 2


@pytest.mark.slow
@pytest.mark.system
async def test_rtsp_corrupted_bytes_are_survived(make_app, rtsp_server: RtspServer) -> None:
    proxy = CorruptingProxy(rtsp_server.port)
    await proxy.start()
    try:
        client = await make_app(
            sources=[
                {"id": "cam", "url": f"rtsp://127.0.0.1:{proxy.port}/cam"},
                {"id": "other", "file": str(CLIP), "loop": True},
            ],
            source_defaults=FAST,
        )
        app = client.server.app
        src = app[PIPELINE].streams["cam"].source
        await wait_for(lambda: src.state.up and src.state.frames > 10, 30, "the camera through the proxy")
        other = metric(app, "streamer_frames_out_total", stream="other")
        proxy.corrupt_for(3.0)
        await asyncio.sleep(3.5)
        assert proxy.flipped > 100
        # afterwards the camera delivers again (it may have reconnected on the way)
        frames = metric(app, "streamer_frames_in_total", stream="cam")
        await wait_for(
            lambda: metric(app, "streamer_frames_in_total", stream="cam") > frames + 30,
            30,
            "clean frames after the corruption",
        )
        assert src.state.up
        await wait_for(  # the other stream went on all the while
            lambda: metric(app, "streamer_frames_out_total", stream="other") > other + 60,
            10,
            "frames of the other stream",
        )
        assert (await client.get("/healthz")).status == 200
    finally:
        await proxy.close()


@pytest.mark.slow
async def test_killed_worker_is_restarted_and_streams_keep_flowing(make_app) -> None:
    client = await make_app(
        sources=[{"id": "a", "file": str(CLIP), "loop": True}, {"id": "b", "file": str(CLIP), "loop": True}]
    )
    app = client.server.app
    pipeline = app[PIPELINE]
    await wait_for(lambda: all(pipeline.streams[s].detections is not None for s in "ab"), 60, "detections")
    (pid,) = pipeline.pool.worker_pids()
    # the worker runs below the service's CPU priority (pipeline.worker_nice, default 10)
    expected_nice = min(19, os.getpriority(os.PRIO_PROCESS, 0) + 10)
    assert os.getpriority(os.PRIO_PROCESS, pid) == expected_nice
    os.kill(pid, signal.SIGKILL)
    before = {s: metric(app, "streamer_detections_total", stream=s) for s in "ab"}
    out_before = metric(app, "streamer_frames_out_total", stream="a")
    await wait_for(lambda: pipeline.pool.restarts == 1, 30, "the worker restart")
    await wait_for(
        lambda: all(metric(app, "streamer_detections_total", stream=s) > before[s] for s in "ab"),
        60,
        "detections from the new worker",
    )
    assert pipeline.pool.worker_pids() and pipeline.pool.worker_pids() != [pid]
    # (this failed once in a full CI run, 1 in 5 that day, passing alone: the values say how next time)
    pids = pipeline.pool.worker_pids()
    nices = [os.getpriority(os.PRIO_PROCESS, p) for p in pids]
    assert nices == [expected_nice] * len(pids), f"worker {pids} nice {nices}, expected {expected_nice}"
    assert metric(app, "streamer_errors_total", kind="worker_died") == 1
    await wait_for(  # the display never stopped (the restart itself may take well under a second)
        lambda: metric(app, "streamer_frames_out_total", stream="a") > out_before + 30,
        10,
        "frames out of stream a after the worker restart",
    )
    assert (await (await client.get("/healthz")).json())["worker_restarts"] == 1


@pytest.mark.slow
async def test_model_that_raises_costs_only_its_own_labels(
    make_app, tiny_classifier: Path, tmp_path: Path
) -> None:
    import keras

    from streamer.classify import ModelMeta, save_model

    model = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Flatten(), keras.layers.Dense(2)])
    broken = tmp_path / "broken.keras"  # claims 48x48 crops but takes 32x32: every call raises
    save_model(model, broken, ModelMeta(labels=("a", "b"), input_size=(48, 48), crop_margin=0.25))
    client = await make_app(
        sources=[{"id": "clip", "file": str(CLIP), "loop": True}],
        classifiers=[
            {"name": "broken", "model": str(broken)},
            {"name": "gender", "model": str(tiny_classifier), "threshold": 0.0},
        ],
    )
    app = client.server.app
    stream = app[PIPELINE].streams["clip"]
    await wait_for(lambda: stream.detections is not None and len(stream.detections.faces) > 0, 60, "faces")
    face = stream.detections.faces[0]  # type: ignore[union-attr]
    assert [lab.classifier for lab in face.labels] == ["gender"]  # boxes and the good model survive
    assert metric(app, "streamer_errors_total", kind="classifier") >= 1
    assert app[PIPELINE].pool.restarts == 0


def test_out_of_memory_batches_are_split_not_lost() -> None:
    import tensorflow as tf

    calls: list[int] = []

    def fits_two(xs: list[int]) -> list[int]:
        calls.append(len(xs))
        if len(xs) > 2:
            raise tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor")
        return [x * 10 for x in xs]

    splits = [0]
    assert split_on_oom(fits_two, list(range(7)), splits) == [x * 10 for x in range(7)]
    assert splits[0] == 3  # 7 -> 3 + 4 -> (1 + 2) + (2 + 2)
    assert sum(c for c in calls if c <= 2) == 7  # every item went through exactly once
    with pytest.raises(ValueError):  # other errors are not retried
        split_on_oom(lambda xs: (_ for _ in ()).throw(ValueError("bad")), [1, 2], [0])
    with pytest.raises(MemoryError):  # one item that does not fit is an error
        split_on_oom(lambda xs: (_ for _ in ()).throw(MemoryError()), [1], [0])
    assert is_out_of_memory(RuntimeError("RESOURCE_EXHAUSTED: Out of memory while trying to allocate"))
    assert not is_out_of_memory(RuntimeError("shape mismatch"))


@pytest.mark.slow
async def test_vanished_browser_peer_is_released(make_app) -> None:
    client = await make_app(source_defaults={"peer_timeout_s": 2.0})
    app = client.server.app
    pipeline = app[PIPELINE]
    peer = subprocess.Popen(
        [sys.executable, "-m", "tests.support.webrtc_peer", str(client.make_url("/offer")), str(CLIP)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = await asyncio.get_running_loop().run_in_executor(None, peer.stdout.readline)  # type: ignore[union-attr]
        assert line.startswith("CONNECTED"), peer.stderr.read() if peer.poll() is not None else line  # type: ignore[union-attr]
        stream_id = line.split()[1]
        await wait_for(
            lambda: metric(app, "streamer_frames_in_total", stream=stream_id) > 10, 30, "peer frames"
        )
        assert metric(app, "streamer_webrtc_peers") == 1
    finally:
        peer.kill()  # like a killed tab: no goodbye
        peer.wait()
    await wait_for(
        lambda: stream_id not in pipeline.streams and not app[PIPELINE].streams,
        15,
        "the vanished peer's stream to be released",
    )
    assert metric(app, "streamer_webrtc_peers") == 0
    assert metric(app, "streamer_errors_total", kind="peer_timeout") == 1
