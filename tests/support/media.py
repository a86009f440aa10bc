"""Test media made from ../shared/media: longer H.264 clips (remuxed, not re-encoded), y4m files."""

from __future__ import annotations

from pathlib import Path

import av
import cv2
import numpy as np


def repeat_clip(src: Path, dst: Path, times: int) -> Path:
    """Write ``times`` copies of ``src``'s video stream back to back into ``dst`` (MP4, same codec)."""
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        ist = inp.streams.video[0]
        ost = out.add_stream_from_template(ist)
        offset = 0
        for _ in range(times):
            inp.seek(0)
            last = 0
            step = 0
            for pkt in inp.demux(ist):
                if pkt.dts is None:
                    continue
                step = pkt.duration or step
                last = max(last, pkt.pts + (pkt.duration or 0))
                pkt.pts += offset
                pkt.dts += offset
                pkt.stream = ost
                out.mux(pkt)
            offset += last + step
    return dst


def read_frames(src: Path, n: int, step: int = 1) -> list[np.ndarray]:
    """The first ``n`` frames (every ``step``-th) of a video, as RGB arrays."""
    cap = cv2.VideoCapture(str(src))
    frames, i = [], 0
    while len(frames) < n:
        ok, bgr = cap.read()
        if not ok:
            break
        if i % step == 0:
            frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
        i += 1
    cap.release()
    return frames


def write_y4m(frames: list[np.ndarray], dst: Path, fps: int = 15) -> Path:
    """A YUV4MPEG2 (4:2:0) file, as Chromium's fake camera reads it."""
    h, w = frames[0].shape[:2]
    with open(dst, "wb") as f:
        f.write(f"YUV4MPEG2 W{w} H{h} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for rgb in frames:
            yuv = cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420)
            f.write(b"FRAME\n")
            f.write(yuv.tobytes())
    return dst


def encode_clip(frames: list[np.ndarray], dst: Path, fps: int = 30) -> Path:
    """Encode RGB frames as H.264 in MP4 (libx264 from PyAV's FFmpeg)."""
    h, w = frames[0].shape[:2]
    with av.open(str(dst), "w") as out:
        st = out.add_stream("libx264", rate=fps)
        st.width, st.height, st.pix_fmt = w, h, "yuv420p"
        st.options = {"preset": "ultrafast", "tune": "zerolatency", "g": str(fps)}
        for rgb in frames:
            for pkt in st.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                out.mux(pkt)
        for pkt in st.encode():
            out.mux(pkt)
    return dst
