"""Reading and writing video files: RGB frames out of a clip, H.264 clips out of RGB frames."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np

RESOLUTIONS = {
    "240p": (426, 240),
    "360p": (640, 360),
    "480p": (854, 480),
    "720p": (1280, 720),
    "1080p": (1920, 1080),
}


def read_frames(path: Path, n: int = 10**9, start: int = 0, step: int = 1) -> list[np.ndarray]:
    """Up to ``n`` RGB frames of ``path``: frame ``start``, then every ``step``-th after it."""
    cap = cv2.VideoCapture(str(path))
    frames: list[np.ndarray] = []
    i = 0
    while len(frames) < n:
        ok, bgr = cap.read()
        if not ok:
            break
        if i >= start and (i - start) % step == 0:
            frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
        i += 1
    cap.release()
    return frames


def read_frames_at(path: Path, wanted: set[int]) -> dict[int, np.ndarray]:
    """The decoded RGB frames of ``path`` with those indexes (what a viewer of the file gets)."""
    cap = cv2.VideoCapture(str(path))
    got: dict[int, np.ndarray] = {}
    n = 0
    while len(got) < len(wanted):
        ok, bgr = cap.read()
        if not ok:
            break
        if n in wanted:
            got[n] = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        n += 1
    cap.release()
    return got


def video_fps(path: Path) -> float:
    cap = cv2.VideoCapture(str(path))
    fps = cap.get(cv2.CAP_PROP_FPS)
    cap.release()
    return fps if 1.0 <= fps <= 240.0 else 30.0


def write_h264(
    dst: Path, frames: Iterable[np.ndarray], fps: float, size: tuple[int, int], options: dict[str, str]
) -> None:
    """``frames`` (RGB, ``size`` = (w, h)) as an H.264 file via PyAV, with these libx264 options."""
    import av

    with av.open(str(dst), "w") as out:
        st = out.add_stream("libx264", rate=fps)
        st.width, st.height, st.pix_fmt = size[0], size[1], "yuv420p"
        st.options = options
        for rgb in frames:
            for pkt in st.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                out.mux(pkt)
        for pkt in st.encode():
            out.mux(pkt)


def scaled_video(src: Path, res: str, out_dir: Path, max_frames: int = 150) -> Path:
    """``src`` resized to ``res`` ("240p".."1080p" or "WxH"): H.264, stretched, not letterboxed."""
    w, h = RESOLUTIONS[res] if res in RESOLUTIONS else (int(v) for v in res.lower().split("x"))
    dst = out_dir / f"{src.stem}-{res}.mp4"
    if dst.exists():
        return dst
    frames = (cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA) for rgb in read_frames(src, max_frames))
    write_h264(dst, frames, round(video_fps(src)), (w, h), {"preset": "ultrafast", "tune": "zerolatency"})
    return dst
