"""The service under test: `streamer serve` on the bundled demo video in a child process.

Its file limit can be lowered (soft and hard), its log goes to a file whose growth the probes
measure; the child inherits PYTHONPATH, so an older checkout's ``streamer`` first on it is the one
probed. Plus timing one GET on a fresh connection.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Service:
    """`streamer serve` on the bundled demo video, its file limit lowered, its log in a file."""

    def __init__(self, nofile: int, extra_config: str = "", soft: int | None = None) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="flood-"))
        self.log_path = self.dir / "serve.log"
        cfg = self.dir / "c.toml"
        cfg.write_text(f"[server]\nport = {self.port}\n{extra_config}")

        def limit() -> None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft or nofile, nofile))

        self.log = open(self.log_path, "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streamer", "serve", "--config", str(cfg)],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            preexec_fn=limit,
        )

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def wait_ready(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"service exited: {self.log_path.read_text()[-3000:]}")
            try:
                if json.loads(get(self.url("/healthz"), 2)[1])["streams_up"] >= 1:
                    return
            except (OSError, ValueError, KeyError):
                pass
            time.sleep(0.3)
        raise RuntimeError("service not ready")

    def log_size(self) -> int:
        return self.log_path.stat().st_size

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def fds(self) -> int:
        try:
            return len(os.listdir(f"/proc/{self.proc.pid}/fd"))
        except OSError:
            return -1

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.log.close()
        text = self.log_text()
        shutil.rmtree(self.dir, ignore_errors=True)
        return text


def get(url: str, timeout: float) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def timed(url: str, timeout: float = 10.0) -> tuple[float, str]:
    """Seconds to a full answer (or to the timeout), and the status or the error."""
    t = time.monotonic()
    try:
        status, _ = get(url, timeout)
        what = str(status)
    except (OSError, ValueError) as e:
        what = type(e).__name__
    return time.monotonic() - t, what
