"""Backbone features for a data set, made exactly as the service makes them: cached detections,
dlib's 5-point alignment and 150x150 chip, then the Keras face ResNet (``FaceBackbone``, the
code the Engine runs). Computed once per (detector, upsample, data set) and cached under
``.cache/features/``; heads then fit in seconds."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from streamer.classify.face_resnet import ALL_FEATURES, FLIP_SUFFIX
from streamer.crop import whole_image_box
from train.crops import _bar, first_box_keys, read_rgb
from train.data import Dataset
from train.degrade import VERSION as DEGRADE_VERSION
from train.degrade import degrade
from train.faces import detections_or_fail


@dataclass
class Features:
    x: dict[str, np.ndarray]  # feature name -> (n, D) float32
    found: np.ndarray  # (n,) bool: a face was detected (else the whole image was aligned)

    @property
    def n_no_face(self) -> int:
        return int((~self.found).sum())

    def matrix(self, names: str) -> np.ndarray:
        """The columns of one feature set, or of several joined with '+'."""
        return np.concatenate([self.x[k] for k in names.split("+")], axis=1)

    def mirror_matrix(self, names: str) -> np.ndarray:
        """``matrix(names)`` of the mirrored chip: every set replaced by the mirrored chip's own
        features (2 * flip mean - chip's): extra training rows, as a random flip would give."""
        cols = []
        for k in names.split("+"):
            base = k.removesuffix(FLIP_SUFFIX)
            cols.append(2 * self.x[base + FLIP_SUFFIX] - self.x[base])
        return np.concatenate(cols, axis=1)


def feature_cache_file(
    ds: Dataset, detector: str, upsample: int, boxes: list, cache_dir: Path, degraded: str = ""
) -> Path:
    """Where ``features_for`` caches the features of ``ds`` with these detections (and, for
    degraded images, ``degraded`` names the degradation and its seed)."""
    key = hashlib.sha1(
        repr((detector, upsample, [str(Path(p).resolve()) for p in ds.paths], first_box_keys(boxes))).encode()
    ).hexdigest()[:16]
    tag = f"-{degraded}" if degraded else ""
    return cache_dir / "features" / f"dlib_resnet-flip-{detector}-up{upsample}{tag}-{key}.npz"


def features_for(
    ds: Dataset,
    detector: str,
    upsample: int,
    cache_dir: Path,
    progress: bool = True,
    batch: int = 32,
    backbone: object | None = None,
    degraded: str | None = None,
    seed: int = 0,
    boxes: list | None = None,
) -> Features:
    """Every backbone feature of the most confident face in every image (whole image if none),
    the test-time-flip sets included (``FaceBackbone.features(..., mirrored=True)``).

    ``degraded``: a ``train.degrade`` kind (or ``"video"``, the random training mix) applied to
    every image (drawn with ``seed`` and the image's index) after detection and before
    alignment: the face is where the clean image's detector found it, the classifier sees the
    degraded pixels. ``boxes``: the detections per image, if the caller has them (else they are
    detected, or read from the box cache)."""
    if boxes is None:
        boxes = detections_or_fail(ds, detector, upsample, cache_dir, progress)
    tag = f"{degraded}{seed}v{DEGRADE_VERSION}" if degraded else ""
    cfile = feature_cache_file(ds, detector, upsample, boxes, cache_dir, tag)
    if cfile.exists():
        with np.load(cfile) as z:
            found = z["found"]
            x = {k: z[k] for k in z.files if k != "found"}
        missing = sorted(set(ALL_FEATURES) - set(x))
        if not missing:
            return Features(x, found)
        # a cache made before these sets existed: they come from (and are cached in) a file of
        # their own beside it, the first time one is asked for; the file others share stays as
        # it is, and a head that needs none of them costs no backbone pass
        more = _more_file(cfile, missing)

        def load() -> dict[str, np.ndarray]:
            if not more.exists():
                new = _compute(ds, boxes, tag, progress, batch, backbone, degraded, seed)
                _save(more, found, {k: new[k] for k in missing})
            with np.load(more) as z:
                return {k: z[k] for k in missing}

        return Features(_Sets(x, missing, load), found)
    found = np.array([bool(b) for b in boxes])
    x = _compute(ds, boxes, tag, progress, batch, backbone, degraded, seed)
    _save(cfile, found, x)
    return Features(x, found)


class _Sets(dict):
    """Feature sets by name; ``pending`` ones are loaded (``load``) when first asked for."""

    def __init__(self, x: dict[str, np.ndarray], pending: list[str], load) -> None:
        super().__init__(x)
        self._pending, self._load = set(pending), load

    def __missing__(self, k: str) -> np.ndarray:
        if k not in self._pending:
            raise KeyError(k)
        self.update(self._load())
        self._pending = set()
        return self[k]


def set_names(x: dict[str, np.ndarray]) -> list[str]:
    """Every feature set ``x`` holds, those not loaded yet included."""
    return [*x, *sorted(getattr(x, "_pending", ()))]


def map_sets(xs: list[dict[str, np.ndarray]], fn: Callable[[list[np.ndarray]], np.ndarray]) -> dict:
    """``{k: fn([x[k] for x in xs])}`` for every set that all of ``xs`` hold: at once for the
    sets all have loaded, the others when first asked for (loading them in ``xs`` then), so
    joining or slicing the sets of an old cache costs no backbone pass for a set none asks for."""
    names = [k for k in set_names(xs[0]) if all(k in set_names(x) for x in xs[1:])]
    ready = [k for k in names if all(k in x for x in xs)]  # (``in`` loads nothing)
    out = {k: fn([x[k] for x in xs]) for k in ready}
    later = [k for k in names if k not in ready]
    if not later:
        return out
    return _Sets(out, later, lambda: {k: fn([x[k] for x in xs]) for k in later})


def _more_file(cfile: Path, names: list[str]) -> Path:
    """Where the feature sets ``names``, absent from the cache file ``cfile``, are cached."""
    tag = hashlib.sha1(",".join(sorted(names)).encode()).hexdigest()[:8]
    return cfile.with_name(f"{cfile.stem}-more-{tag}.npz")


def _save(cfile: Path, found: np.ndarray, x: dict[str, np.ndarray]) -> None:
    cfile.parent.mkdir(parents=True, exist_ok=True)
    tmp = cfile.with_suffix(".tmp.npz")
    np.savez(tmp, found=found, **x)
    tmp.replace(cfile)


def _compute(
    ds: Dataset,
    boxes: list,
    tag: str,
    progress: bool,
    batch: int,
    backbone: object | None,
    degraded: str | None,
    seed: int,
) -> dict[str, np.ndarray]:
    if backbone is None:
        from streamer.classify.backbone import FaceBackbone

        backbone = FaceBackbone()
    parts: dict[str, list[np.ndarray]] = {}
    bar = _bar(len(ds), f"face features (dlib ResNet{', ' + tag if tag else ''})", progress)
    for i in range(0, len(ds), batch):
        chips = []
        for j, (p, b) in enumerate(zip(ds.paths[i : i + batch], boxes[i : i + batch], strict=True)):
            image = read_rgb(p)
            box = b[0] if b else whole_image_box(image)
            if degraded:
                image = degrade(image, degraded, seed, i + j, box.right - box.left + 1)
            chips += backbone.chips(image, [box])  # type: ignore[attr-defined]
        for k, v in backbone.features(np.stack(chips), mirrored=True).items():  # type: ignore[attr-defined]
            parts.setdefault(k, []).append(v)
        bar(len(chips))
    bar(None)
    return {k: np.concatenate(v) for k, v in parts.items()}
