"""Shared fixtures: the shared data folder, real test media, a real RTSP server, the real app."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("STREAMER_SHARED", ROOT.parent / "shared"))
CLIP = SHARED / "media" / "short_hamilton_clip.mp4"
CLIP_FRAMES = 275
SYSTEM_PYTHON = "/usr/bin/python3"


def need_system(what: str, ok: bool) -> None:
    """Skip a test whose Debian package is missing, unless CI demands every system test run."""
    if ok:
        return
    msg = f"{what} is not installed (make system-deps installs it)"
    if os.environ.get("STREAMER_REQUIRE_SYSTEM_TESTS") == "1":
        pytest.fail(msg)
    pytest.skip(msg)


@contextlib.contextmanager
def port_in_use() -> Iterator[int]:
    """A loopback port that something listens on while the block runs."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield int(taken.getsockname()[1])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def shared() -> Path:
    if not SHARED.is_dir():
        pytest.fail(f"shared data folder not found at {SHARED}; set STREAMER_SHARED")
    return SHARED


@pytest.fixture(scope="session")
def photo_pool():
    """One inference worker (the default config's detector and the face backbone) for the tests
    that describe photos, started once: the service's model stage, as People uses it."""
    from streamer.inference.pool import WorkerPool
    from tests.support.photo_pool import photo_spec

    pool = WorkerPool(photo_spec(), 1)
    asyncio.run(pool.start())
    yield pool
    asyncio.run(pool.close())


@pytest.fixture(scope="session")
def long_clip(tmp_path_factory: pytest.TempPathFactory, shared: Path) -> Path:
    """The test clip six times over (about a minute), remuxed without re-encoding."""
    from tests.support.media import repeat_clip

    return repeat_clip(CLIP, tmp_path_factory.mktemp("media") / "long.mp4", 6)


class RtspServer:
    """GStreamer's RTSP server in its own process (Debian's python3 + gi)."""

    def __init__(self, clip: Path, port: int) -> None:
        self.clip = clip
        self.port = port
        self.url = f"rtsp://127.0.0.1:{port}/cam"
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> None:
        script = ROOT / "tests" / "support" / "rtsp_server.py"
        self.proc = subprocess.Popen(
            [SYSTEM_PYTHON, str(script), "--port", str(self.port), str(self.clip)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("READY"):
            err = self.proc.stderr.read() if self.proc.stderr else ""
            raise RuntimeError(f"RTSP server did not start: {line!r} {err[-2000:]}")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None


@pytest.fixture
def rtsp_server(long_clip: Path) -> AsyncIterator[RtspServer]:
    ok = (
        Path(SYSTEM_PYTHON).exists()
        and subprocess.run(
            [
                SYSTEM_PYTHON,
                "-c",
                "import gi; gi.require_version('GstRtspServer', '1.0')"
                "; from gi.repository import GstRtspServer",
            ],
            capture_output=True,
        ).returncode
        == 0
    )
    need_system("GStreamer RTSP server (gir1.2-gst-rtsp-server-1.0, python3-gi)", ok)
    server = RtspServer(long_clip, free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    need_system("chromium", path is not None)
    assert path is not None
    return path


@pytest.fixture(scope="session")
def tiny_classifier(tmp_path_factory: pytest.TempPathFactory, shared: Path) -> Path:
    """A small gender model trained for a moment on 64 CelebA faces: real plumbing, weak accuracy."""
    import cv2
    import keras
    import numpy as np

    from streamer.classify import ModelMeta, save_model

    attr = (shared / "data" / "celeba" / "list_attr_celeba.txt").read_text().splitlines()
    names = attr[1].split()
    rows = [r.split() for r in attr[2:66]]
    male = np.array([int(r[1 + names.index("Male")]) > 0 for r in rows], np.int32)
    x = np.stack(
        [
            cv2.resize(cv2.imread(str(shared / "data" / "celeba" / "images" / r[0]))[:, :, ::-1], (32, 32))
            for r in rows
        ]
    ).astype(np.float32)
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((32, 32, 3)),
            keras.layers.Rescaling(1 / 255.0),
            keras.layers.Conv2D(8, 3, activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(2, activation="softmax"),
        ]
    )
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x, male, epochs=1, batch_size=16, verbose=0)
    path = tmp_path_factory.mktemp("models") / "tiny_gender.keras"
    save_model(
        model,
        path,
        ModelMeta(
            labels=("female", "male"),
            input_size=(32, 32),
            crop_margin=0.25,
            task="gender",
            attribute="Male",
            positive_label="male",
        ),
    )
    return path


def loopback_peer():
    """An aiortc peer that gathers only this machine's own addresses.

    aiortc's default configuration asks Google's STUN server for a public address; CI machines
    may have no way out (or a slow resolver), and the tests talk over loopback anyway.
    """
    from aiortc import RTCConfiguration, RTCPeerConnection

    return RTCPeerConnection(RTCConfiguration(iceServers=[]))


async def wait_for(
    predicate: Callable[[], bool], timeout: float, what: str | Callable[[], str], step: float = 0.1
) -> None:
    """Poll ``predicate`` until true; fail with ``what`` (or what it returns then) after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            said = what() if callable(what) else what
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {said}")
        await asyncio.sleep(step)


def metric(app, name: str, **labels: str) -> float:
    """A sample's value from the app's Prometheus registry (0 when absent)."""
    from streamer.web.keys import METRICS

    v = app[METRICS].registry.get_sample_value(name, labels)
    return 0.0 if v is None else float(v)


@pytest.fixture
async def make_app(tmp_path: Path):
    """Start the real app (pipeline, worker process, HTTP) on a loopback port; stop it after."""
    from aiohttp.test_utils import TestClient, TestServer

    from streamer.config import load_config
    from streamer.web.app import create_app

    clients: list[TestClient] = []

    async def make(**overrides: object) -> TestClient:
        overrides.setdefault("demo", {"enabled": False})
        overrides.setdefault("store", {"dir": str(tmp_path / "store")})  # (not ./data)
        config = load_config(None, overrides, environ={})
        client = TestClient(TestServer(create_app(config), host="127.0.0.1"))
        await client.start_server()
        clients.append(client)
        return client

    yield make
    for c in clients:
        await c.close()
