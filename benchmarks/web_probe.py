"""Issue 34, web items 5, 7, 9 and 11 as a script: hostile requests at `streamer serve`, one line each.

    python -m benchmarks.web_probe                    # this checkout
    git archive 3e2942b streamer | tar -x -C /tmp/old && \
        PYTHONPATH=/tmp/old:$PWD python -m benchmarks.web_probe      # an older one (the service
                                                                     # inherits PYTHONPATH)

Item 1 (the connection flood) is benchmarks.connection_flood. Loopback only; about a minute.
"""

from __future__ import annotations

import http.client
import json
import threading
import time

from benchmarks.connection_flood import Service

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


def main() -> None:
    svc = Service(4096, f'api_token = "{TOKEN}"\n')
    port = svc.port
    try:
        svc.wait_ready()

        forged = "2026-12-05 00:00:00,000 ERROR streamer.web.routes: FORGED"
        url = f"rtsp://127.0.0.1:9/x\r\n{forged}"
        status, _ = request(port, "POST", "/streams", {"id": "forge", "url": url})
        time.sleep(4)  # a few retries
        lines = sum(1 for x in svc.log_path.read_text(errors="replace").splitlines() if x.startswith(forged))
        print(f"5 camera URL with CR/LF: POST {status}; forged lines in the log after 4 s: {lines}")
        request(port, "DELETE", "/streams/forge")

        status, _ = request(
            port, "POST", "/streams", {"id": "hash", "url": "rtsp://admin:pa#ss@127.0.0.1:9/x"}
        )
        time.sleep(2)
        shown = b"pa#ss" in request(port, "GET", "/streams")[1]
        logged = "pa#ss" in svc.log_path.read_text(errors="replace")
        print(f"7 password 'pa#ss': POST {status}; in /streams: {shown}; in the log: {logged}")
        request(port, "DELETE", "/streams/hash")

        statuses = []
        for i in range(12):
            big = f"rtsp://127.0.0.1:9/{'a' * 250_000}"
            statuses.append(request(port, "POST", "/streams", {"id": f"big{i}", "url": big})[0])
        size = len(request(port, "GET", "/streams")[1])
        print(f"9 twelve 250 KB camera URLs: statuses {sorted(set(statuses))}; /streams then {size} bytes")
        for i in range(12):
            request(port, "DELETE", f"/streams/big{i}")

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
        print(f"11 300 wrong tokens in {took:.2f}s: {dict(sorted(counts.items()))} (401 = a guess checked)")
        time.sleep(61)  # the failed-token window passes
        q = f"?token={TOKEN}"
        post = request(port, "POST", "/streams" + q, {"id": "q", "url": "rtsp://127.0.0.1:9/x"}, {})[0]
        dele = request(port, "DELETE", "/streams/q" + q, None, {})[0]
        print(f"11 ?token= on POST /streams: {post}; on DELETE: {dele}")

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
        print(
            f"11 MJPEG viewer: {alone:.1f} fps alone, {loaded:.1f} fps while 8 clients fetch /metrics "
            f"back to back ({scrapes[0] / 6:.0f} a second)"
        )
    finally:
        svc.stop()


if __name__ == "__main__":
    main()
