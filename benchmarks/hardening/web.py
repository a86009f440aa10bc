"""Issue 34, web items 5, 7, 9 and 11: hostile requests at `streamer serve`, one figure each.

Item 5: a camera URL holding CR/LF and a forged log line; 7: a password holding ``#``; 9: twelve
250 KB camera URLs; 11: 300 wrong tokens back to back, ``?token=`` on POST and DELETE, and an
MJPEG viewer's frame rate while 8 clients fetch /metrics back to back.

    python -m benchmarks hardening --parts web                        # this checkout

An older checkout (the service is a child process and inherits PYTHONPATH; run from outside the
checkout, as ``python -m`` puts the working directory first on sys.path; ``--out`` elsewhere so
that the committed results stay):

    mkdir -p /tmp/old && git archive 3e2942b streamer | tar -x -C /tmp/old
    cd /tmp && PYTHONPATH=/tmp/old:/path/to/repo \
        python -m benchmarks hardening --parts web --out /tmp/old-results

Item 1 (the connection flood) is the ``flood`` part. Loopback only; about a minute and a half
(a minute of it waiting for the failed-token window to pass).
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from typing import Any

from benchmarks.hardening.service import Service
from benchmarks.report import progress

TOKEN = "probe-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}


def request(port: int, method: str, path: str, body: object = None, headers: dict | None = None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request(
        method,
        path,
        body=None if body is None else json.dumps(body),
        headers=AUTH if headers is None else headers,
    )
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, data


def mjpeg_fps(port: int, seconds: float) -> float:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", "/streams/demo/mjpeg", headers=AUTH)
    r = c.getresponse()
    frames, t0, tail = 0, time.monotonic(), b""
    while time.monotonic() - t0 < seconds:
        data = tail + r.read1(65536)
        frames += data.count(b"--streamerframe")
        tail = data[-20:].replace(b"--", b"")  # (a boundary split over two reads is counted once)
    c.close()
    return frames / seconds


def log_forging(svc: Service) -> dict[str, Any]:
    forged = "2026-12-05 00:00:00,000 ERROR streamer.web.routes: FORGED"
    url = f"rtsp://127.0.0.1:9/x\r\n{forged}"
    status, _ = request(svc.port, "POST", "/streams", {"id": "forge", "url": url})
    time.sleep(4)  # a few retries
    lines = sum(1 for x in svc.log_text().splitlines() if x.startswith(forged))
    progress(f"5 camera URL with CR/LF: POST {status}; forged lines in the log after 4 s: {lines}")
    request(svc.port, "DELETE", "/streams/forge")
    return {"crlf_url_status": status, "forged_log_lines": lines}


def hash_password(svc: Service) -> dict[str, Any]:
    status, _ = request(
        svc.port, "POST", "/streams", {"id": "hash", "url": "rtsp://admin:pa#ss@127.0.0.1:9/x"}
    )
    time.sleep(2)
    shown = b"pa#ss" in request(svc.port, "GET", "/streams")[1]
    logged = "pa#ss" in svc.log_text()
    progress(f"7 password 'pa#ss': POST {status}; in /streams: {shown}; in the log: {logged}")
    request(svc.port, "DELETE", "/streams/hash")
    return {"hash_password_status": status, "hash_password_in_streams": shown, "hash_password_in_log": logged}


def long_urls(port: int) -> dict[str, Any]:
    statuses = []
    for i in range(12):
        big = f"rtsp://127.0.0.1:9/{'a' * 250_000}"
        statuses.append(request(port, "POST", "/streams", {"id": f"big{i}", "url": big})[0])
    size = len(request(port, "GET", "/streams")[1])
    progress(f"9 twelve 250 KB camera URLs: statuses {sorted(set(statuses))}; /streams then {size} bytes")
    for i in range(12):
        request(port, "DELETE", f"/streams/big{i}")
    return {"long_url_statuses": sorted(set(statuses)), "streams_bytes_after_long_urls": size}


def wrong_tokens(port: int) -> dict[str, Any]:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    counts: dict[int, int] = {}
    t0 = time.monotonic()
    for _ in range(300):
        c.request("GET", "/streams", headers={"Authorization": "Bearer wrong-wrong-wrong-wrong"})
        r = c.getresponse()
        r.read()
        counts[r.status] = counts.get(r.status, 0) + 1
    took = time.monotonic() - t0
    c.close()
    counts = dict(sorted(counts.items()))
    progress(f"11 300 wrong tokens in {took:.2f}s: {counts} (401 = a guess checked)")
    return {"wrong_tokens_s": round(took, 3), "wrong_token_statuses": {str(k): n for k, n in counts.items()}}


def query_token(port: int) -> dict[str, Any]:
    time.sleep(61)  # the failed-token window passes
    q = f"?token={TOKEN}"
    post = request(port, "POST", "/streams" + q, {"id": "q", "url": "rtsp://127.0.0.1:9/x"}, {})[0]
    dele = request(port, "DELETE", "/streams/q" + q, None, {})[0]
    progress(f"11 ?token= on POST /streams: {post}; on DELETE: {dele}")
    return {"query_token_post": post, "query_token_delete": dele}


def metrics_under_load(port: int) -> dict[str, Any]:
    alone = mjpeg_fps(port, 6)
    stop = threading.Event()
    scrapes = [0]

    def hammer() -> None:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        while not stop.is_set():
            c.request("GET", "/metrics")
            c.getresponse().read()
            scrapes[0] += 1
        c.close()

    threads = [threading.Thread(target=hammer, daemon=True) for _ in range(8)]
    for t in threads:
        t.start()
    loaded = mjpeg_fps(port, 6)
    stop.set()
    for t in threads:
        t.join()
    progress(
        f"11 MJPEG viewer: {alone:.1f} fps alone, {loaded:.1f} fps while 8 clients fetch /metrics "
        f"back to back ({scrapes[0] / 6:.0f} a second)"
    )
    return {
        "mjpeg_fps_alone": round(alone, 1),
        "mjpeg_fps_with_metrics_load": round(loaded, 1),
        "metrics_scrapes_per_s": round(scrapes[0] / 6),
    }


def run(_: object = None) -> dict[str, Any]:
    """Items 5, 7, 9 and 11 in turn against one service (its API token set)."""
    svc = Service(4096, f'api_token = "{TOKEN}"\n')
    try:
        svc.wait_ready()
        fig = log_forging(svc) | hash_password(svc)
        fig |= long_urls(svc.port) | wrong_tokens(svc.port)
        return fig | query_token(svc.port) | metrics_under_load(svc.port)
    finally:
        svc.stop()


def rows(f: dict[str, Any]) -> list[dict[str, str]]:
    yes = {True: "yes", False: "no"}
    statuses = ", ".join(f"{n} × {s}" for s, n in f["wrong_token_statuses"].items())
    return [
        {
            "attack": "camera URL holding `\\r\\n` + a fake log line",
            "now": f"POST {f['crlf_url_status']}; {f['forged_log_lines']} forged lines in the log after 4 s",
            "limit": "—",
        },
        {
            "attack": "password `pa#ss`",
            "now": f"POST {f['hash_password_status']}; shown in `/streams`: "
            f"{yes[f['hash_password_in_streams']]}; in the log: {yes[f['hash_password_in_log']]}",
            "limit": "—",
        },
        {
            "attack": "twelve 250 KB camera URLs",
            "now": f"{'/'.join(map(str, f['long_url_statuses']))} each; `/streams` then "
            f"{f['streams_bytes_after_long_urls']:,} bytes",
            "limit": "`server.max_url_chars` (2048)",
        },
        {
            "attack": "300 wrong tokens back to back from one address",
            "now": f"{statuses} in {f['wrong_tokens_s']:.2f} s",
            "limit": "`server.auth_failures_per_minute` (20)",
        },
        {
            "attack": "`?token=` on POST /streams and DELETE",
            "now": f"{f['query_token_post']}, {f['query_token_delete']}",
            "limit": "—",
        },
        {
            "attack": "8 clients fetching `/metrics` back to back, one MJPEG viewer",
            "now": f"viewer {f['mjpeg_fps_alone']:.1f} → {f['mjpeg_fps_with_metrics_load']:.1f} fps; "
            f"{f['metrics_scrapes_per_s']:,} scrapes a second",
            "limit": "—",
        },
    ]
