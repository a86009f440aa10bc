"""The held-out part of a real clip (benchmarks/real/segment.py): cut without re-encoding, so its
frames are the source's own pixels, from a key frame at or after the start asked for."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from benchmarks.real.segment import cut, start_of

DEMO = Path(__file__).resolve().parents[1] / "streamer" / "assets" / "demo.mp4"


def _frames(path: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    out = []
    while True:
        ok, bgr = cap.read()
        if not ok:
            return out
        out.append(bgr)


def test_a_part_is_the_source_from_a_key_frame_after_its_start_pixel_for_pixel(tmp_path: Path) -> None:
    part = tmp_path / "demo-rest.mp4"
    at = cut(DEMO, part, 3.0)
    assert at >= 3.0 and start_of(part) == pytest.approx(at, abs=1e-3)
    src, got = _frames(DEMO), _frames(part)
    k = len(src) - len(got)  # the part is the source's last frames ...
    assert 0 < k < len(src) - 10
    # ... exactly: no re-encoding (a re-encoded copy differs by several levels somewhere)
    assert all(np.array_equal(src[k + i], got[i]) for i in range(len(got)))
    assert not np.array_equal(src[k - 1], got[0])


def test_a_start_past_the_last_key_frame_is_an_error_and_leaves_no_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no key frame"):
        cut(DEMO, tmp_path / "late.mp4", 1000.0)
    assert not list(tmp_path.iterdir())
