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
