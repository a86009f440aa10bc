"""Who may do what: the API token, and the per-client offer rate limit."""

from __future__ import annotations

import hmac
import re
import time
from collections import OrderedDict, deque
from urllib.parse import urlsplit

from aiohttp import web

OPEN_PATHS = ("/healthz", "/metrics", "/favicon.ico")


# where a browser cannot set a header (<img src>, EventSource), the token may come as ?token=
QUERY_TOKEN_PATH = re.compile(r"/streams/[^/]+/(mjpeg|events)")


def presented_token(request: web.Request) -> str:
    auth = request.headers.get("Authorization", "")
    if auth.startswith("Bearer "):
        return auth[7:].strip()
    token = request.headers.get("X-API-Token", "")
    if not token and request.method == "GET" and QUERY_TOKEN_PATH.fullmatch(request.path):
        token = request.query.get("token", "")
    return token


def needs_token(request: web.Request) -> bool:
    """Everything but the page shell, health, metrics and static files needs the token when one is set."""
    path = request.path
    return not (path == "/" or path in OPEN_PATHS or path.startswith("/static/"))


def token_ok(expected: str, presented: str) -> bool:
    """Constant-time comparison; an empty expected token means no token is required."""
    if not expected:
        return True
    return hmac.compare_digest(expected.encode(), presented.encode())


class RateLimiter:
    """At most ``per_minute`` events per key in any 60 s window; remembers at most ``max_keys`` keys."""

    def __init__(self, per_minute: float, max_keys: int = 10_000) -> None:
        self.limit = max(1, int(per_minute))
        self.max_keys = max_keys
        self._events: OrderedDict[str, deque[float]] = OrderedDict()

    def allow(self, key: str, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        q = self._events.pop(key, None) or deque()
        while q and now - q[0] > 60.0:
            q.popleft()
        allowed = len(q) < self.limit
        if allowed:
            q.append(now)
        self._events[key] = q  # most recent last
        while len(self._events) > self.max_keys:
            self._events.popitem(last=False)
        return allowed

    def exhausted(self, key: str, now: float | None = None) -> bool:
        """Whether ``key`` has used up its events for now (records nothing)."""
        now = time.monotonic() if now is None else now
        q = self._events.get(key)
        return q is not None and sum(1 for t in q if now - t <= 60.0) >= self.limit


STATE_CHANGING = ("POST", "PUT", "PATCH", "DELETE")
WILDCARD_BINDS = ("0.0.0.0", "::", "")


def host_name(header: str) -> str:
    """``[::1]:8080`` -> ``::1``; ``Example.org:80`` -> ``example.org``."""
    h = header.strip().lower()
    if h.startswith("["):
        return h[1:].split("]", 1)[0]
    return h.rsplit(":", 1)[0] if h.count(":") == 1 else h


def host_allowed(header: str | None, bind_host: str, extra: list[str], loopback: tuple[str, ...]) -> bool:
    """Is a ``Host`` header one this service answers to? (Refuses DNS-rebinding names.)

    Loopback names and the bound host always are, plus ``extra``; bound to a wildcard address
    with no ``extra`` list, any name is (the API token is mandatory there).
    """
    if header is None:
        return True  # HTTP/1.0 clients; browsers always send Host
    if bind_host in WILDCARD_BINDS and not extra:
        return True
    allowed = {*loopback, bind_host.lower(), *(x.lower() for x in extra)}
    return host_name(header) in allowed


def cross_site_refusal(request: web.Request) -> tuple[int, str] | None:
    """(status, reason) when a state-changing request may come from another site's page, else None.

    A browser may send a cross-site ``text/plain`` or form POST without asking first; requiring
    ``application/json`` makes it ask (CORS preflight, which this service never grants), and an
    ``Origin`` other than the service's own is refused outright.
    """
    if request.method not in STATE_CHANGING:
        return None
    origin = request.headers.get("Origin")
    # host and port only: behind a TLS-terminating proxy the page is https and we see http
    if origin is not None and urlsplit(origin.strip()).netloc.lower() != request.host.lower():
        return 403, f"cross-origin request refused (Origin {origin[:100]!r} is not this service)"
    if request.method in ("POST", "PUT", "PATCH"):
        ctype = request.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
        photo = ctype in ("image/jpeg", "image/png") and request.path.startswith("/people/")
        if ctype != "application/json" and not photo:  # (photos: not a type a form can send)
            return 415, "Content-Type must be application/json"
    return None
