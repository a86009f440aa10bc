"""Issue 34, the model server: oversized and empty frames get a plain per-frame error, nothing is
decoded past the size limit, and normal requests keep being answered meanwhile; a port already in
use is a plain error at once, not a two-minute wait for a tritonserver that exited."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from streamer.inference.engine import FrameResult
from streamer.inference.model_server import answer, check_image, decode_jpeg, errors_in
from streamer.types import BatchTimings
from tests.conftest import ROOT, free_port, port_in_use
from tests.support.cameras import big_jpeg, small_jpeg
from tests.test_triton import ModelServer

LIMIT = 4096 * 4096


def test_jpegs_are_sized_from_their_header_before_decoding(tmp_path: Path) -> None:
    assert decode_jpeg(big_jpeg(tmp_path / "huge.jpg"), LIMIT) == (
        "JPEG of 16000x16000 exceeds model_server.max_image_pixels 16777216"
    )
    assert decode_jpeg(b"", LIMIT) == "empty JPEG"
    assert decode_jpeg(b"GIF89a", LIMIT) == "not a JPEG (no start-of-image marker)"
    assert decode_jpeg(small_jpeg()[:40], LIMIT) == "JPEG cut short before its frame header"
    rgb = decode_jpeg(small_jpeg(), LIMIT)
    assert isinstance(rgb, np.ndarray) and rgb.shape == (240, 320, 3)
    assert check_image(np.zeros((0, 0, 3), np.uint8), LIMIT) == "empty or malformed image (0, 0, 3)"
    assert check_image(np.zeros((4097, 4096, 3), np.uint8), LIMIT).startswith("image of 4096x4097 exceeds")


def test_a_failing_engine_answers_each_frame_without_a_traceback() -> None:
    class Broken:
        def run(self, images):
            raise RuntimeError("boom")

    class Fine:
        def run(self, images):
            return [FrameResult() for _ in images], BatchTimings(0.01, 0.0, len(images), 0)

    frames = ["empty JPEG", np.zeros((8, 8, 3), np.uint8)]
    docs = [json.loads(r[0]) for r in answer(Broken(), frames)]  # type: ignore[arg-type]
    assert [d.get("error") for d in docs] == ["empty JPEG", "the model server failed on this batch"]
    docs = [json.loads(r[0]) for r in answer(Fine(), frames)]  # type: ignore[arg-type]
    assert [d.get("error") for d in docs] == ["empty JPEG", None]


def _vm(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) // 1024  # MB
    return 0


def _client(url: str):
    import tritonclient.grpc as grpc_client

    return grpc_client.InferenceServerClient(url)


def _infer(client, frames: list[bytes] | np.ndarray, timeout: float) -> list[str | None]:
    """Each frame's error (None: answered with faces). Raises what the server raised."""
    import tritonclient.grpc as g

    if isinstance(frames, np.ndarray):
        inp = g.InferInput("image", list(frames.shape), "UINT8")
        inp.set_data_from_numpy(frames)
        model = "streamer_faces"
    else:
        arr = np.array([[f] for f in frames], dtype=object)
        inp = g.InferInput("jpeg", list(arr.shape), "BYTES")
        inp.set_data_from_numpy(arr)
        model = "streamer_faces_jpeg"
    result = client.infer(model, [inp], client_timeout=timeout)
    return [json.loads(r[0]).get("error") for r in result.as_numpy("faces")]


def test_a_port_in_use_or_no_stub_environment_is_a_plain_error_before_anything_loads(tmp_path: Path) -> None:
    config = tmp_path / "model_server.toml"
    config.write_text('[pipeline]\ndetector = "mmod"\n')
    with port_in_use() as port:
        cmd = [sys.executable, "-m", "streamer", "model-server", "--config", str(config)]
        cmd += ["--grpc-port", str(free_port()), "--http-port", str(port), "--metrics-port", str(free_port())]
        # (before: tritonserver exited, and PyTriton waited 120 s for it, then a traceback)
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=90)
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert f"HTTP port {port} on 127.0.0.1 already in use" in proc.stderr
    assert "Traceback" not in proc.stderr and "engine:" not in proc.stderr  # (no model was loaded)
    # no environment for Triton's Python stub (`make setup` not run): said, without a traceback
    env = dict(os.environ, STREAMER_TRITON_STUB_ENV=str(tmp_path / "no-stub"))
    cmd[-5:] = [str(free_port()), "--http-port", str(free_port()), "--metrics-port", str(free_port())]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=90)
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert f"Triton's Python stub needs an environment with numpy<2 and pyzmq at {tmp_path / 'no-stub'}" in (
        proc.stderr
    )
    assert "Traceback" not in proc.stderr


def test_a_triton_that_did_not_start_is_told_by_its_own_errors(tmp_path: Path) -> None:
    log = tmp_path / "triton.log"
    log.write_text(
        'E1207 20:00:00.447640 16483 server.cc:241] "CudaDriverHelper has not been initialized."\n'
        "I1207 20:00:00.448034 16483 server.cc:604] \n"
        'E1207 20:00:00.455623 16483 main.cc:245] "failed to start GRPC service: Unavailable - Socket '
        "'127.0.0.1:8001' already in use \"\n"
    )
    said = errors_in(log)
    assert said == "\"failed to start GRPC service: Unavailable - Socket '127.0.0.1:8001' already in use \""
    assert errors_in(tmp_path / "none.log") == ""


@pytest.fixture
def detector_only(tmp_path: Path) -> Path:
    path = tmp_path / "model_server.toml"
    path.write_text(
        '[pipeline]\ndetector = "mmod"\n'
        '[model_server]\nmax_batch = 8\nqueue_delay_ms = 5.0\nlog_file = "triton.log"\n'
    )
    return path


@pytest.mark.slow
async def test_model_server_refuses_huge_and_empty_frames_plainly(
    detector_only: Path, tmp_path: Path
) -> None:
    huge = big_jpeg(tmp_path / "huge.jpg")
    small = small_jpeg()
    server = ModelServer(detector_only)
    await server.start()
    try:
        assert server.proc is not None
        pid = server.proc.pid
        client = _client(server.url)
        # before: empty bytes and a zero-size tensor got the stub's traceback (file paths and all)
        for frames, why in (
            ([b""], "empty JPEG"),
            ([b"not a jpeg"], "not a JPEG"),
            (np.zeros((1, 0, 0, 3), np.uint8), "empty or malformed image"),
        ):
            errors = _infer(client, frames, 30)
            assert errors[0] is not None and errors[0].startswith(why), errors
        assert _infer(client, [small], 30) == [None]
        base = _vm(pid, "VmRSS")

        # normal requests (2 s deadline) go on while the huge request is answered
        failures: list[str] = []
        answered = 0
        stop = threading.Event()

        def normal() -> None:
            nonlocal answered
            c = _client(server.url)
            while not stop.is_set():
                try:
                    assert _infer(c, [small], 2.0) == [None]
                    answered += 1
                except Exception as e:  # a deadline missed
                    failures.append(type(e).__name__)
                time.sleep(0.05)

        peak = base

        def sample() -> None:
            nonlocal peak
            while not stop.wait(0.02):
                peak = max(peak, _vm(pid, "VmRSS"))

        threads = [threading.Thread(target=f, daemon=True) for f in (normal, sample)]
        for t in threads:
            t.start()
        t0 = time.monotonic()
        errors = _infer(client, [huge] * 4 + [small], 60)  # 12 MB, four 16000x16000 JPEGs
        took = time.monotonic() - t0
        time.sleep(2.0)
        stop.set()
        for t in threads:
            t.join(10)
        print(
            f"huge request answered in {took:.2f}s; server RSS {base} MB, peak {peak} MB; "
            f"normal requests: {answered} answered, {len(failures)} failed"
        )
        assert errors[:4] == ["JPEG of 16000x16000 exceeds model_server.max_image_pixels 16777216"] * 4
        assert errors[4] is None
        assert took < 10  # before: 27 s decoding
        assert peak - base < 500, (base, peak)  # before: 1.1 GB -> 5.0 GB
        assert not failures and answered >= 5, (answered, failures)
        assert "Traceback" not in server.log.read_text()
    finally:
        if server.proc is not None:
            await server.stop()
