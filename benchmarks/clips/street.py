"""The ``street`` kind: a static 1080p camera looking down a street or hall.

People (head-and-shoulders cut-outs of real photos, blended softly, on a drawn torso) walk towards
the camera (faces grow from about 26 px to 140 px and leave at the bottom or side), cross it at
one distance (40-95 px), or stand still. Nearer people hide farther ones: a face more than a
quarter covered is marked not visible.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from benchmarks.clips.sprites import Sprite, cached_sprites, draw_sprite
from benchmarks.clips.truth import FPS, SIZE, TruthFace, as_box, in_frame, noise_bank, read_rgb, with_noise

# Street geometry: a face d metres away is F / d pixels wide; its centre lies CAM_ABOVE_HEAD
# metres below the horizon and X metres beside the vanishing point, at w / FACE_M pixels per metre.
F = 800.0
FACE_M = 0.16
CAM_ABOVE_HEAD = 0.9


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
    src = read_rgb(shared / "data/dlib_faces/dogs.jpg")
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


def street_frames(
    shared: Path, detector, seed: int, seconds: float, cache: Path, lite: bool = False
) -> Iterator[tuple[np.ndarray, list[TruthFace]]]:
    rng = np.random.default_rng(seed)
    big, small = cached_sprites(shared, detector, seed, cache, lite)
    horizon, vanish_x = rng.uniform(250, 330), rng.uniform(800, 1120)
    bg = street_background(shared, rng, horizon, vanish_x)
    people = plan_street(big, small, seconds, rng)
    noise = noise_bank(rng)
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
        yield with_noise(frame, noise, n), faces


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
