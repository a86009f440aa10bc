"""A closer look where a drawn box lies on no reference face: is there a face the reference missed?

The reference (reference.py) is the detector on the whole frame at the clip's resolution. It
misses faces near its threshold on some frames: a small face it found on the reference frames
before, a face half turned. A box the service draws on such a face is on a face, not on "no
face". So each drawn box that overlaps no reference box (IoU under scoring.OFF_FACE_IOU, from
scoring.FROM_S on) gets a second look: the same detector, at the clip's upsample, on the box with
a box width around it, enlarged so the face is at least CLOSER_PX wide (at most MAX_ZOOM times).
The faces it finds there are the reference's misses (``score_real``'s ``closer``): a drawn box on
one is counted as on a face the reference missed (``boxes_on_unreferenced_faces``), not off
face; recall is not changed. The looks are cached in ``.cache/real/<clip>-closer-up<U>.json`` by
frame and box.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from benchmarks.real.reference import CACHE, ROOT, RealClip, clip_info
from benchmarks.scoring import FROM_S, OFF_FACE_IOU, xyxy
from streamer.track.matching import iou_matrix
from streamer.types import Box

CLOSER_PX = 80  # the face is looked at at least this wide
MAX_ZOOM = 3.0


def off_reference(
    lines: list[dict[str, Any]], ref: dict[int, list[Box]], clip: RealClip
) -> dict[int, list[tuple]]:
    """Reference frame -> the drawn boxes wholly inside the frame that overlap no reference box."""
    fps, _, w, h = clip_info(clip.path)
    shown = {int(d["frame"]): d["faces"] for d in lines}
    out: dict[int, list[tuple]] = {}
    for n, truth in ref.items():
        if n / fps < FROM_S or not shown.get(n):
            continue
        boxes = [
            b for b in (xyxy(d) for d in shown[n]) if b[0] >= 0 and b[1] >= 0 and b[2] <= w and b[3] <= h
        ]
        near = (
            iou_matrix([xyxy(b) for b in truth], boxes).max(axis=0)
            if truth and boxes
            else np.zeros(len(boxes))
        )
        if off := [b for b, v in zip(boxes, near, strict=True) if v < OFF_FACE_IOU]:
            out[n] = off
    return out


def closer_look(
    clip: RealClip, lines: list[dict[str, Any]], ref: dict[int, list[Box]], cache: Path = CACHE
) -> dict[int, list[Box]]:
    """Reference frame -> the faces the detector finds on a closer look at the drawn boxes there
    that overlap no reference box."""
    todo = off_reference(lines, ref, clip)
    path = cache / f"{clip.stem}-closer-up{clip.upsample}.json"
    done: dict[str, list[list[float]]] = json.loads(path.read_text()) if path.exists() else {}
    key = lambda n, b: f"{n}:{','.join(map(str, b))}"  # noqa: E731
    want = {n: [b for b in bs if key(n, b) not in done] for n, bs in todo.items()}
    want = {n: bs for n, bs in want.items() if bs}
    if want:
        from streamer.annotate import build_engine
        from streamer.config import load_config

        cfg = load_config(ROOT / "config.toml", environ={})
        detector = build_engine(cfg.model_copy(update={"classifiers": []})).detector
        cap = cv2.VideoCapture(str(clip.path))
        n = 0
        while n <= max(want):
            ok, bgr = cap.read()
            if not ok:
                break
            for b in want.get(n, []):
                done[key(n, b)] = _look(detector, bgr, b, clip.upsample)
            n += 1
        cap.release()
        cache.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(done))
    return {
        n: [Box(*map(round, f[:4]), f[4]) for b in bs for f in done.get(key(n, b), [])]
        for n, bs in todo.items()
    }


def _look(detector: Any, bgr: np.ndarray, b: tuple, upsample: int) -> list[list[float]]:
    """The faces the detector finds around box ``b`` (x0, y0, x1, y1) enlarged, in frame pixels."""
    h, w = bgr.shape[:2]
    bw = b[2] - b[0] + 1
    x0, y0, x1, y1 = max(0, b[0] - bw), max(0, b[1] - bw), min(w, b[2] + bw + 1), min(h, b[3] + bw + 1)
    s = min(MAX_ZOOM, max(1.0, CLOSER_PX / bw))
    crop = cv2.resize(bgr[y0:y1, x0:x1], None, fx=s, fy=s, interpolation=cv2.INTER_LINEAR)
    (found,) = detector.detect([np.ascontiguousarray(cv2.cvtColor(crop, cv2.COLOR_BGR2RGB))], upsample)
    found = [f for f in found if not f.weak]  # (faces: the weak ones only keep tracks)
    return [
        [f.left / s + x0, f.top / s + y0, f.right / s + x0, f.bottom / s + y0, round(float(f.confidence), 4)]
        for f in found
    ]
