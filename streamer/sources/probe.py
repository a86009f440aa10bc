"""A quick look at a network camera before OpenCV opens it, with a reason when it is not usable.

The probe runs in the source's own thread and can be cancelled (removing the source stops it at
once): only a camera that answers like a stream reaches OpenCV. For HTTP (MJPEG) it waits for the
first image and reads its size from the JPEG header, so a camera that sends headers and then
nothing, or frames over ``max_frame_side``, is refused before anything is decoded.

What it says stays coarse on purpose, so that it is no port scanner: a refused port, a silent one
and a timeout all read "camera unreachable"; anything that answers but not as an RTSP/HTTP video
stream (an SSH banner, a web page, a redirect) reads "not a camera". The peer's bytes are never
quoted. Only a real RTSP/HTTP answer's status (401, 403, 404) is told apart, as the operator needs it.
"""

from __future__ import annotations

import errno
import select
import socket
import ssl
import threading
import time
from urllib.parse import urlsplit

from streamer.jpeg import BadJpeg, jpeg_size
from streamer.redact import redact_url

DEFAULT_PORTS = {"rtsp": 554, "rtsps": 322, "http": 80, "https": 443}
MAX_HEAD = 8192
MAX_FIRST_IMAGE_SEARCH = 256 * 1024  # bytes of body read to find the first JPEG's header
SLICE_S = 0.2  # how often a waiting probe looks at its cancel event


class SourceUnavailable(OSError):
    """The camera cannot be used; the message says why, without credentials or the peer's bytes."""


class ProbeCancelled(Exception):
    """The source was removed while its probe waited."""


def _request(scheme: str, url: str) -> tuple[bytes, str]:
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = host if parts.port is None else f"{host}:{parts.port}"
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    if scheme in ("rtsp", "rtsps"):
        bare = f"{scheme}://{netloc}{path}"  # no credentials on the wire in the probe
        req = (
            f"DESCRIBE {bare} RTSP/1.0\r\nCSeq: 1\r\nAccept: application/sdp\r\nUser-Agent: streamer\r\n\r\n"
        )
        return req.encode(), "RTSP/"
    req = f"GET {path} HTTP/1.1\r\nHost: {netloc}\r\nUser-Agent: streamer\r\nConnection: close\r\n\r\n"
    return req.encode(), "HTTP/"


class _Conn:
    """A socket whose every wait is bounded by the probe's deadline and ends when cancelled."""

    def __init__(self, deadline: float, cancel: threading.Event | None) -> None:
        self.deadline = deadline
        self.cancel = cancel
        self.sock: socket.socket | ssl.SSLSocket | None = None

    def _slice(self) -> float | None:
        """Seconds to wait next, or None when the deadline has passed."""
        if self.cancel is not None and self.cancel.is_set():
            raise ProbeCancelled
        left = self.deadline - time.monotonic()
        return None if left <= 0 else min(left, SLICE_S)

    def connect(self, host: str, port: int) -> bool:
        """False when nothing accepted the connection in time (or it was refused)."""
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        for family, kind, proto, _, addr in infos:
            s = socket.socket(family, kind, proto)
            s.setblocking(False)
            if s.connect_ex(addr) not in (0, errno.EINPROGRESS, errno.EWOULDBLOCK):
                s.close()
                continue
            while (t := self._slice()) is not None:
                _, writable, _ = select.select([], [s], [], t)
                if writable:
                    break
            else:
                s.close()
                return False
            if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                s.setblocking(True)
                self.sock = s
                return True
            s.close()
        return False

    def recv(self) -> bytes | None:
        """Some bytes; b"" when the peer closed; None at the deadline."""
        assert self.sock is not None
        while (t := self._slice()) is not None:
            self.sock.settimeout(t)
            try:
                return self.sock.recv(65536)
            except TimeoutError:
                continue
        return None

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()


def probe(
    url: str,
    timeout_s: float,
    max_side: int | None = None,
    cancel: threading.Event | None = None,
) -> str | None:
    """Raise SourceUnavailable unless ``url`` answers like an RTSP or HTTP video stream in time.

    For HTTP, the first image must arrive in time and, with ``max_side``, be no larger. Raises
    ProbeCancelled when ``cancel`` is set meanwhile. Returns a note for OpenCV's error if it still
    fails (the camera asked for credentials), else None.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        return None  # nothing to check: let OpenCV try
    shown = redact_url(url)
    host = parts.hostname
    try:
        port = parts.port or DEFAULT_PORTS[scheme]
    except ValueError as e:
        raise SourceUnavailable(f"bad port in {shown}") from e
    if not host:
        raise SourceUnavailable(f"no host in {shown}")
    where = f"{host}:{port}"
    unreachable = f"camera unreachable at {where} (nothing answered within {timeout_s:g}s)"
    conn = _Conn(time.monotonic() + timeout_s, cancel)
    try:
        try:
            if not conn.connect(host, port):
                raise SourceUnavailable(unreachable)
        except socket.gaierror as e:
            raise SourceUnavailable(f"cannot resolve host {host!r}") from e
        except OSError as e:
            raise SourceUnavailable(unreachable) from e
        if scheme in ("rtsps", "https"):
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE  # as FFmpeg does by default; this is only a probe
            assert conn.sock is not None
            conn.sock.settimeout(max(0.01, conn.deadline - time.monotonic()))
            try:
                conn.sock = ctx.wrap_socket(conn.sock, server_hostname=host)
            except TimeoutError as e:  # silent: as a silent plain port reads
                raise SourceUnavailable(unreachable) from e
            except (ssl.SSLError, OSError) as e:
                raise SourceUnavailable(f"not a camera at {where} (no TLS stream there)") from e
        req, proto = _request(scheme, url)
        try:
            assert conn.sock is not None
            conn.sock.sendall(req)
            head, body = _read_head(conn)
            note = _judge(head, proto, scheme, bool(parts.username or parts.password), where, timeout_s)
            if proto == "HTTP/" and note is None:  # a 2xx answer (a 401 note: FFmpeg will log in)
                _first_image(conn, head, body, where, timeout_s, max_side)
        except OSError as e:
            if isinstance(e, SourceUnavailable):
                raise
            raise SourceUnavailable(f"not a camera at {where} (it closed the connection)") from e
    finally:
        conn.close()
    return note


def _read_head(conn: _Conn) -> tuple[bytes, bytes]:
    """The answer's head (status line and headers) and what came after it, as far as read."""
    data = b""
    while b"\r\n\r\n" not in data and len(data) < MAX_HEAD:
        chunk = conn.recv()
        if not chunk:
            break
        data += chunk
    head, sep, rest = data.partition(b"\r\n\r\n")
    return (head + sep, rest) if sep else (data, b"")


def _status(head: bytes, proto: str) -> int:
    line = head.split(b"\r\n", 1)[0].decode("latin-1", "replace")
    if not line.startswith(proto):
        return -1
    fields = line.split(" ", 2)
    return int(fields[1]) if len(fields) > 1 and fields[1].isdigit() else 0


def _header(head: bytes, name: str) -> str:
    for h in head.split(b"\r\n")[1:]:
        key, _, value = h.decode("latin-1", "replace").partition(":")
        if key.strip().lower() == name:
            return value.strip().lower()
    return ""


def _judge(head: bytes, proto: str, scheme: str, has_creds: bool, where: str, t: float) -> str | None:
    if not head:
        # a listening port that says nothing reads as one that refuses: no port scanning through us
        raise SourceUnavailable(f"camera unreachable at {where} (nothing answered within {t:g}s)")
    code = _status(head, proto)
    kind = "RTSP" if proto == "RTSP/" else "HTTP"
    if code < 0 or b"\r\n\r\n" not in head:
        raise SourceUnavailable(f"not a camera at {where} (not an {kind} server)")
    if code == 401:
        if has_creds:
            # the credentials are in the URL and FFmpeg answers the challenge; if OpenCV still fails, say so
            return f"{where} did not accept the credentials in the URL ({scheme.upper()} 401)"
        raise SourceUnavailable(
            f"{where} needs credentials ({scheme.upper()} 401): put user:password@ in the URL"
        )
    if code == 403:
        raise SourceUnavailable(f"{where} refused access ({scheme.upper()} 403)")
    if code == 404:
        raise SourceUnavailable(f"{where} has no stream at this path ({scheme.upper()} 404)")
    if 300 <= code < 400:
        raise SourceUnavailable(f"not a camera at {where} ({kind} {code}: redirects are not followed)")
    if not 200 <= code < 300:
        raise SourceUnavailable(f"not a camera at {where} ({kind} {code})")
    if proto == "HTTP/":
        ctype = _header(head, "content-type")
        if ctype and not ctype.startswith(("multipart/", "image/", "video/", "application/octet-stream")):
            raise SourceUnavailable(f"not a camera at {where} (HTTP {code}, but not a video stream)")
    return None


def _first_image(conn: _Conn, head: bytes, body: bytes, where: str, t: float, max_side: int | None) -> None:
    """Wait for the first image (JPEG: its header, checked against ``max_side``) or video bytes."""
    ctype = _header(head, "content-type")
    jpeg = ctype.startswith(("multipart/", "image/jpeg", "image/jpg"))  # else any first bytes will do
    start, search_from = -1, 0
    while True:
        while jpeg and (start >= 0 or (start := body.find(b"\xff\xd8\xff", search_from)) >= 0):
            try:
                size = jpeg_size(body[start:])
            except BadJpeg:  # a false start (those bytes in a part's headers): look further
                search_from, start = start + 1, -1
                continue
            if size is None:
                break  # its header is not all here yet
            w, h = size
            if max_side is not None and max(w, h) > max_side:
                raise SourceUnavailable(
                    f"camera at {where}: frames of {w}x{h} exceed max_frame_side {max_side}"
                )
            return
        if not jpeg and body:
            return  # a video stream: its first bytes came
        if len(body) > MAX_FIRST_IMAGE_SEARCH:
            raise SourceUnavailable(f"not a camera at {where} (no image in its first {len(body)} bytes)")
        chunk = conn.recv()
        if chunk is None:
            raise SourceUnavailable(f"camera at {where} sent no image within {t:g}s")
        if not chunk:
            raise SourceUnavailable(f"camera at {where} closed the stream before its first image")
        body += chunk
