"""The service's log, safe from its inputs: no forged lines, no flood.

- ``SafeFormatter`` escapes control characters in every message (``\\r``, ``\\n``, ``\\x1b``...), so a
  camera URL, a stream id or an exception text cannot start a line of its own; a traceback keeps
  its lines but each is indented, so none of them can pass for a log line either.
- ``RateLimit`` lets at most ``per_key`` records of one kind (logger, level, message template)
  through per ``window_s``, and at most ``per_second`` of all kinds together; the next record let
  through says how many were left out. A flood of refused connections writes a few lines, not
  thousands a second.
- Running out of file descriptors in ``accept()`` is one WARNING line, not an ERROR traceback.
"""

from __future__ import annotations

import errno
import logging
import re
import time

_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")  # every C0/C1 control but TAB
_CONTROL_KEEP_NL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_NAMED = {"\n": "\\n", "\r": "\\r"}
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_OUT_OF_FILES = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)


def _esc(m: re.Match[str]) -> str:
    c = m.group(0)
    return _NAMED.get(c) or f"\\x{ord(c):02x}"


def escape_controls(text: str) -> str:
    """``"a\\r\\nb"`` -> ``"a\\\\r\\\\nb"``: the text on one line, every control character visible."""
    return _CONTROL.sub(_esc, text)


class SafeFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        record.message = escape_controls(record.getMessage())
        if self.usesTime():
            record.asctime = self.formatTime(record, self.datefmt)
        s = self.formatMessage(record)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        for block in (record.exc_text, record.stack_info and self.formatStack(record.stack_info)):
            if block:
                text = _CONTROL_KEEP_NL.sub(_esc, block)
                s += "\n" + "\n".join("  " + line for line in text.splitlines())
        return s


class RateLimit(logging.Filter):
    def __init__(self, per_key: int = 20, window_s: float = 10.0, per_second: float = 50.0) -> None:
        super().__init__()
        self.per_key, self.window_s = per_key, window_s
        self.rate = per_second
        self.tokens = self.burst = 4 * per_second
        self.last = time.monotonic()
        self._kinds: dict[tuple[str, int, str], list[float]] = {}  # kind -> [window start, count, left out]
        self.left_out = 0  # since the last record let through
        self.total_left_out = 0

    def filter(self, record: logging.LogRecord) -> bool:
        quiet_out_of_files(record)
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
        self.last = now
        key = (record.name, record.levelno, str(record.msg)[:120])
        st = self._kinds.get(key)
        if st is None or now - st[0] >= self.window_s:
            if len(self._kinds) > 2000:
                self._kinds.clear()
            st = self._kinds[key] = [now, 0, 0]
        st[1] += 1
        if st[1] > self.per_key or self.tokens < 1:
            self.left_out += 1
            self.total_left_out += 1
            return False
        self.tokens -= 1
        if self.left_out:
            record.msg = f"{record.getMessage()} [{self.left_out} records left out before this: rate limit]"
            record.args = None
            self.left_out = 0
        return True


def quiet_out_of_files(record: logging.LogRecord) -> None:
    """asyncio's "socket.accept() out of system resource" ERROR + traceback -> one WARNING line."""
    exc = record.exc_info[1] if record.exc_info else None
    if isinstance(exc, OSError) and exc.errno in _OUT_OF_FILES and record.name == "asyncio":
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        record.msg, record.args = "cannot accept a connection: %s (retrying in 1s)", (exc.strerror,)
        record.exc_info, record.exc_text = None, None


def install(level: int = logging.INFO) -> None:
    """Logging to stderr as ``logging.basicConfig`` sets it up, with safe formatting and the rate
    limit on its handler. Like basicConfig, nothing is changed if logging is already set up."""
    root = logging.getLogger()
    if root.handlers:
        return
    handler = logging.StreamHandler()
    handler.setFormatter(SafeFormatter(FORMAT))
    handler.addFilter(RateLimit())
    root.addHandler(handler)
    root.setLevel(level)
