"""Hiding credentials in URLs and in text that may quote them (errors, logs, answers, the page).

One function for every place a camera URL is shown. It hides:
- the whole userinfo (``user:pass@``), where the password itself may hold ``@``, ``:``, ``/``,
  ``?`` or ``#`` (the userinfo runs to the last ``@`` that a host follows);
- the values of credential-looking query parameters (``?user=admin&pwd=...``), common on
  MJPEG cameras.
"""

from __future__ import annotations

import re

MASK = "***"
# query parameter names that carry credentials on cameras and APIs (matched case-insensitively,
# as a whole name or with a common prefix/suffix such as ``api_key`` or ``auth_token``)
SECRET_PARAM = re.compile(
    r"(^|[_.-])(user|username|usr|login|pass|passwd|password|pwd|pw|psw|token|access_token|"
    r"auth|authorization|key|apikey|api_key|secret|credential|credentials|sig|signature|session|sid)"
    r"($|[_.-])",
    re.IGNORECASE,
)
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")
# an '@' followed by a host (name, IPv4 or [IPv6]) and maybe a port, then the end of the authority
_AT_HOST = re.compile(r"@(?=(?:[A-Za-z0-9._~%-]+|\[[0-9A-Fa-f:.]+\])(?::\d*)?(?:[/?#]|$))")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)(.*)$", re.DOTALL)


def _redact_query(query: str) -> str:
    parts = []
    for part in query.split("&"):
        name, eq, _value = part.partition("=")
        parts.append(f"{name}={MASK}" if eq and SECRET_PARAM.search(name) else part)
    return "&".join(parts)


def redact_url(url: str) -> str:
    """``rtsp://user:p@ss@host/x?pwd=1`` -> ``rtsp://***@host/x?pwd=***``."""
    m = _SCHEME.match(url)
    if m is None:
        return url
    scheme, rest = m.groups()
    # the userinfo runs to the last '@' that a host[:port] follows: a password may hold '@', ':',
    # '/', '?' or '#' unescaped (ending the authority early for a parser, but still a password).
    # An '@' later in a query with a host-like tail hides more than it must: never less.
    cut = max((i for i in _AT_HOST.finditer(rest)), key=lambda x: x.start(), default=None)
    if cut is not None:
        rest = MASK + "@" + rest[cut.start() + 1 :]
    end = len(rest)
    for sep in "?#":
        i = rest.find(sep)
        if i != -1:
            end = min(end, i)
    if rest[end : end + 1] == "?":
        head, query = rest[:end], rest[end + 1 :]
        query, hash_, frag = query.partition("#")
        rest = f"{head}?{_redact_query(query)}{hash_}{frag}"
    return scheme + rest


def redact_text(text: str) -> str:
    """Every URL inside ``text`` redacted (for exception messages and log lines)."""
    return _URL.sub(lambda m: redact_url(m.group(0)), text)
