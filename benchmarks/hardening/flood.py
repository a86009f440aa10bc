"""Issue 34, item 1: a connection flood at `streamer serve` on loopback, under a low file limit.

Starts the service with RLIMIT_NOFILE lowered (soft and hard) so that a few hundred connections
are enough to reach it, then opens event-stream clients that never read, connections that send
half a request, and connections that send nothing; while they are held it times /healthz,
/streams and /metrics on fresh connections and measures how fast the service's log grows.

    python -m benchmarks hardening --parts flood                      # this checkout
    python -m benchmarks hardening --parts flood --nofile 1024 --sse 550 --half 550 --out /tmp/flood

Options: ``--nofile`` (the service's file limit, soft and hard; 512), ``--sse`` (event-stream
clients that never read; 300), ``--half`` (half-sent requests; 300), ``--bare`` (silent
connections; 100), ``--hold`` (seconds the flood is held while the answers are timed; 20).
Loopback only; bounded in connections and time (about 30 s).
"""

from __future__ import annotations

import argparse
import socket
import threading
import time
from typing import Any

from benchmarks.hardening.service import Service, timed
from benchmarks.report import progress

PATHS = ("/healthz", "/streams", "/metrics")


def options(ap: argparse.ArgumentParser) -> None:
    g = ap.add_argument_group("flood")
    g.add_argument("--nofile", type=int, default=512, help="the service's RLIMIT_NOFILE (soft and hard)")
    g.add_argument("--sse", type=int, default=300, help="event-stream clients that never read")
    g.add_argument("--half", type=int, default=300, help="connections that send half a request")
    g.add_argument("--bare", type=int, default=100, help="connections that send nothing")
    g.add_argument("--hold", type=float, default=20.0, help="seconds to hold the flood")


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


def run(a: argparse.Namespace) -> dict[str, Any]:
    """The flood held ``a.hold`` seconds: its figures (answers, files, log growth, tracebacks)."""
    fig: dict[str, Any] = {"nofile": a.nofile, "sse": a.sse, "half": a.half, "bare": a.bare, "hold_s": a.hold}
    svc = Service(a.nofile)
    try:
        svc.wait_ready()
        size0, fds0 = svc.log_size(), svc.fds()
        t0 = time.monotonic()
        socks: list[socket.socket] = []
        opener = threading.Thread(target=lambda: socks.extend(flood(svc, a.sse, a.half, a.bare)), daemon=True)
        opener.start()
        worst = dict.fromkeys(PATHS, 0.0)
        answers: dict[str, int] = {}
        end = time.monotonic() + a.hold
        while time.monotonic() < end:
            for path in PATHS:
                took, what = timed(svc.url(path))
                worst[path] = max(worst[path], took)
                answers[what] = answers.get(what, 0) + 1
                progress(
                    f"  {time.monotonic() - t0:5.1f}s GET {path}: {what} in {took:.2f}s (fds {svc.fds()})"
                )
            time.sleep(2)
        opener.join()
        fig |= {
            "opened": len(socks),
            "fds_before": fds0,
            "slowest_answer_s": round(max(worst.values()), 3),
            "slowest_answer_s_by_path": {p: round(t, 3) for p, t in worst.items()},
            "answers": dict(sorted(answers.items())),
            "log_grown_mb": round((svc.log_size() - size0) / 1e6, 2),
            "seconds": round(time.monotonic() - t0, 1),
            "fds_at_end": svc.fds(),
        }
        progress(f"opened {len(socks)} of {a.sse + a.half + a.bare} connections (fds {fds0} before)")
        progress(f"slowest answer {fig['slowest_answer_s']:.2f}s; log grew {fig['log_grown_mb']:.2f} MB")
        for s in socks:
            s.close()
    finally:
        out = svc.stop()
    fig["tracebacks"] = out.count("Traceback")
    progress(f"service fds at the end of the flood: {fig.get('fds_at_end')}; tracebacks {fig['tracebacks']}")
    return fig


def rows(f: dict[str, Any]) -> list[dict[str, str]]:
    attack = (
        f"file limit {f['nofile']}; {f['sse']} event-stream clients that never read + {f['half']} "
        f"half-sent requests + {f['bare']} silent connections, held {f['hold_s']:.0f} s"
    )
    answers = ", ".join(f"{n} × {what}" for what, n in f["answers"].items())
    now = (
        f"{f['opened']} of {f['sse'] + f['half'] + f['bare']} connections opened; slowest answer of "
        f"/healthz, /streams, /metrics {f['slowest_answer_s']:.2f} s ({answers}); service fds "
        f"{f['fds_before']} before, {f['fds_at_end']} at the end of the flood; log +{f['log_grown_mb']:.2f} "
        f"MB in {f['seconds']:.0f} s; {f['tracebacks']} tracebacks"
    )
    limit = (
        "`server.max_connections` (1024, lowered to the file limit less 256), `server.header_timeout_s` "
        "(10 s), `server.keepalive_timeout_s` (15 s), `output.events_max_clients` (64)"
    )
    return [{"attack": attack, "now": now, "limit": limit}]
