"""Hostile loopback cameras for the hardening tests: each a listening socket with a thread per client.

``mode``: "mjpeg" (multipart JPEGs, the first one ``first`` if given, then ``jpeg``), "stall" (HTTP
200 with multipart headers, then nothing), "rtsp_stall" (answers OPTIONS/DESCRIBE with an SDP,
then nothing), "banner" (an SSH banner), "redirect" (HTTP 302 elsewhere), "auth" (HTTP 401),
"flip" (MJPEG to the first client, a redirect to ``location`` to the next), "silent" (accepts, says
nothing). Loopback only; every connection is closed by ``close()``.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

MULTIPART = b"HTTP/1.1 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary=frame\r\n\r\n"
SDP = (
    b"v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=cam\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    b"m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=control:track1\r\n"
)


def big_jpeg(path: Path, side: int = 16000) -> bytes:
    """A ``side`` x ``side`` JPEG (3 MB at 16000), made once, in a child process (its memory stays there)."""
    if not path.exists():
        code = (
            "import cv2, numpy as np, sys; "
            f"ok, b = cv2.imencode('.jpg', np.zeros(({side}, {side}), np.uint8), "
            "[cv2.IMWRITE_JPEG_QUALITY, 50]); "
            f"open(sys.argv[1], 'wb').write(b.tobytes())"
        )
        subprocess.run([sys.executable, "-c", code, str(path)], check=True, timeout=120)
    return path.read_bytes()


def small_jpeg(width: int = 320, height: int = 240) -> bytes:
    import cv2
    import numpy as np

    img = np.zeros((height, width, 3), np.uint8)
    img[:, : width // 2] = (40, 160, 220)
    return cv2.imencode(".jpg", img)[1].tobytes()


class Camera:
    def __init__(self, mode: str, jpeg: bytes = b"", first: bytes | None = None, fps: float = 10.0) -> None:
        self.mode, self.jpeg, self.first, self.fps = mode, jpeg, first, fps
        self.location = "http://127.0.0.1:9/elsewhere"  # where "redirect" and "flip" send clients
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.conns: list[socket.socket] = []
        self.closed = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, scheme: str = "http") -> str:
        return f"{scheme}://127.0.0.1:{self.port}/cam"

    def _accept(self) -> None:
        while not self.closed.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(30)
        try:
            if self.mode == "banner":
                conn.sendall(b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n")
            elif self.mode == "silent":
                pass
            elif self.mode == "rtsp_stall":
                while not self.closed.is_set():
                    req = conn.recv(65536)
                    if not req:
                        return
                    cseq = next(
                        (
                            ln.split(b":", 1)[1].strip()
                            for ln in req.split(b"\r\n")
                            if ln.lower().startswith(b"cseq:")
                        ),
                        b"1",
                    )
                    if req.startswith(b"OPTIONS"):
                        conn.sendall(
                            b"RTSP/1.0 200 OK\r\nCSeq: "
                            + cseq
                            + b"\r\nPublic: OPTIONS, DESCRIBE, SETUP, PLAY\r\n\r\n"
                        )
                    elif req.startswith(b"DESCRIBE"):
                        head = b"RTSP/1.0 200 OK\r\nCSeq: " + cseq + b"\r\nContent-Type: application/sdp\r\n"
                        conn.sendall(head + b"Content-Length: %d\r\n\r\n" % len(SDP) + SDP)
                    # anything else (SETUP): no answer, ever
            else:
                conn.recv(65536)
                if self.mode == "auth":
                    conn.sendall(b'HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm="cam"\r\n\r\n')
                    return
                if self.mode == "redirect" or (self.mode == "flip" and len(self.conns) > 1):
                    conn.sendall(b"HTTP/1.1 302 Found\r\nLocation: %s\r\n\r\n" % self.location.encode())
                    return
                conn.sendall(MULTIPART)
                i = 0
                while self.mode in ("mjpeg", "flip") and not self.closed.is_set():
                    j = self.first if (self.first is not None and i == 0) else self.jpeg
                    part = b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(j)
                    conn.sendall(part + j + b"\r\n")
                    i += 1
                    time.sleep(1.0 / self.fps)
            self.closed.wait(60)  # stall: hold the connection open
        except OSError:
            pass
        finally:
            conn.close()

    def close(self) -> None:
        self.closed.set()
        self.sock.close()
        for c in self.conns:
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)
            c.close()
