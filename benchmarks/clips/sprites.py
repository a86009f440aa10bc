"""People cut out of photos (head and shoulders on a drawn torso), for the street clips.

Each cut-out's face box is found again on the cut-out by the detector, so a sprite drawn at any
size and place carries its exact face box with it.
"""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from benchmarks.clips.truth import read_rgb
from streamer.types import Box

VERSION = 1  # bump when the people change: cached sprites and clips are then made again


@dataclass
class Sprite:
    """A person cut out of a photo: RGBA uint8 (soft alpha) and the face's box in its pixels."""

    rgba: np.ndarray
    face: tuple[float, float, float, float]  # left, top, right + 1, bottom + 1
    max_w: float  # widest face it may be drawn at (no more than 1.5x upscaled)

    @property
    def face_w(self) -> float:
        return self.face[2] - self.face[0]


def _ellipse_mask(
    shape: tuple[int, int], ellipses: Sequence[tuple[float, float, float, float]]
) -> np.ndarray:
    m = np.zeros(shape, np.float32)
    for cx, cy, ax, ay in ellipses:
        cv2.ellipse(m, (round(cx), round(cy)), (max(1, round(ax)), max(1, round(ay))), 0, 0, 360, 1.0, -1)
    return m


def _cut_person(photo: np.ndarray, box: Box, rng: np.random.Generator) -> tuple[np.ndarray, tuple]:
    """Head and shoulders around ``box`` with a soft mask, on a drawn torso. Returns (rgba, face box)."""
    w, h = box.width, box.height
    cx = (box.left + box.right + 1) / 2
    pad_x, above, below = 1.2 * w, 0.7 * h, 3.4 * h
    sw, sh = round(2 * pad_x), round(above + h + below)
    x0, y0 = round(cx - pad_x), round(box.top - above)
    big = cv2.copyMakeBorder(photo, sh, sh, sw, sw, cv2.BORDER_REPLICATE)
    region = big[y0 + sh : y0 + 2 * sh, x0 + sw : x0 + 2 * sw].astype(np.float32)
    fl, ft = box.left - x0, box.top - y0
    fcx, fcy = fl + w / 2, ft + h / 2
    # the head and a neck; shoulders come from the drawn torso (in a crowd photo, the photo's
    # shoulders would bring the heads of the row in front along)
    head = _ellipse_mask(
        (sh, sw), [(fcx, fcy - 0.1 * h, 0.72 * w, 0.95 * h), (fcx, ft + 1.2 * h, 0.45 * w, 0.35 * h)]
    )
    head = cv2.GaussianBlur(head, (0, 0), max(1.0, 0.06 * w))
    # the torso: a garment of one colour with some shading, under the cut-out's shoulders
    colour = rng.uniform(30, 200, 3).astype(np.float32)
    torso_top = ft + 1.3 * h
    body = _ellipse_mask((sh, sw), [(fcx, torso_top + 0.35 * h, 1.05 * w, 0.45 * h)])
    cv2.rectangle(
        body, (round(fcx - 0.95 * w), round(torso_top + 0.35 * h)), (round(fcx + 0.95 * w), sh), 1.0, -1
    )
    body = cv2.GaussianBlur(body, (0, 0), max(1.0, 0.05 * w))
    shade = np.linspace(1.1, 0.75, sh, dtype=np.float32)[:, None, None]
    texture = rng.normal(1.0, 0.04, (sh // 8 + 1, sw // 8 + 1, 1)).astype(np.float32)
    texture = cv2.resize(texture, (sw, sh), interpolation=cv2.INTER_LINEAR)[:, :, None]
    garment = np.clip(colour * shade * texture, 0, 255)
    alpha = np.maximum(head, body)[:, :, None]
    rgb = region * head[:, :, None] + garment * (1 - head[:, :, None])
    rgba = np.concatenate([rgb, alpha * 255], axis=2)
    return np.clip(np.round(rgba), 0, 255).astype(np.uint8), (fl, ft, fl + w, ft + h)


def _grey_composite(rgba: np.ndarray, margin: int) -> np.ndarray:
    a = rgba[:, :, 3:] / 255.0
    rgb = rgba[:, :, :3] * a + 118.0 * (1 - a)
    return cv2.copyMakeBorder(
        np.clip(rgb, 0, 255).astype(np.uint8), *[margin] * 4, cv2.BORDER_CONSTANT, value=(118,) * 3
    )


def _iou(a: Sequence[float], b: Sequence[float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _sprite(photo: np.ndarray, box: Box, detector, rng: np.random.Generator) -> Sprite | None:
    """The cut-out of one face, its box found again on the cut-out; None unless exactly that face."""
    rgba, face = _cut_person(photo, box, rng)
    # found again on the cut-out's head (the torso holds no face), scaled so the face is about
    # 100 px at upsample 0 (or left as it is at upsample 1 when smaller): what 40-140 px faces look like
    head = _grey_composite(rgba[: round(face[3] + 0.6 * box.height)], round(0.5 * box.width))
    k = min(1.0, 100.0 / box.width)
    if k < 1.0:
        head = cv2.resize(head, None, fx=k, fy=k, interpolation=cv2.INTER_AREA)
    found = detector.detect([head], 0 if box.width * k >= 90 else 1)[0]
    if len(found) != 1:
        return None
    b, margin = found[0], round(0.5 * box.width)
    kx = (head.shape[1] / (rgba.shape[1] + 2 * margin)) if k < 1.0 else 1.0
    ky = (head.shape[0] / (round(face[3] + 0.6 * box.height) + 2 * margin)) if k < 1.0 else 1.0
    got = (
        b.left / kx - margin,
        b.top / ky - margin,
        (b.right + 1) / kx - margin,
        (b.bottom + 1) / ky - margin,
    )
    if _iou(got, face) < 0.5:
        return None
    return Sprite(rgba, got, 1.5 * (got[2] - got[0]))


BIG_FACE_PHOTOS = ("data/dlib_faces/bald_guys.jpg", "media/two_people.jpg", "media/obama-720p.jpg")


def build_sprites(shared: Path, detector, seed: int, lite: bool = False) -> tuple[list[Sprite], list[Sprite]]:
    """(people with big source faces, people from CelebA crops), each checked by the detector."""
    rng = np.random.default_rng(1000 + seed)
    big: list[Sprite] = []
    celeba = 12 if lite else 48
    for rel in BIG_FACE_PHOTOS[1:] if lite else BIG_FACE_PHOTOS:  # lite: not the 24 of bald_guys.jpg
        photo = read_rgb(shared / rel)
        for box in detector.detect([photo], 0)[0]:
            s = _sprite(photo, box, detector, rng)
            if s is not None:
                big.append(s)
    tom = read_rgb(shared / "data/dlib_faces/Tom_Cruise_avp_2014_4.jpg")
    tom = cv2.resize(tom, None, fx=0.45, fy=0.45, interpolation=cv2.INTER_AREA)
    for box in detector.detect([tom], 0)[0]:
        s = _sprite(tom, box, detector, rng)
        if s is not None:
            big.append(s)
    small: list[Sprite] = []
    names = sorted((shared / "data/celeba/images").glob("*.jpg"))
    for k in rng.choice(len(names), size=min(celeba, len(names)), replace=False):
        crop = read_rgb(names[int(k)])
        padded = cv2.copyMakeBorder(crop, 40, 40, 40, 40, cv2.BORDER_REPLICATE)
        found = detector.detect([padded], 1)[0]
        if len(found) != 1:
            continue
        b = found[0]
        box = Box(b.left - 40, b.top - 40, b.right - 40, b.bottom - 40, b.confidence)
        s = _sprite(crop, box, detector, rng)
        if s is not None:
            small.append(s)
    return big, small


def draw_sprite(frame: np.ndarray, sprite: Sprite, face_w: float, cx: float, cy: float) -> tuple | None:
    """Blend ``sprite`` into ``frame`` so its face is ``face_w`` wide and centred at (cx, cy).

    Returns (face box in frame pixels as floats, the drawn rect (x0, y0, x1, y1), the alpha drawn)
    or None when nothing of it is in the frame.
    """
    k = face_w / sprite.face_w
    sh, sw = sprite.rgba.shape[:2]
    w, h = max(1, round(sw * k)), max(1, round(sh * k))
    kx, ky = w / sw, h / sh
    fl, ft, fr, fb = sprite.face
    x0 = round(cx - (fl + fr) / 2 * kx)
    y0 = round(cy - (ft + fb) / 2 * ky)
    face = (x0 + fl * kx, y0 + ft * ky, x0 + fr * kx, y0 + fb * ky)
    H, W = frame.shape[:2]
    cx0, cy0, cx1, cy1 = max(0, x0), max(0, y0), min(W, x0 + w), min(H, y0 + h)
    if cx0 >= cx1 or cy0 >= cy1:
        return None
    interp = cv2.INTER_AREA if k < 1 else cv2.INTER_LINEAR
    img = cv2.resize(sprite.rgba, (w, h), interpolation=interp)[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0]
    img = img.astype(np.float32)
    a = img[:, :, 3:] / 255.0
    dst = frame[cy0:cy1, cx0:cx1]
    dst[:] = np.clip(dst * (1 - a) + img[:, :, :3] * a, 0, 255)
    return face, (cx0, cy0, cx1, cy1), a[:, :, 0]


def cached_sprites(
    shared: Path, detector, seed: int, cache: Path, lite: bool = False
) -> tuple[list[Sprite], list[Sprite]]:
    path = cache / f"sprites-s{seed}{'-lite' if lite else ''}-v{VERSION}.pkl"
    if path.exists():
        with open(path, "rb") as f:
            return pickle.load(f)  # our own cache
    got = build_sprites(shared, detector, seed, lite)
    cache.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump(got, f)
    return got
