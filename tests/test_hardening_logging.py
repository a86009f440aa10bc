"""Issue 34: the service's log cannot be forged (item 5) or flooded (item 1); TensorFlow's start-up
notices stay out of it, its errors do not."""

from __future__ import annotations

import io
import logging
import os
import sys

import pytest

from streamer.logsafe import RateLimit, SafeFormatter, escape_controls

FORGED = "rtsp://cam/x\r\n2026-01-01 00:00:00,000 ERROR streamer: disk on fire"


def test_log_lines_cannot_be_forged() -> None:
    """Whatever a message holds (a URL from the API, a config file, an exception), it is one line."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(SafeFormatter("%(levelname)s %(name)s: %(message)s"))
    log = logging.getLogger("test.forging")
    log.addHandler(handler)
    log.propagate = False
    try:
        log.warning("source %s: cannot open %s", "cam", FORGED)
        try:
            raise ValueError(f"bad url {FORGED}")
        except ValueError:
            log.exception("failed")
    finally:
        log.removeHandler(handler)
    lines = out.getvalue().splitlines()
    assert lines[0] == "WARNING test.forging: source cam: cannot open " + escape_controls(FORGED)
    assert "\\r\\n2026-01-01" in lines[0]
    assert lines[1] == "ERROR test.forging: failed"
    assert all(line.startswith("  ") for line in lines[2:]), lines  # the traceback, indented
    assert not any(line.startswith("2026-01-01") for line in lines)
    assert escape_controls("a\x00b\x1bc\x7fd\x9be\tf") == "a\\x00b\\x1bc\\x7fd\\x9be\tf"


def test_the_service_logs_through_the_safe_formatter(monkeypatch: pytest.MonkeyPatch) -> None:
    """`streamer` sets up logging with the formatter and the rate limit on its handler."""
    from streamer import cli

    root = logging.getLogger()
    saved = root.handlers[:], root.level
    root.handlers = []
    try:
        monkeypatch.setattr(sys, "stderr", io.StringIO())
        cli._setup_logging(False)
        (h,) = root.handlers
        assert isinstance(h.formatter, SafeFormatter)
        assert any(isinstance(f, RateLimit) for f in h.filters)
        logging.getLogger("streamer.test").warning("url %s", FORGED)
        text = sys.stderr.getvalue()
        assert text.count("\n") == 1 and "\\r\\n" in text
    finally:
        root.handlers, _ = saved
        root.setLevel(saved[1])


def test_rate_limit_keeps_a_flood_of_one_record_to_a_few_lines() -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(SafeFormatter("%(levelname)s %(message)s"))
    limit = RateLimit(per_key=20, window_s=3600, per_second=50)
    handler.addFilter(limit)
    log = logging.getLogger("test.flood")
    log.addHandler(handler)
    log.propagate = False
    try:
        for i in range(10_000):
            log.error("refused connection %d", i)
        log.warning("something else")
        err = OSError(24, "Too many open files")
        rec = logging.LogRecord(
            "asyncio",
            logging.ERROR,
            __file__,
            1,
            "socket.accept() out of system resource",
            None,
            (OSError, err, None),
        )
        handler.handle(rec)
    finally:
        log.removeHandler(handler)
    lines = out.getvalue().splitlines()
    assert len(lines) == 22, lines[-3:]
    assert "9980 records left out" in lines[20]
    assert lines[21].startswith("WARNING cannot accept a connection: Too many open files")
    assert "Traceback" not in out.getvalue()


def test_tensorflow_start_up_notices_are_dropped_and_errors_kept(capfd: pytest.CaptureFixture[str]) -> None:
    """What TensorFlow's import writes to fd 2: absl's and oneDNN's notices are dropped, anything
    else (a C++ error, a Python traceback) is passed on, also when the import fails."""
    from streamer.quiet import stderr_filtered

    notices = (
        b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
        b"I0000 00:00:1796545193.131821   15568 port.cc:153] oneDNN custom operations are on. ...\n"
        b"W0000 00:00:1796545193.131900   15568 cpu_feature_guard.cc:40] a notice\n"
    )
    error = b"E0000 00:00:1796545193.132000   15568 loader.cc:7] could not load a library\n"
    with pytest.raises(ImportError), stderr_filtered():
        os.write(2, notices + error + b"Traceback (most recent call last): ...\n")
        raise ImportError("no such module")
    err = capfd.readouterr().err
    assert err == error.decode() + "Traceback (most recent call last): ...\n"
