"""Face crops for training, made exactly as the service makes them: detect, then ``crop_face``.

Detection is the slow part (dlib's CNN on the CPU), so the boxes found in each image are
cached once per (detector, upsample, data set) as JSON lines under ``.cache/boxes/``; the
cache is appended to as detection proceeds, so an interrupted run resumes where it stopped.
Crops at a given size and margin are then cut from the cached boxes in seconds.

An image in which no face is found is *not* dropped silently: it is recorded with an empty
box list, counted (``n_no_face``) and, for training, left out (by default) or cropped whole.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from streamer.crop import crop_face, whole_image_box
from streamer.types import Box

# The Keras port of dlib's MMOD detector: the same boxes as dlib (tests/test_mmod.py), ~20x faster.
DEFAULT_DETECTOR = "mmod"
# CelebA's 89x109 aligned crops hold faces of ~45 px, below the MMOD detector's smallest
# window: with upsample=0 it finds none of them, with upsample=1 it finds nearly all.
DEFAULT_UPSAMPLE = 1
# a detection's confidence is cached (and read back) rounded to this many decimals
CONFIDENCE_DIGITS = 6


def default_cache_dir() -> Path:
    env = os.environ.get("STREAMER_TRAIN_CACHE")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[1] / ".cache"


def read_rgb(path: Path) -> np.ndarray:
    """Read an image file as RGB uint8; raise DataError naming the file if it cannot be read."""
    import cv2

    from train.data import DataError

    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise DataError(f"{path}: cannot read image (missing, empty or not an image file)")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _cache_name(detector: str, upsample: int, key: str) -> str:
    digest = hashlib.sha1(key.encode()).hexdigest()[:12]
    return f"{detector}-up{upsample}-{digest}.jsonl"


def first_box_keys(boxes: Sequence[Sequence[Box]]) -> list[str]:
    """Each image's most confident box as text, for the keys of caches built on detections: the
    confidence at the box cache's precision (``CONFIDENCE_DIGITS``), so freshly detected boxes
    and the same boxes read back from that cache give one key."""
    return [
        str([Box(int(x.left), int(x.top), int(x.right), int(x.bottom), _conf(x.confidence)) for x in b[:1]])
        for b in boxes
    ]


def _conf(confidence: float) -> float:
    return round(float(confidence), CONFIDENCE_DIGITS)


def _tag(path: Path) -> str:
    """What a cached record was made from: the file's size and a digest of its bytes (not its
    modification time: a copied or re-mounted data set keeps its cache)."""
    try:
        data = path.read_bytes()
    except OSError:
        return "missing"
    return f"{len(data)}:{hashlib.blake2b(data, digest_size=8).hexdigest()}"


@dataclass
class Detection:
    boxes: list[Box]
    error: str | None = None  # set when the image could not be read


def detect_all(
    paths: Sequence[Path],
    detector: str = DEFAULT_DETECTOR,
    upsample: int = DEFAULT_UPSAMPLE,
    cache_dir: Path | None = None,
    batch: int = 16,
    progress: bool = True,
    detector_obj: object | None = None,
) -> dict[str, Detection]:
    """Boxes for every image in ``paths`` (keyed by resolved path), cached on disk.

    Unreadable images are recorded with ``error`` set instead of raising, so one bad file
    does not throw away an hour of detection; callers decide whether that is fatal.
    """
    cache_dir = default_cache_dir() if cache_dir is None else cache_dir
    paths = [Path(p).resolve() for p in paths]
    out: dict[str, Detection] = {}
    by_dir: dict[Path, list[Path]] = {}
    for p in paths:
        by_dir.setdefault(p.parent, []).append(p)
    todo: list[tuple[Path, Path]] = []  # (image, cache file)
    for folder, files in by_dir.items():
        cfile = cache_dir / "boxes" / _cache_name(detector, upsample, str(folder))
        done = _read_cache(cfile, folder)
        for p in files:
            tag = _tag(p)
            hit = done.get(p.name)
            if hit is not None and hit[0] == tag:
                out[str(p)] = hit[1]
            else:
                todo.append((p, cfile))
    if not todo:
        return out
    from streamer.detect import make_detector

    det = detector_obj if detector_obj is not None else make_detector(detector)
    bar = _bar(len(todo), f"detecting faces ({detector}, upsample={upsample})", progress)
    for i in range(0, len(todo), batch):
        chunk = todo[i : i + batch]
        images: list[np.ndarray | None] = []
        errors: list[str | None] = []
        for p, _ in chunk:
            try:
                images.append(read_rgb(p))
                errors.append(None)
            except Exception as e:
                images.append(None)
                errors.append(str(e))
        ok = [im for im in images if im is not None]
        found = iter(det.detect(ok, upsample=upsample) if ok else [])  # type: ignore[attr-defined]
        lines: dict[Path, list[str]] = {}
        for (p, cfile), im, err in zip(chunk, images, errors, strict=True):
            boxes = next(found) if im is not None else []
            out[str(p)] = Detection(list(boxes), err)
            tag = _tag(p)
            rec = {
                "name": p.name,
                "tag": tag,
                "boxes": [[b.left, b.top, b.right, b.bottom, _conf(b.confidence)] for b in boxes],
            }
            if err:
                rec["error"] = err
            lines.setdefault(cfile, []).append(json.dumps(rec))
        for cfile, ls in lines.items():
            cfile.parent.mkdir(parents=True, exist_ok=True)
            with open(cfile, "a") as f:
                f.write("\n".join(ls) + "\n")
        bar(len(chunk))
    bar(None)
    return out


def _read_cache(cfile: Path, folder: Path) -> dict[str, tuple[str, Detection]]:
    done: dict[str, tuple[str, Detection]] = {}
    if not cfile.exists():
        return done
    with open(cfile) as f:
        for line in f:
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut short by an interrupted run
            boxes = [Box(int(a), int(b), int(c), int(d), float(e)) for a, b, c, d, e in rec["boxes"]]
            done[rec["name"]] = (rec["tag"], Detection(boxes, rec.get("error")))
    return done


def _bar(total: int, desc: str, enabled: bool) -> Callable[[int | None], None]:
    if not enabled:
        return lambda n: None
    from tqdm import tqdm

    t = tqdm(total=total, desc=desc, unit="img", smoothing=0.05)

    def step(n: int | None) -> None:
        if n is None:
            t.close()
        else:
            t.update(n)

    return step


def make_crop(
    image: np.ndarray, boxes: Sequence[Box], size: tuple[int, int], margin: float
) -> tuple[np.ndarray, bool]:
    """The crop of the most confident face, or of the whole image if none: (crop, face_found)."""
    if boxes:
        return crop_face(image, boxes[0], size, margin), True
    return crop_face(image, whole_image_box(image), size, 0.0), False
