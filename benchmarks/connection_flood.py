"""Issue 34, item 1: a connection flood at `streamer serve` on loopback, under a low file limit.

Starts the service with RLIMIT_NOFILE lowered (soft and hard) so that a few hundred connections
are enough to reach it, then opens event-stream clients that never read, connections that send
half a request, and connections that send nothing; while they are held it times /healthz,
/streams and /metrics on fresh connections and measures how fast the service's log grows.

    python -m benchmarks.connection_flood                       # this checkout
    python -m benchmarks.connection_flood --nofile 1024 --sse 550 --half 550

Loopback only; bounded in connections and time (about 30 s).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
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
        text = self.log_path.read_text(errors="replace")
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


def open_clients(port: int, n: int, request: bytes, connect_timeout: float = 0.5) -> list[socket.socket]:
    """``n`` connections that send ``request`` (maybe half of one, maybe nothing) and never read."""
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.settimeout(connect_timeout)
        try:
            s.connect(("127.0.0.1", port))
            if request:
                s.sendall(request)
        except OSError:
            s.close()
            continue
        socks.append(s)
    return socks


def flood(svc: Service, sse: int, half: int, bare: int, stream: str = "demo") -> list[socket.socket]:
    host = f"Host: 127.0.0.1:{svc.port}\r\n".encode()
    socks = open_clients(
        svc.port, sse, f"GET /streams/{stream}/events HTTP/1.1\r\n".encode() + host + b"\r\n"
    )
    socks += open_clients(svc.port, half, b"GET /streams HTTP/1.1\r\n" + host)
    socks += open_clients(svc.port, bare, b"")
    return socks


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nofile", type=int, default=512, help="the service's RLIMIT_NOFILE (soft and hard)")
    p.add_argument("--sse", type=int, default=300, help="event-stream clients that never read")
    p.add_argument("--half", type=int, default=300, help="connections that send half a request")
    p.add_argument("--bare", type=int, default=100, help="connections that send nothing")
    p.add_argument("--hold", type=float, default=20.0, help="seconds to hold the flood")
    a = p.parse_args()
    svc = Service(a.nofile)
    try:
        svc.wait_ready()
        size0, fds0 = svc.log_size(), svc.fds()
        t0 = time.monotonic()
        socks: list[socket.socket] = []
        opener = threading.Thread(target=lambda: socks.extend(flood(svc, a.sse, a.half, a.bare)), daemon=True)
        opener.start()
        worst = 0.0
        end = time.monotonic() + a.hold
        while time.monotonic() < end:
            for path in ("/healthz", "/streams", "/metrics"):
                took, what = timed(svc.url(path))
                worst = max(worst, took)
                print(f"  {time.monotonic() - t0:5.1f}s GET {path}: {what} in {took:.2f}s (fds {svc.fds()})")
            time.sleep(2)
        opener.join()
        print(
            f"opened {len(socks)} of {a.sse + a.half + a.bare} connections "
            f"(fds {fds0} before, limit {a.nofile})"
        )
        grown = svc.log_size() - size0
        print(f"slowest answer {worst:.2f}s; log grew {grown / 1e6:.2f} MB in {time.monotonic() - t0:.0f}s")
        print(f"service fds at the end of the flood: {svc.fds()}")
        for s in socks:
            s.close()
    finally:
        out = svc.stop()
        print(f"tracebacks in the log: {out.count('Traceback')}")


if __name__ == "__main__":
    main()
