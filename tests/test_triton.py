"""The model stage on a real NVIDIA Triton server (PyTriton's, run as `streamer model-server` in its own
process), shared by two front ends: detections and labels flow through it, Triton batches their
requests, and when it stops the video keeps flowing with stale boxes until it is back."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import aiortc  # noqa: F401  (before TensorFlow: pylibsrtp segfaults otherwise)
import pytest

from streamer.config import ConfigError, load_config
from tests.conftest import CLIP, ROOT, free_port, metric, wait_for

MODEL = "streamer_faces"


class ModelServer:
    """`streamer model-server` on free loopback ports, in its own process."""

    def __init__(self, config: Path) -> None:
        self.config = config
        self.grpc, self.http, self.metrics = free_port(), free_port(), free_port()
        self.proc: subprocess.Popen[str] | None = None
        self.log = config.with_suffix(".log")

    @property
    def url(self) -> str:
        return f"127.0.0.1:{self.grpc}"

    async def start(self, timeout: float = 180) -> None:
        cmd = [sys.executable, "-m", "streamer", "model-server", "--config", str(self.config)]
        cmd += ["--grpc-port", str(self.grpc), "--http-port", str(self.http)]
        cmd += ["--metrics-port", str(self.metrics)]
        with self.log.open("a") as log:
            self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, text=True)
        proc = self.proc

        def ready() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"model server exited {proc.returncode}: {self.log.read_text()[-3000:]}")
            return "model server ready" in self.log.read_text()

        await wait_for(ready, timeout, "the model server to be ready", step=0.5)

    async def stop(self) -> int:
        assert self.proc is not None
        self.proc.terminate()
        code = await asyncio.to_thread(self.proc.wait, 30)
        self.proc = None
        return code

    def counters(self) -> dict[str, float]:
        """Triton's own metrics, summed over our models (raw and JPEG): nv_inference_count, ..."""
        text = urllib.request.urlopen(f"http://127.0.0.1:{self.metrics}/metrics", timeout=5).read().decode()
        out: dict[str, float] = {}
        pattern = rf'^(nv_inference_\w+)\{{model="{MODEL}(?:_jpeg)?",version="1"\}} (\S+)$'
        for name, value in re.findall(pattern, text, re.M):
            out[name] = out.get(name, 0.0) + float(value)
        return out


def _children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(x) for x in out.split()]


def _alive(pids: list[int]) -> list[str]:
    """The command lines of those processes still running (zombies count as gone)."""
    out = []
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            if stat.rsplit(")", 1)[1].split()[0] != "Z":
                out.append(Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ")[:120])
        except OSError:
            pass
    return out


@pytest.fixture
def model_server_config(tmp_path: Path, tiny_classifier: Path) -> Path:
    path = tmp_path / "model_server.toml"
    path.write_text(
        f"""
[pipeline]
detector = "mmod"
[[classifiers]]
name = "gender"
model = "{tiny_classifier}"
[model_server]
max_batch = 8
queue_delay_ms = 5.0
log_file = "triton.log"
"""
    )
    return path


def test_faces_cross_the_wire_with_their_identity() -> None:
    """A face's identity (descriptor) goes through the model server's JSON, so the front end's tracks
    can tell a passer-by from the face they followed on Triton too; a face without one stays
    without, and an answer of a server before identities decodes."""
    import json

    import numpy as np

    from streamer.inference.engine import FrameResult
    from streamer.inference.triton_wire import decode_result, encode_result
    from streamer.types import BatchTimings, Box, Face, Label

    who = np.random.default_rng(0).normal(size=128).astype(np.float32) * 0.09
    faces = (
        Face(Box(1, 2, 41, 42, 0.9), (Label("gender", "male", 0.8),), identity=who),
        Face(Box(50, 2, 90, 42, 0.4)),
    )
    raw = encode_result(FrameResult(faces=faces), BatchTimings(0.1, 0.01, 1, 2))
    a, b = decode_result(raw)[0].faces
    assert a.box == faces[0].box and a.labels == faces[0].labels
    assert a.identity is not None and np.abs(a.identity - who).max() < 1e-4
    assert b.identity is None
    doc = json.loads(raw)
    del doc["ids"]
    old = decode_result(json.dumps(doc).encode())[0]
    assert [f.identity for f in old.faces] == [None, None] and old.faces[0].box == faces[0].box


def test_triton_urls_must_be_host_port() -> None:
    cfg = load_config(
        None, {"pipeline": {"backend": "triton", "triton_urls": ["10.0.0.5:8001", "gpu-1:9001"]}}
    )
    assert cfg.pipeline.triton_urls == ["10.0.0.5:8001", "gpu-1:9001"]
    with pytest.raises(ConfigError, match="triton_urls"):
        load_config(None, {"pipeline": {"backend": "triton", "triton_urls": ["grpc://gpu-1"]}})
    with pytest.raises(ConfigError, match="backend"):
        load_config(None, {"pipeline": {"backend": "ray"}})


async def test_unreachable_servers_fail_fast_and_back_off() -> None:
    """Nothing listens: the batch fails within its deadline, each url is tried once, then left alone."""
    import numpy as np

    from streamer.inference.triton_client import BackendUnavailable, TritonPool
    from streamer.metrics import Metrics

    m = Metrics()
    urls = [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]
    pool = TritonPool(urls, m, timeout_s=2.0, backoff_initial_s=30.0)
    await pool.start()
    frame = np.zeros((480, 640, 3), np.uint8)
    t0 = time.monotonic()
    with pytest.raises(BackendUnavailable, match=r"failed to connect|UNAVAILABLE"):
        await pool.run([frame])
    assert time.monotonic() - t0 < 2.0
    assert m.registry.get_sample_value("streamer_errors_total", {"kind": "backend_unavailable"}) == 2
    assert all(m.registry.get_sample_value("streamer_inference_backend_up", {"url": u}) == 0 for u in urls)
    # both in backoff: the next batch is refused at once, without another attempt
    with pytest.raises(BackendUnavailable, match="no model server is due"):
        await pool.run([frame])
    assert m.registry.get_sample_value("streamer_errors_total", {"kind": "backend_unavailable"}) == 2
    assert not pool.up
    await pool.close()


@pytest.mark.slow
async def test_two_front_ends_share_one_triton_that_stops_and_returns(
    make_app, model_server_config: Path
) -> None:
    server = ModelServer(model_server_config)
    await server.start()
    dead = f"127.0.0.1:{free_port()}"  # nothing listens here
    try:
        fronts = {}
        # b has a dead url first: it fails over to the live one
        for name, urls in (("a", [server.url]), ("b", [dead, server.url])):
            client = await make_app(
                sources=[{"id": name, "file": str(CLIP), "loop": True}],
                pipeline={
                    "backend": "triton",
                    "triton_urls": urls,
                    "triton_timeout_ms": 2000,
                },
            )
            fronts[name] = client
        apps = {n: c.server.app for n, c in fronts.items()}

        def detections(n: str) -> float:
            return metric(apps[n], "streamer_detections_total", stream=n)

        def labelled_faces(n: str) -> float:  # faces that came back with the classifier's label
            return sum(
                metric(apps[n], "streamer_faces_total", stream=n, label=f"gender:{x}")
                for x in ("male", "female", "?")
            )

        await wait_for(
            lambda: all(detections(n) >= 5 and labelled_faces(n) >= 1 for n in apps),
            120,
            "detections and labels through Triton",
        )
        for n, app in apps.items():  # every face (track) got its label there
            assert metric(app, "streamer_faces_total", stream=n, label="face") == 0
        # up (two front ends' region requests on a 2-core CI machine can make one time out now and
        # then: that server is then retried after a backoff, and is up again once it answers)
        await wait_for(
            lambda: all(
                metric(a, "streamer_inference_backend_up", url=server.url) == 1 for a in apps.values()
            ),
            30,
            "the live model server up in both front ends",
        )
        assert metric(apps["b"], "streamer_inference_backend_up", url=dead) == 0
        assert metric(apps["b"], "streamer_errors_total", kind="backend_unavailable") >= 1
        counts = server.counters()
        total = sum(detections(n) for n in apps)
        assert counts["nv_inference_count"] >= total  # every detection went through Triton
        # requests of both front ends merged into shared model calls
        await wait_for(
            lambda: server.counters()["nv_inference_count"] > server.counters()["nv_inference_exec_count"],
            60,
            "a Triton batch of more than one request",
            step=0.5,
        )

        # the model server goes away: video keeps flowing, detections go stale, metrics say so
        pid = server.proc.pid if server.proc else 0
        children = _children(pid)
        assert await server.stop() == 0
        await wait_for(
            lambda: not _alive(children), 15, f"the model server's children to exit: {_alive(children)}"
        )
        out_before = {n: metric(apps[n], "streamer_frames_out_total", stream=n) for n in apps}
        det_before = {n: detections(n) for n in apps}
        await wait_for(
            lambda: all(
                metric(a, "streamer_inference_backend_up", url=server.url) == 0 for a in apps.values()
            ),
            30,
            "backend_up to drop",
        )
        await wait_for(
            lambda: all(
                metric(apps[n], "streamer_frames_out_total", stream=n) > out_before[n] + 25 for n in apps
            ),
            30,
            "video to keep flowing without the model server",
        )
        for n, client in fronts.items():
            info = next(s for s in (await (await client.get("/streams")).json())["streams"] if s["id"] == n)
            assert info["detections_stale"] is True
            assert metric(apps[n], "streamer_errors_total", kind="backend_unavailable") >= 1
        stalled = {n: detections(n) for n in apps}
        assert all(stalled[n] - det_before[n] <= 4 for n in apps)  # at most the batches in flight

        # back on the same ports: detections return, the front ends were never restarted
        await server.start()
        await wait_for(
            lambda: all(detections(n) > stalled[n] + 3 for n in apps), 120, "detections after the restart"
        )
        # up and fresh in both (polled: a request may time out now and then here, see above)
        deadline = time.monotonic() + 30
        while True:
            fresh = {}
            for n, app in apps.items():
                info = next(
                    s for s in (await (await fronts[n].get("/streams")).json())["streams"] if s["id"] == n
                )
                up = metric(app, "streamer_inference_backend_up", url=server.url) == 1
                fresh[n] = up and info["detections_stale"] is False
            if all(fresh.values()) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
        assert all(fresh.values()), fresh
        # the transports compared on an idle server: the front ends' streams (regions of many
        # shapes, one request each) queue ahead of a request on a 2-core machine
        for n, client in fronts.items():
            assert (await client.delete(f"/streams/{n}")).status == 204
        # their requests already queued there run first, and the model server rejects a request
        # queued over request_timeout_ms (a client may shorten that, not lengthen it): wait until
        # its counters stop moving
        counted = -1.0
        for _ in range(60):
            now = sum(server.counters().values())  # requests, failures, times
            if now == counted:
                break
            counted = now
            await asyncio.sleep(1.0)
        await _jpeg_transport_finds_the_same_faces(server.url)
    finally:
        if server.proc is not None:
            await server.stop()


async def _jpeg_transport_finds_the_same_faces(url: str) -> None:
    import cv2

    from streamer.inference.triton_client import TritonPool
    from streamer.metrics import Metrics

    raw = TritonPool([url], Metrics(), timeout_s=30.0)
    jpeg = TritonPool([url], Metrics(), timeout_s=30.0, transport="jpeg")
    cap = cv2.VideoCapture(str(CLIP))
    try:
        for _ in range(8):  # the first frame with a face, 20 frames apart
            for _ in range(20):
                ok, bgr = cap.read()
                assert ok
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            ([by_raw], _), ([by_jpeg], _) = await raw.run([rgb]), await jpeg.run([rgb])
            if by_raw.faces:
                break
        assert by_raw.faces, "no face in the clip's first frames"
        assert len(by_jpeg.faces) == len(by_raw.faces)
        for a, b in zip(by_raw.faces, by_jpeg.faces, strict=True):
            assert max(abs(a.box.left - b.box.left), abs(a.box.top - b.box.top)) <= 4
            assert [lab.classifier for lab in b.labels] == ["gender"]
    finally:
        cap.release()
        await raw.close()
        await jpeg.close()
