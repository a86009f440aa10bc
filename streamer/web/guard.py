"""Who may do what: the API token, and the per-client offer rate limit."""

from __future__ import annotations

import hmac
import time
from collections import OrderedDict, deque

from aiohttp import web

OPEN_PATHS = ("/healthz", "/metrics", "/favicon.ico")


def presented_token(request: web.Request) -> str:
    auth = request.headers.get("Authorization", "")
    if auth.startswith("Bearer "):
        return auth[7:].strip()
    return request.headers.get("X-API-Token") or request.query.get("token", "")


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
