"""Cut training crops for a data set: cached detections + the service's ``crop_face``."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from train.crops import detect_all, first_box_keys, make_crop, read_rgb
from train.data import DataError, Dataset


@dataclass
class Crops:
    x: np.ndarray  # (n, h, w, 3) uint8
    found: np.ndarray  # (n,) bool: a face was detected (else the crop is the whole image)

    @property
    def n_no_face(self) -> int:
        return int((~self.found).sum())


def detections_or_fail(ds: Dataset, detector: str, upsample: int, cache_dir: Path, progress: bool = True):
    dets = detect_all(ds.paths, detector, upsample, cache_dir, progress=progress)
    bad = [(p, dets[str(Path(p).resolve())].error) for p in ds.paths if dets[str(Path(p).resolve())].error]
    if bad:
        listing = "; ".join(f"{p}: {e}" for p, e in bad[:3])
        raise DataError(f"{len(bad)} unreadable image(s) in {ds.source}, e.g. {listing}")
    return [dets[str(Path(p).resolve())].boxes for p in ds.paths]


def crops_for(
    ds: Dataset,
    detector: str,
    upsample: int,
    size: tuple[int, int],
    margin: float,
    cache_dir: Path,
    progress: bool = True,
) -> Crops:
    """Crops of the most confident face in every image (whole image where none is found)."""
    boxes = detections_or_fail(ds, detector, upsample, cache_dir, progress)
    key = hashlib.sha1(
        repr((detector, upsample, size, margin, [str(p) for p in ds.paths], first_box_keys(boxes))).encode()
    ).hexdigest()[:16]
    cfile = cache_dir / "crops" / f"{detector}-up{upsample}-{size[0]}x{size[1]}-m{margin}-{key}.npz"
    if cfile.exists():
        with np.load(cfile) as z:
            return Crops(z["x"], z["found"])
    x = np.zeros((len(ds), size[0], size[1], 3), np.uint8)
    found = np.zeros(len(ds), bool)
    for i, (p, b) in enumerate(zip(ds.paths, boxes, strict=True)):
        x[i], found[i] = make_crop(read_rgb(p), b, size, margin)
    cfile.parent.mkdir(parents=True, exist_ok=True)
    tmp = cfile.with_suffix(".tmp.npz")
    np.savez(tmp, x=x, found=found)
    tmp.replace(cfile)
    return Crops(x, found)
