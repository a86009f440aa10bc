"""`streamer serve` as a user runs it: starts on the demo video, stops cleanly on SIGINT and SIGTERM."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from tests.conftest import free_port

pytestmark = pytest.mark.slow


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.read()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_serve_demo_then_graceful_shutdown(sig: signal.Signals) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamer", "serve", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
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
        proc.send_signal(sig)
        out, _ = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, out
    assert "Traceback" not in out and "Task was destroyed" not in out
    assert "stream demo removed" in out  # sources were closed on the way out


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
