"""Hiding credentials in URLs and in text that may quote them (errors, logs, answers, the page).

One function for every place a camera URL is shown. It hides:
- the whole userinfo (``user:pass@``), where the password itself may hold ``@`` or ``:``
  (the userinfo runs to the last ``@`` before the path);
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
    # the authority ends at the first '/', '?' or '#'; its userinfo at the last '@' inside it
    end = len(rest)
    for sep in "/?#":
        i = rest.find(sep)
        if i != -1:
            end = min(end, i)
    authority, tail = rest[:end], rest[end:]
    if "@" in authority:
        authority = MASK + "@" + authority.rsplit("@", 1)[1]
    elif "@" in tail.split("?", 1)[0].split("#", 1)[0]:
        # an unescaped '/' in the password ends the authority early: hide up to the last '@' of the path
        path = tail.split("?", 1)[0].split("#", 1)[0]
        authority, tail = MASK + "@" + path.rsplit("@", 1)[1], tail[len(path) :]
    if "?" in tail:
        path, _, query = tail.partition("?")
        query, hash_, frag = query.partition("#")
        tail = f"{path}?{_redact_query(query)}{hash_}{frag}"
    return scheme + authority + tail


def redact_text(text: str) -> str:
    """Every URL inside ``text`` redacted (for exception messages and log lines)."""
    return _URL.sub(lambda m: redact_url(m.group(0)), text)
