"""1080p 25 fps clips with exact per-frame face truth, for small faces in big frames (issue #13).

Two kinds, so that nothing is tuned to one clip:

- ``street``: a static camera looking down a street or hall. People (head-and-shoulders cut-outs
  of real photos, blended softly, on a drawn torso) walk towards the camera (faces grow from
  about 26 px to 140 px and leave at the bottom or side), cross it at one distance (40-95 px),
  or stand still. Nearer people hide farther ones: a face more than a quarter covered is marked
  not visible.
- ``group``: a slow virtual camera panning and zooming over a wall of group photos
  (``bald_guys.jpg``, 24 faces, in the middle; smaller photos around it), faces 35-120 px.

Truth: the detector's (MMOD's) own boxes on each source image, carried through the known
placement and scale, so it is exact wherever a face goes. ``validate`` checks it against MMOD at
``upsample = 1`` on whole decoded 1080p frames (seconds per frame).

    python -m benchmarks.street_clip [--out DIR] [--kinds street,group] [--seeds 1,2]
                                     [--seconds 20] [--validate 3]

Clips are cached in ``--out`` (default ``.cache/clips``, not in git) under a name that holds
every parameter; the same parameters give the same clip (seeded).
"""

from __future__ import annotations

import argparse
import json
import math
import pickle
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import cv2
import numpy as np

from streamer.types import Box

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
CACHE = ROOT / ".cache" / "clips"
VERSION = 1  # bump when the people change: cached sprites and clips are then made again
CLIP_VERSIONS = {"street": 1, "street-lite": 1, "group": 2}  # bump when a kind's rendering or truth changes
FPS = 25
SIZE = (1920, 1080)
MIN_FACE = 40  # the smallest face the issue asks for, in frame pixels

# Street geometry: a face d metres away is F / d pixels wide; its centre lies CAM_ABOVE_HEAD
# metres below the horizon and X metres beside the vanishing point, at w / FACE_M pixels per metre.
F = 800.0
FACE_M = 0.16
CAM_ABOVE_HEAD = 0.9


# ------------------------------------------------------------------------------------ truth


@dataclass(frozen=True)
class TruthFace:
    person: int
    box: Box
    visible: bool  # fully in the frame and at most a quarter hidden by nearer people

    @property
    def width(self) -> int:
        return self.box.width


@dataclass
class Clip:
    name: str
    path: Path
    fps: float
    size: tuple[int, int]
    truth: list[list[TruthFace]]  # per frame

    @property
    def seconds(self) -> float:
        return len(self.truth) / self.fps

    def scored(self, n: int, min_px: int = MIN_FACE) -> list[TruthFace]:
        """The faces of frame ``n`` a detector should find: visible and at least ``min_px`` wide."""
        return [f for f in self.truth[n] if f.visible and f.width >= min_px]


def _box_json(f: TruthFace) -> list[int]:
    b = f.box
    return [f.person, b.left, b.top, b.right, b.bottom, int(f.visible)]


def save_truth(clip: Clip, path: Path) -> None:
    data = {
        "name": clip.name,
        "fps": clip.fps,
        "size": list(clip.size),
        "format": "per frame: [person, left, top, right, bottom, visible] (dlib inclusive boxes)",
        "frames": [[_box_json(f) for f in faces] for faces in clip.truth],
    }
    path.write_text(json.dumps(data, separators=(",", ":")))


def load_clip(video: Path) -> Clip:
    data = json.loads(video.with_suffix(".truth.json").read_text())
    truth = [
        [
            TruthFace(p, Box(left, top, right, bottom, 1.0), bool(v))
            for p, left, top, right, bottom, v in faces
        ]
        for faces in data["frames"]
    ]
    return Clip(data["name"], video, float(data["fps"]), tuple(data["size"]), truth)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------ sprites


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


def _read_rgb(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path))
    if bgr is None:
        raise FileNotFoundError(path)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


BIG_FACE_PHOTOS = ("data/dlib_faces/bald_guys.jpg", "media/two_people.jpg", "media/obama-720p.jpg")


def build_sprites(shared: Path, detector, seed: int, lite: bool = False) -> tuple[list[Sprite], list[Sprite]]:
    """(people with big source faces, people from CelebA crops), each checked by the detector."""
    rng = np.random.default_rng(1000 + seed)
    big: list[Sprite] = []
    celeba = 12 if lite else 48
    for rel in BIG_FACE_PHOTOS[1:] if lite else BIG_FACE_PHOTOS:  # lite: not the 24 of bald_guys.jpg
        photo = _read_rgb(shared / rel)
        for box in detector.detect([photo], 0)[0]:
            s = _sprite(photo, box, detector, rng)
            if s is not None:
                big.append(s)
    tom = _read_rgb(shared / "data/dlib_faces/Tom_Cruise_avp_2014_4.jpg")
    tom = cv2.resize(tom, None, fx=0.45, fy=0.45, interpolation=cv2.INTER_AREA)
    for box in detector.detect([tom], 0)[0]:
        s = _sprite(tom, box, detector, rng)
        if s is not None:
            big.append(s)
    small: list[Sprite] = []
    names = sorted((shared / "data/celeba/images").glob("*.jpg"))
    for k in rng.choice(len(names), size=min(celeba, len(names)), replace=False):
        crop = _read_rgb(names[int(k)])
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


def as_box(face: tuple[float, float, float, float]) -> Box:
    return Box(round(face[0]), round(face[1]), round(face[2]) - 1, round(face[3]) - 1, 1.0)


def in_frame(b: Box, size: tuple[int, int]) -> bool:
    return b.left >= 0 and b.top >= 0 and b.right < size[0] and b.bottom < size[1]


# ------------------------------------------------------------------------------------ street


@dataclass
class Person:
    sprite: Sprite
    kind: str  # "approach", "cross", "stand"
    t0: float  # when it starts (may be before the clip)
    lateral: float  # metres beside the vanishing point (approach), or the crossing's start side (cross: -1/1)
    speed: float  # m/s
    width: float  # face width (cross, stand)
    x: float  # stand: where
    phase: float

    def at(self, t: float, horizon: float, vanish_x: float) -> tuple[float, float, float] | None:
        """(face width, face centre x, y) at ``t`` seconds, or None when not in the scene."""
        if t < self.t0:
            return None
        if self.kind == "approach":
            d = F / 26.0 - self.speed * (t - self.t0)
            if d <= 0:
                return None
            w = F / d
            if w > self.sprite.max_w:
                return None
            return w, vanish_x + self.lateral * w / FACE_M, horizon + CAM_ABOVE_HEAD * w / FACE_M
        y = horizon + CAM_ABOVE_HEAD * self.width / FACE_M
        if self.kind == "cross":
            px_s = self.speed * self.width / FACE_M
            x = -300 + px_s * (t - self.t0)
            if x > SIZE[0] + 300:
                return None
            return self.width, (x if self.lateral < 0 else SIZE[0] - x), y
        sway = 4.0 * math.sin(2 * math.pi * 0.4 * t + self.phase)
        bob = 2.0 * math.sin(2 * math.pi * 0.9 * t + self.phase)
        return self.width, self.x + sway, y + bob


def plan_street(
    big: list[Sprite], small: list[Sprite], seconds: float, rng: np.random.Generator
) -> list[Person]:
    people: list[Person] = []
    tall = [s for s in big if s.max_w >= 150]
    order = rng.permutation(len(tall))
    n_approach = min(len(tall), max(3, round(7 * seconds / 20)))
    starts = np.linspace(-9.0, max(-8.0, seconds - 7.0), n_approach) + rng.uniform(-1.5, 1.5, n_approach)
    for i in range(n_approach):
        side = rng.choice([-1, 1])
        people.append(
            Person(
                tall[order[i]],
                "approach",
                float(starts[i]),
                side * rng.uniform(0.1, 0.85),
                rng.uniform(1.1, 1.8),
                0,
                0,
                0,
            )
        )
    rest = [tall[k] for k in order[n_approach:]] + list(small)
    pick = rng.permutation(len(rest))
    n_cross = max(2, round(4 * seconds / 20))
    for i in range(n_cross):
        s = rest[pick[i]]
        w = rng.uniform(40, min(95, s.max_w))
        t0 = rng.uniform(-2.0, max(0.0, seconds - 4.0))
        people.append(Person(s, "cross", t0, rng.choice([-1, 1]), rng.uniform(0.8, 1.4), w, 0, 0))
    for j in range(3):
        s = rest[pick[n_cross + j]]
        w = rng.uniform(42, min(100, s.max_w))
        x = 150 + (j + rng.uniform(0.1, 0.9)) * (SIZE[0] - 300) / 3
        people.append(Person(s, "stand", -1.0, 0, 0, w, x, rng.uniform(0, 6.28)))
    return people


def street_background(shared: Path, rng: np.random.Generator, horizon: float, vanish_x: float) -> np.ndarray:
    """A blurred, upscaled photo without people (dlib's dogs) and a paved street to the horizon."""
    src = _read_rgb(shared / "data/dlib_faces/dogs.jpg")
    if rng.random() < 0.5:
        src = src[:, ::-1]
    W, H = SIZE
    k = max(W / src.shape[1], H / src.shape[0]) * rng.uniform(1.0, 1.3)
    big = cv2.resize(src, None, fx=k, fy=k, interpolation=cv2.INTER_CUBIC)
    ox, oy = int(rng.integers(0, big.shape[1] - W + 1)), int(rng.integers(0, big.shape[0] - H + 1))
    bg = cv2.GaussianBlur(big[oy : oy + H, ox : ox + W], (0, 0), 3.0).astype(np.float32) * 0.85
    street = np.full((H, W, 3), rng.uniform(90, 140), np.float32) * np.array([1.0, 0.98, 0.95], np.float32)
    for k in range(-8, 9):  # paving lines towards the vanishing point
        cv2.line(
            street, (round(vanish_x), round(horizon)), (round(vanish_x + k * 420), H + 400), (70, 70, 70), 3
        )
    ys = np.arange(H, dtype=np.float32)[:, None, None]
    ground = np.clip((ys - horizon) / 60.0, 0, 1)
    return bg * (1 - ground) + cv2.GaussianBlur(street, (0, 0), 1.2) * ground


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


def street_frames(
    shared: Path, detector, seed: int, seconds: float, cache: Path, lite: bool = False
) -> Iterator[tuple[np.ndarray, list[TruthFace]]]:
    rng = np.random.default_rng(seed)
    big, small = cached_sprites(shared, detector, seed, cache, lite)
    horizon, vanish_x = rng.uniform(250, 330), rng.uniform(800, 1120)
    bg = street_background(shared, rng, horizon, vanish_x)
    people = plan_street(big, small, seconds, rng)
    noise = _noise_bank(rng)
    for n in range(round(seconds * FPS)):
        t = n / FPS
        frame = bg.copy()
        now = [(i, p.at(t, horizon, vanish_x)) for i, p in enumerate(people)]
        drawn = []  # far to near
        for i, where in sorted(((i, w) for i, w in now if w), key=lambda iw: iw[1][0]):
            d = draw_sprite(frame, people[i].sprite, *where)
            if d is not None:
                drawn.append((i, *d))
        faces = []
        for k, (i, face, _, _) in enumerate(drawn):
            box = as_box(face)
            covered = _covered(face, [(r, a) for _, _, r, a in drawn[k + 1 :]])
            faces.append(TruthFace(i, box, in_frame(box, SIZE) and covered <= 0.25))
        yield _finish(frame, noise, n), faces


def _covered(face: tuple, nearer: list[tuple[tuple[int, int, int, int], np.ndarray]]) -> float:
    """Mean alpha that nearer sprites lay over the face box."""
    x0, y0, x1, y1 = (round(v) for v in face)
    if x1 <= x0 or y1 <= y0:
        return 1.0
    clear = np.ones((y1 - y0, x1 - x0), np.float32)
    for (rx0, ry0, rx1, ry1), a in nearer:
        ix0, iy0, ix1, iy1 = max(x0, rx0), max(y0, ry0), min(x1, rx1), min(y1, ry1)
        if ix0 < ix1 and iy0 < iy1:
            clear[iy0 - y0 : iy1 - y0, ix0 - x0 : ix1 - x0] *= (
                1 - a[iy0 - ry0 : iy1 - ry0, ix0 - rx0 : ix1 - rx0]
            )
    return float(1 - clear.mean())


def _noise_bank(rng: np.random.Generator, n: int = 12) -> list[np.ndarray]:
    """A few frames of camera noise (sigma 2), cycled: fresh noise per frame costs more than the rest."""
    return [rng.normal(0, 2.0, (SIZE[1], SIZE[0], 3)).astype(np.float32) for _ in range(n)]


def _finish(frame: np.ndarray, noise: list[np.ndarray], n: int) -> np.ndarray:
    return np.clip(frame + noise[(n * 7) % len(noise)], 0, 255).astype(np.uint8)


# ------------------------------------------------------------------------------------ group


CANVAS = (5200, 3000)
# photos hung around bald_guys.jpg: (path under shared, scale); their faces 80-170 px on the wall
POSTERS = (
    ("media/two_people.jpg", 1.0),
    ("media/obama-720p.jpg", 0.8),
    ("data/dlib_faces/2008_002506.jpg", 1.5),
    ("data/dlib_faces/2008_001322.jpg", 1.6),
    ("data/dlib_faces/2009_004587.jpg", 1.5),
    ("data/dlib_faces/2008_001009.jpg", 1.5),
    ("data/dlib_faces/2008_002079.jpg", 2.0),
    ("data/dlib_faces/2007_007763.jpg", 2.0),
)
SLOTS = (  # x, y, w, h on the wall, around the middle photo
    (100, 100, 1400, 900),
    (100, 1050, 1400, 900),
    (100, 2000, 1400, 900),
    (3700, 100, 1400, 900),
    (3700, 1050, 1400, 900),
    (3700, 2000, 1400, 900),
    (1620, 40, 1000, 660),
    (2620, 40, 960, 660),
    (1620, 2300, 1000, 660),
    (2620, 2300, 960, 660),
)


def _hang(wall: np.ndarray, photo: np.ndarray, x: int, y: int, feather: int = 24) -> None:
    h, w = photo.shape[:2]
    m = np.zeros((h, w), np.float32)
    m[feather:-feather, feather:-feather] = 1
    m = cv2.GaussianBlur(m, (0, 0), feather / 2)[:, :, None]
    dst = wall[y : y + h, x : x + w]
    dst[:] = dst * (1 - m) + photo * m


def build_wall(shared: Path, detector, rng: np.random.Generator) -> tuple[np.ndarray, list[Box]]:
    """The wall of photos (float32 RGB, CANVAS) and the detector's boxes of its faces."""
    middle = _read_rgb(shared / "data/dlib_faces/bald_guys.jpg")
    CW, CH = CANVAS
    wall = cv2.resize(cv2.GaussianBlur(middle, (0, 0), 12), CANVAS, interpolation=cv2.INTER_LINEAR)
    wall = cv2.GaussianBlur(wall, (0, 0), 20).astype(np.float32) * 0.7
    faces: list[Box] = []

    def hang(photo: np.ndarray, x: int, y: int) -> None:
        _hang(wall, photo.astype(np.float32), x, y)
        # upsample 1 finds the 40-80 px faces of the smaller photos too (the frame may show them at 40+)
        for b in detector.detect([photo], 1 if max(photo.shape) <= 1200 else 0)[0]:
            faces.append(Box(b.left + x, b.top + y, b.right + x, b.bottom + y, b.confidence))

    hang(middle, (CW - middle.shape[1]) // 2, (CH - middle.shape[0]) // 2)
    slots = [SLOTS[k] for k in rng.permutation(len(SLOTS))]
    for rel, scale in POSTERS:
        photo = _read_rgb(shared / rel)
        for k, (sx, sy, sw, sh) in enumerate(slots):
            fit = min(scale, sw / photo.shape[1], sh / photo.shape[0])
            if fit >= 0.8 * scale:
                p = cv2.resize(
                    photo, None, fx=fit, fy=fit, interpolation=cv2.INTER_CUBIC if fit > 1 else cv2.INTER_AREA
                )
                hang(p, sx + (sw - p.shape[1]) // 2, sy + (sh - p.shape[0]) // 2)
                slots.pop(k)
                break
    return wall, faces


@dataclass(frozen=True)
class GroupCamera:
    period: float = 40.0  # seconds of one pan cycle (the zoom cycles 1.5 times as fast)
    scale: tuple[float, float] = (0.38, 0.7)  # frame pixels per wall pixel, wide and tight end
    phase: float = 0.0

    def view(self, t: float) -> tuple[float, float, float]:
        """(scale, left, top) of the wall shown at ``t``: a slow zoom and a Lissajous pan."""
        u = 2 * math.pi * t / self.period + self.phase
        z = 0.5 - 0.5 * math.cos(u * 1.5)
        s = self.scale[0] + (self.scale[1] - self.scale[0]) * z
        vw, vh = SIZE[0] / s, SIZE[1] / s
        cx = CANVAS[0] / 2 + 0.5 * (CANVAS[0] - vw) * math.sin(u)
        cy = CANVAS[1] / 2 + 0.4 * (CANVAS[1] - vh) * math.sin(2 * u)
        return s, cx - vw / 2, cy - vh / 2


PRESCALE = 0.75  # the wall is kept at this scale (area-averaged), so each frame is a mild bilinear warp


def group_frames(
    shared: Path, detector, seed: int, seconds: float, cache: Path
) -> Iterator[tuple[np.ndarray, list[TruthFace]]]:
    rng = np.random.default_rng(seed)
    wall, faces = build_wall(shared, detector, rng)
    small_wall = np.clip(
        cv2.resize(wall, None, fx=PRESCALE, fy=PRESCALE, interpolation=cv2.INTER_AREA), 0, 255
    )
    small_wall = small_wall.astype(np.uint8)
    del wall
    cam = GroupCamera(phase=float(rng.uniform(0, 2 * math.pi)))
    noise = _noise_bank(rng)
    for n in range(round(seconds * FPS)):
        s, x, y = cam.view(n / FPS)
        k = s / PRESCALE
        m = np.array([[k, 0, -x * s], [0, k, -y * s]], np.float64)
        frame = cv2.warpAffine(small_wall, m, SIZE, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        truth = []
        for i, b in enumerate(faces):
            box = as_box(((b.left - x) * s, (b.top - y) * s, (b.right + 1 - x) * s, (b.bottom + 1 - y) * s))
            if box.right >= 0 and box.bottom >= 0 and box.left < SIZE[0] and box.top < SIZE[1]:
                truth.append(TruthFace(i, box, in_frame(box, SIZE)))
        yield _finish(frame, noise, n), truth


# ------------------------------------------------------------------------------------ clips


# street-lite: the street with fewer people to cut out (a quicker start, for tests)
KINDS = {"street": street_frames, "street-lite": partial(street_frames, lite=True), "group": group_frames}


def clip_name(kind: str, seed: int, seconds: float) -> str:
    return f"{kind}-s{seed}-{seconds:g}s-v{CLIP_VERSIONS[kind]}"


def make_clip(
    kind: str, seed: int, seconds: float, out: Path = CACHE, shared: Path = SHARED, detector=None
) -> Clip:
    """The clip (H.264 .mp4 + .truth.json in ``out``), made now unless already cached."""
    name = clip_name(kind, seed, seconds)
    video = out / f"{name}.mp4"
    if video.exists() and video.with_suffix(".truth.json").exists():
        return load_clip(video)
    import av

    if detector is None:
        from streamer.detect import make_detector

        detector = make_detector("mmod")
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f"{name}.part.mp4"
    truth: list[list[TruthFace]] = []
    with av.open(str(tmp), "w") as container:
        st = container.add_stream("libx264", rate=FPS)
        st.width, st.height, st.pix_fmt = SIZE[0], SIZE[1], "yuv420p"
        st.options = {"preset": "veryfast", "crf": "18", "g": str(2 * FPS)}
        for rgb, faces in KINDS[kind](shared, detector, seed, seconds, out):
            truth.append(faces)
            for pkt in st.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                container.mux(pkt)
        for pkt in st.encode():
            container.mux(pkt)
    clip = Clip(name, video, float(FPS), SIZE, truth)
    save_truth(clip, video.with_suffix(".truth.json"))
    tmp.rename(video)
    return clip


def read_frames(video: Path, wanted: set[int]) -> dict[int, np.ndarray]:
    """The decoded RGB frames of ``video`` with those indexes (what a viewer of the file gets)."""
    cap = cv2.VideoCapture(str(video))
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


def validate(clip: Clip, frames: int = 3, detector=None, min_px: int = MIN_FACE) -> dict[str, object]:
    """MMOD at upsample 1 on whole decoded frames against the truth (IoU >= 0.5).

    ``agreement``: the share of visible truth faces >= ``min_px`` that the detector found;
    ``extra``: detections matching no truth face at all (any size, hidden or not; IoU >= 0.3).
    """
    from streamer.track.matching import iou_matrix, match

    if detector is None:
        from streamer.detect import make_detector

        detector = make_detector("mmod")
    n = len(clip.truth)
    picks = sorted({round((k + 1) * n / (frames + 1)) for k in range(frames)})
    images = read_frames(clip.path, set(picks))
    truth_n = found = extra = 0
    per_frame = []
    for i in picks:
        dets = detector.detect([images[i]], 1)[0]
        want = clip.scored(i, min_px)
        m = iou_matrix([_xyxy(f.box) for f in want], [_xyxy(b) for b in dets])
        pairs, _, _ = match(m, 0.5)
        everyone = iou_matrix([_xyxy(f.box) for f in clip.truth[i]], [_xyxy(b) for b in dets])
        extra_boxes = [
            _xyxy(b) for j, b in enumerate(dets) if not (everyone.size and everyone[:, j].max() >= 0.3)
        ]
        extra_i = len(extra_boxes)
        missed = [f.width for k, f in enumerate(want) if k not in {p for p, _ in pairs}]
        per_frame.append(
            {
                "frame": i,
                "truth": len(want),
                "found": len(pairs),
                "extra": extra_i,
                "missed_widths": missed,
                "extra_boxes": extra_boxes,
            }
        )
        truth_n += len(want)
        found += len(pairs)
        extra += extra_i
    return {
        "clip": clip.name,
        "frames": per_frame,
        "truth_faces": truth_n,
        "found": found,
        "agreement": round(found / max(1, truth_n), 3),
        "extra": extra,
    }


def _xyxy(b: Box) -> tuple[int, int, int, int]:
    return (b.left, b.top, b.right, b.bottom)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks.street_clip",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--out", type=Path, default=CACHE, help="clip cache folder (default .cache/clips)")
    ap.add_argument("--kinds", default="street,group")
    ap.add_argument("--seeds", default="1")
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument(
        "--validate", type=int, default=0, help="check the truth on N frames per clip (MMOD upsample 1)"
    )
    args = ap.parse_args(argv)
    from streamer.detect import make_detector

    detector = make_detector("mmod")
    report = []
    for kind in args.kinds.split(","):
        for seed in (int(s) for s in args.seeds.split(",")):
            clip = make_clip(kind, seed, args.seconds, args.out, detector=detector)
            widths = [f.width for faces in clip.truth for f in faces if f.visible]
            line: dict[str, object] = {
                "clip": str(clip.path),
                "frames": len(clip.truth),
                "people": len({f.person for faces in clip.truth for f in faces}),
                "visible_faces_per_frame": round(len(widths) / max(1, len(clip.truth)), 2),
                "face_px_p10_p50_p90": [int(np.percentile(widths, q)) for q in (10, 50, 90)]
                if widths
                else [],
            }
            if args.validate:
                line["validation"] = validate(clip, args.validate, detector)
            print(json.dumps(line), flush=True)
            report.append(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
