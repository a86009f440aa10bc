"""What a camera's video does to a face, applied to a photo: for training heads that hold up on
video (random mixes, ``video_like``) and for measuring how they hold up (fixed kinds, ``KINDS``).

CelebA's crops are sharp, well-exposed stills; faces in live video are blurred by focus and
motion, under- or over-exposed, noisy, colour-cast and compressed. The backbone's features move
under all of these, and a head fitted on clean stills only loses 4-10 points on blurred faces
(``models/gender.md``). Every function takes and returns RGB uint8 and is deterministic given
its generator.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

VIDEO = "video"  # the random mix used for training copies
VERSION = 1  # part of the feature cache's key: bump when a degradation's pixels change


def _jpeg(x: np.ndarray, quality: int) -> np.ndarray:
    import cv2

    ok, buf = cv2.imencode(".jpg", x, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)


def _u8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def _exposure(x: np.ndarray, gamma: float, gain: float) -> np.ndarray:
    return 255.0 * (x / 255.0) ** gamma * gain


def _motion_kernel(length: int, angle: float) -> np.ndarray:
    import cv2

    k = np.zeros((length, length), np.float32)
    k[length // 2, :] = 1.0
    c = (length - 1) / 2
    k = cv2.warpAffine(k, cv2.getRotationMatrix2D((c, c), angle, 1.0), (length, length))
    return k / k.sum()


def video_like(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random mix of focus blur, exposure, colour cast, sensor noise and JPEG compression, each
    present or not at random. Motion blur is left out on purpose: ``KINDS["motion"]`` measures
    how a head trained on this mix does on a degradation it never saw."""
    import cv2

    x = image.astype(np.float32)
    if rng.random() < 0.5:
        x = cv2.GaussianBlur(x, (0, 0), rng.uniform(0.5, 2.0))
    if rng.random() < 0.5:
        x = _exposure(x, rng.uniform(0.7, 1.8), rng.uniform(0.5, 1.1))
    if rng.random() < 0.3:
        x = x * rng.uniform(0.8, 1.2, 3).astype(np.float32)
    if rng.random() < 0.5:
        x = x + rng.normal(0.0, rng.uniform(1.0, 8.0), x.shape).astype(np.float32)
    out = _u8(x)
    if rng.random() < 0.5:
        out = _jpeg(out, int(rng.uniform(15, 60)))
    return out


def _dark(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    f = x.astype(np.float32)
    return _u8(_exposure(f, 1.6, 0.6) + rng.normal(0.0, 5.0, f.shape))


def _blur(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    import cv2

    return cv2.GaussianBlur(x, (0, 0), 1.6)


def _motion(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    import cv2

    return cv2.filter2D(x, -1, _motion_kernel(9, float(rng.uniform(0.0, 180.0))))


def _compressed(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return _jpeg(x, 15)


def _colour(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return _u8(x.astype(np.float32) * np.array([1.15, 1.0, 0.75], np.float32) + 10.0)


def _small(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    import cv2

    h, w = x.shape[:2]
    lo = cv2.resize(x, (max(1, w // 2), max(1, h // 2)), interpolation=cv2.INTER_AREA)
    return cv2.resize(lo, (w, h), interpolation=cv2.INTER_LINEAR)


def _combined(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    import cv2

    f = cv2.GaussianBlur(x.astype(np.float32), (0, 0), 1.2)
    return _jpeg(_u8(_exposure(f, 1.4, 0.7) + rng.normal(0.0, 4.0, f.shape)), 25)


# Fixed degradations for evaluation (``train evaluate --degrade KIND``); noise and the motion
# direction are drawn from a generator seeded per image, so every run gives the same images.
KINDS: dict[str, Callable[[np.ndarray, np.random.Generator], np.ndarray]] = {
    "dark": _dark,  # under-exposed (gamma 1.6, gain 0.6) with sensor noise (sigma 5)
    "blur": _blur,  # out of focus: Gaussian sigma 1.6 px
    "motion": _motion,  # 9-px motion blur in a random direction (not in the training mix)
    "jpeg": _compressed,  # JPEG quality 15
    "colour": _colour,  # white balance off (warm cast)
    "combined": _combined,  # blur 1.2 px, dark, noise 4, JPEG 25
    "small": _small,  # half the resolution (a CelebA face of ~55 px seen at ~28 px), scaled back up
}


FACE_PX = "face"  # ``face<N>``: the face seen N px wide (``at_face_width``)


def at_face_width(image: np.ndarray, face_width: int, px: int) -> np.ndarray:
    """``image`` as a camera that sees its face (``face_width`` px wide here) ``px`` wide: scaled
    down to that (area), JPEG quality 75 as a stream's frames, scaled back up (bilinear), so the
    face keeps its place and the classifier sees the pixels video's smaller faces have."""
    import cv2

    h, w = image.shape[:2]
    s = min(1.0, px / max(1, face_width))
    small = cv2.resize(image, (max(8, round(w * s)), max(8, round(h * s))), interpolation=cv2.INTER_AREA)
    return cv2.resize(_jpeg(small, 75), (w, h), interpolation=cv2.INTER_LINEAR)


def degrade(image: np.ndarray, kind: str, seed: int, index: int, face_width: int = 0) -> np.ndarray:
    """``image`` under ``kind`` (a name in ``KINDS``, ``VIDEO`` for the random training mix, or
    ``face<N>``: the face, ``face_width`` px wide, seen N px wide), drawn from a generator seeded
    by (seed, index): the same image gets the same result."""
    rng = np.random.default_rng((int(seed), int(index)))
    if kind == VIDEO:
        return video_like(image, rng)
    if kind.startswith(FACE_PX) and kind[len(FACE_PX) :].isdigit():
        return at_face_width(image, face_width or min(image.shape[:2]), int(kind[len(FACE_PX) :]))
    if kind not in KINDS:
        raise ValueError(f"unknown degradation {kind!r}; choose one of {', '.join(KINDS)} or {VIDEO}")
    return KINDS[kind](image, rng)
