"""Issue 34, items 6 and 7: stream ids matched whole, passwords holding '#' or '?' hidden."""

from __future__ import annotations

import pytest

from streamer.config import ConfigError, SourceConfig, load_config
from streamer.redact import redact_text, redact_url

# --- 6: ids ending in a newline --------------------------------------------------------------------


def test_stream_ids_are_matched_whole() -> None:
    for bad in ("cam\n", "cam\r", "x" * 65, "", "a/b"):
        with pytest.raises(ValueError, match="id must be"):
            SourceConfig(id=bad, url="rtsp://cam/x")
    with pytest.raises(ConfigError, match="id must be"):
        load_config(None, {"sources": [{"id": "door\n", "url": "rtsp://cam/x"}]}, environ={})
    assert SourceConfig(id="door_1-b", url="rtsp://cam/x").id == "door_1-b"


# --- 7: passwords holding '#' or '?' ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "shown", "secret"),
    [
        ("rtsp://admin:pa#ss@10.0.0.5:554/live", "rtsp://***@10.0.0.5:554/live", "pa#ss"),
        ("rtsp://admin:pa?ss@cam/x", "rtsp://***@cam/x", "pa?ss"),
        ("rtsp://admin:p#a?s/s@[::1]:554/x?pwd=1", "rtsp://***@[::1]:554/x?pwd=***", "p#a?s/s"),
        ("rtsp://admin:x#y@cam", "rtsp://***@cam", "x#y"),
        ("http://cam/x?email=a@b.com&pwd=z", "http://cam/x?email=a@b.com&pwd=***", "pwd=z"),
    ],
)
def test_passwords_with_hash_or_question_mark_are_hidden(url: str, shown: str, secret: str) -> None:
    assert redact_url(url) == shown
    text = redact_text(f"source x: cannot open {url} (refused)")
    assert shown in text and secret not in text
