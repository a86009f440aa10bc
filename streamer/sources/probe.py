"""A quick look at a network camera before OpenCV opens it, with a reason when it is not usable.

OpenCV's FFmpeg backend opens one capture at a time (a process-wide lock), so a camera that
accepts the connection and then stays silent would hold up every other source for
``open_timeout_s``. The probe runs in the source's own thread without that lock: only a camera
that answers like a stream reaches OpenCV. It also tells the failures apart (refused, timeout,
silence, not a stream, credentials refused), which OpenCV reports all alike.
"""

from __future__ import annotations

import socket
import ssl
import time
from urllib.parse import urlsplit

from streamer.redact import redact_url

DEFAULT_PORTS = {"rtsp": 554, "rtsps": 322, "http": 80, "https": 443}
MAX_HEAD = 8192


class SourceUnavailable(OSError):
    """The camera cannot be used; the message says why, without credentials."""


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


def _read_head(sock: socket.socket, deadline: float) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data and len(data) < MAX_HEAD:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        sock.settimeout(left)
        try:
            chunk = sock.recv(MAX_HEAD)
        except TimeoutError:
            break
        if not chunk:
            break
        data += chunk
    return data


def probe(url: str, timeout_s: float) -> str | None:
    """Raise SourceUnavailable unless ``url`` answers like an RTSP or HTTP video stream in time.

    Returns a note for OpenCV's error if it still fails (the camera asked for credentials), else None.
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
    deadline = time.monotonic() + timeout_s
    try:
        sock = socket.create_connection((host, port), timeout=timeout_s)
    except ConnectionRefusedError as e:
        raise SourceUnavailable(f"connection refused by {host}:{port}") from e
    except TimeoutError as e:
        raise SourceUnavailable(f"no connection to {host}:{port} within {timeout_s:g}s") from e
    except socket.gaierror as e:
        raise SourceUnavailable(f"cannot resolve host {host!r}") from e
    except OSError as e:
        raise SourceUnavailable(f"cannot connect to {host}:{port}: {e.strerror or e}") from e
    try:
        if scheme in ("rtsps", "https"):
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE  # as FFmpeg does by default; this is only a probe
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                sock = ctx.wrap_socket(sock, server_hostname=host)
            except (ssl.SSLError, TimeoutError, OSError) as e:
                raise SourceUnavailable(f"TLS handshake with {host}:{port} failed: {e}") from e
        req, proto = _request(scheme, url)
        try:
            sock.sendall(req)
            head = _read_head(sock, deadline)
        except OSError as e:
            raise SourceUnavailable(f"{host}:{port} closed the connection: {e.strerror or e}") from e
    finally:
        sock.close()
    return _judge(head, proto, scheme, bool(parts.username or parts.password), host, port, timeout_s)


def _judge(
    head: bytes, proto: str, scheme: str, has_creds: bool, host: str, port: int, t: float
) -> str | None:
    where = f"{host}:{port}"
    if not head:
        raise SourceUnavailable(f"{where} accepted the connection but sent nothing within {t:g}s")
    line = head.split(b"\r\n", 1)[0].decode("latin-1", "replace")
    if not line.startswith(proto):
        kind = "an RTSP" if proto == "RTSP/" else "an HTTP"
        raise SourceUnavailable(f"{where} is not {kind} server (it answered {line[:40]!r})")
    fields = line.split(" ", 2)
    code = int(fields[1]) if len(fields) > 1 and fields[1].isdigit() else 0
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
    if code >= 400 or code == 0:
        raise SourceUnavailable(f"{where} answered {line[:60]!r}")
    if proto == "HTTP/" and 200 <= code < 300:
        ctype = ""
        for h in head.split(b"\r\n")[1:]:
            name, _, value = h.decode("latin-1", "replace").partition(":")
            if name.strip().lower() == "content-type":
                ctype = value.strip().lower()
        if ctype and not ctype.startswith(("multipart/", "image/", "video/", "application/octet-stream")):
            raise SourceUnavailable(f"{where} is not a video stream (Content-Type {ctype.split(';')[0]})")
    return None
