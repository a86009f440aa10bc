"""`streamer serve` as a user runs it: starts on the demo video, stops cleanly on SIGINT and SIGTERM
(and on Ctrl-C, which reaches its inference workers too), with nothing in its log but its own lines."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from tests.conftest import free_port, port_in_use

pytestmark = pytest.mark.slow

# the service's own lines: its log format (any logger, through its handler), an inference worker's
# (logging.basicConfig's, streamer's loggers) and the address it serves on; anything else is chatter
# (TensorFlow's absl and oneDNN notices, Keras' retracing warnings, a traceback, a bare print)
OWN_LINE = re.compile(
    r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ |[A-Z]+:streamer[.:]|streamer: serving on "
)


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.read()


def _detected(port: int) -> bool:
    """The service has had a batch of frames through its detector."""
    for line in _get(f"http://127.0.0.1:{port}/metrics").decode().splitlines():
        if line.startswith("streamer_detections_total{") and float(line.split()[-1]) > 0:
            return True
    return False


@pytest.mark.parametrize(
    ("sig", "group"), [("SIGINT", False), ("SIGTERM", False), ("SIGINT", True), ("SIGTERM", True)]
)
def test_serve_demo_then_graceful_shutdown(sig: str, group: bool) -> None:
    """Stopped by SIGINT or SIGTERM to the service, or to its whole process group (the inference
    worker included: Ctrl-C in a terminal, systemd's stop) once frames have gone through the models."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamer", "serve", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # (its own process group, as a shell gives a command)
    )
    try:
        deadline = time.monotonic() + 60
        streams: list[dict] = []
        while time.monotonic() < deadline:
            try:
                streams = json.loads(_get(f"http://127.0.0.1:{port}/streams"))["streams"]
                if streams and streams[0]["up"]:
                    break
            except OSError:
                pass
            time.sleep(0.3)
        # no source configured: the bundled demo video is served, so the page is never empty
        assert [s["id"] for s in streams] == ["demo"] and streams[0]["up"]
        assert b"streamer_frames_in_total" in _get(f"http://127.0.0.1:{port}/metrics")
        while time.monotonic() < deadline + 60 and not _detected(port):
            time.sleep(0.3)  # the worker has answered a batch: it is in the middle of its work now
        assert _detected(port)
        if group:
            os.killpg(proc.pid, getattr(signal, sig))
        else:
            proc.send_signal(getattr(signal, sig))
        out, _ = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, out
    assert "Traceback" not in out and "Task was destroyed" not in out
    assert "stream demo removed" in out  # sources were closed on the way out
    assert [line for line in out.splitlines() if not OWN_LINE.match(line)] == [], out


def test_shutdown_in_the_middle_of_everything(tmp_path) -> None:
    """A retrying dead camera, a live WebRTC peer and an MJPEG viewer: SIGTERM still exits cleanly."""
    import socket

    from tests.conftest import CLIP, ROOT

    port = free_port()
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        f"[server]\nport = {port}\n[source_defaults]\nreconnect_initial_s = 0.2\nreconnect_max_s = 0.5\n"
        f'[[sources]]\nid = "dead"\nurl = "rtsp://127.0.0.1:9/x"\n'
        f'[[sources]]\nid = "clip"\nfile = "{CLIP}"\n'
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamer", "serve", "--config", str(cfg)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    peer = viewer = None
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if json.loads(_get(f"http://127.0.0.1:{port}/healthz"))["streams_up"] >= 1:
                    break
            except OSError:
                time.sleep(0.3)
        peer = subprocess.Popen(
            [sys.executable, "-m", "tests.support.webrtc_peer", f"http://127.0.0.1:{port}/offer", str(CLIP)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert peer.stdout is not None and peer.stdout.readline().startswith("CONNECTED")
        viewer = socket.create_connection(("127.0.0.1", port))
        viewer.sendall(b"GET /streams/clip/mjpeg HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert b"multipart/x-mixed-replace" in viewer.recv(65536)
        health = json.loads(_get(f"http://127.0.0.1:{port}/healthz"))
        assert health["peers"] == 1 and health["streams"] == 3
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
        took = time.monotonic() - t0
    finally:
        for p in (proc, peer):
            if p is not None and p.poll() is None:
                p.kill()
                p.communicate()
        if viewer is not None:
            viewer.close()
    assert proc.returncode == 0, out
    assert took < 15, f"shutdown took {took:.1f}s"
    assert "Traceback" not in out and "Task was destroyed" not in out, out
    assert [line for line in out.splitlines() if not OWN_LINE.match(line)] == [], out


def test_a_port_in_use_is_a_plain_error(tmp_path) -> None:
    """Another service on the port (8080 is a common one): one line that says so, exit 1, and no
    "serving on" before it (it was printed first, then came asyncio's traceback)."""
    config = tmp_path / "config.toml"
    config.write_text("[demo]\nenabled = false\n[store]\nenabled = false\n")
    with port_in_use() as port:
        cmd = [sys.executable, "-m", "streamer", "serve", "--config", str(config), "--port", str(port)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert f"streamer: cannot listen on 127.0.0.1:{port}: address already in use" in proc.stderr
    assert "Traceback" not in proc.stderr and "serving on" not in proc.stdout + proc.stderr
