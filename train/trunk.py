"""The frozen part of dlib's face ResNet, cut before its last blocks, and its activations for
every face of a shared source, cached under ``.cache/features/`` (``train finetune`` trains the
last blocks and a gender head on them: an epoch takes minutes on 2 cores instead of hours).

The cut is at ``TRUNK_END`` (the 4x4x256 output of the first 256-filter residual block): what
follows is three residual blocks (two ``ares`` of 256 filters and the last ``ares_down``), the
average pooling and the fc layer of the 128-D descriptor. Faces are made as for the frozen
features (``train/features.py``): cached detections, dlib's 5-point alignment and 150x150 chip
(the whole image aligned where no face was found); every chip's mirror image is cached too, as
training augmentation."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from streamer.crop import whole_image_box
from train.crops import _bar, _cache_name, _read_cache, default_cache_dir, first_box_keys, read_rgb
from train.data import GENDER_RULE
from train.faces import detections_or_fail
from train.sources import UPSAMPLE, Faces, concat, load_source

TRUNK_END = "relu_100"  # the layer whose output the trunk gives (4, 4, 256)
# layers after TRUNK_END that belong to each residual block, last block first (build_model's names)
BLOCKS = (
    ("conv_118", "conv_121"),  # ares_down 256: 4x4 -> 2x2 (zero-filled add)
    ("conv_110", "conv_113"),  # ares 256
    ("conv_102", "conv_105"),  # ares 256
)
VERSION = 1


@dataclass
class TrunkActs:
    x: np.ndarray  # (n, 4, 4, 256) float16: the chip's trunk output
    xm: np.ndarray  # (n, 4, 4, 256) float16: the mirrored chip's
    found: np.ndarray  # (n,) bool

    def take(self, idx: np.ndarray) -> TrunkActs:
        return TrunkActs(self.x[idx], self.xm[idx], self.found[idx])


def split_resnet(model):
    """(trunk, tail) Keras models of dlib's ResNet (``face_resnet.build_model``): chip ->
    TRUNK_END's output, and that -> {"dlib_face_descriptor", "dlib_pooled"}. The tail shares
    the ResNet's layers (clone it to train a copy)."""
    import keras

    cut = model.get_layer(TRUNK_END).output
    trunk = keras.Model(model.input, cut, name="dlib_trunk")
    tail = keras.Model(
        cut,
        {
            "dlib_face_descriptor": model.get_layer("fc").output,
            "dlib_pooled": model.get_layer("pooled").output,
        },
        name="dlib_tail",
    )
    return trunk, tail


def cached_boxes(faces: Faces, upsample: int, cache_dir: Path, progress: bool = True) -> list:
    """The detector's boxes per image from the box cache (``train.crops.detect_all``), matched
    by file name and size: a copy of the shared data with new modification times needs no
    second hour of detection. Images not in the cache are detected as usual."""
    out: dict[str, list] = {}
    paths = [Path(p).resolve() for p in faces.ds.paths]
    for folder in dict.fromkeys(p.parent for p in paths):
        done = _read_cache(cache_dir / "boxes" / _cache_name("mmod", upsample, str(folder)), folder)
        out.update({str(folder / k): (tag, d) for k, (tag, d) in done.items()})
    boxes = []
    for p in paths:
        hit = out.get(str(p))
        if hit is None or hit[1].error or hit[0].split(":")[0] != str(p.stat().st_size):
            return detections_or_fail(faces.ds, "mmod", upsample, cache_dir, progress)
        boxes.append(hit[1].boxes)
    return boxes


def _cache_file(name: str, upsample: int, paths: list, boxes: list, cache_dir: Path) -> Path:
    key = hashlib.sha1(
        repr(
            (
                TRUNK_END,
                VERSION,
                [str(Path(p).resolve()) for p in paths],
                first_box_keys(boxes),
            )
        ).encode()
    ).hexdigest()[:16]
    return cache_dir / "features" / f"trunk-{TRUNK_END}-{name}-up{upsample}-{key}.npz"


def source_trunk(
    name: str, shared: Path, cache_dir: Path | None = None, progress: bool = True, batch: int = 32
) -> tuple[Faces, TrunkActs]:
    """One shared source's faces (``load_source``, gender labels) and their trunk activations."""
    faces = load_source(name, Path(shared), GENDER_RULE)
    return faces, dataset_trunk(name, faces, UPSAMPLE[name], cache_dir, progress, batch)


def dataset_trunk(
    name: str,
    faces: Faces,
    upsample: int,
    cache_dir: Path | None = None,
    progress: bool = True,
    batch: int = 32,
) -> TrunkActs:
    """The trunk activations of every face of ``faces`` (detected at ``upsample``, first box;
    the whole image aligned where none), cached as ``trunk-...-<name>-up<upsample>-<key>.npz``."""
    cache_dir = cache_dir or default_cache_dir()
    boxes = cached_boxes(faces, upsample, cache_dir, progress)
    cfile = _cache_file(name, upsample, faces.ds.paths, boxes, cache_dir)
    if cfile.exists():
        with np.load(cfile) as z:
            return TrunkActs(z["x"], z["xm"], z["found"])
    import tensorflow as tf

    from streamer.classify.backbone import FaceBackbone

    backbone = FaceBackbone()
    trunk, _ = split_resnet(backbone.model)
    run = tf.function(lambda z: trunk(z, training=False))
    n = len(faces)
    x = np.zeros((n, 4, 4, 256), np.float16)
    xm = np.zeros_like(x)
    bar = _bar(n, f"trunk activations ({name})", progress)
    for i in range(0, n, batch):
        chips = []
        for p, b in zip(faces.ds.paths[i : i + batch], boxes[i : i + batch], strict=True):
            image = read_rgb(p)
            chips += backbone.chips(image, [b[0] if b else whole_image_box(image)])
        c = np.stack(chips).astype(np.float32)
        k = len(c)
        if k < batch:  # one traced shape
            c = np.concatenate([c, np.zeros((batch - k, *c.shape[1:]), np.float32)])
        x[i : i + k] = np.asarray(run(c))[:k]
        xm[i : i + k] = np.asarray(run(np.ascontiguousarray(c[:, :, ::-1])))[:k]
        bar(k)
    bar(None)
    found = np.array([bool(b) for b in boxes])
    cfile.parent.mkdir(parents=True, exist_ok=True)
    tmp = cfile.with_suffix(".tmp.npz")
    np.savez(tmp, x=x, xm=xm, found=found)
    tmp.replace(cfile)
    return TrunkActs(x, xm, found)


def frozen_features(name: str, faces: Faces, cache_dir: Path | None = None):
    """The frozen backbone's features of a source: ``train.features.features_for`` on the boxes
    ``cached_boxes`` finds (its cache file, and the sets an old one lacks from the file beside it)."""
    from train.features import features_for

    cache_dir = cache_dir or default_cache_dir()
    boxes = cached_boxes(faces, UPSAMPLE[name], cache_dir)
    return features_for(faces.ds, "mmod", UPSAMPLE[name], cache_dir, boxes=boxes)


def load_trunk(
    sources: tuple[str, ...], shared: Path, cache_dir: Path | None = None, progress: bool = True
) -> tuple[Faces, TrunkActs]:
    parts = [source_trunk(s, shared, cache_dir, progress) for s in sources]
    return concat([f for f, _ in parts]), TrunkActs(
        np.concatenate([a.x for _, a in parts]),
        np.concatenate([a.xm for _, a in parts]),
        np.concatenate([a.found for _, a in parts]),
    )


if __name__ == "__main__":  # cache every source: python -m train.trunk [SHARED]
    import sys
    import time

    from train.sources import SOURCES

    shared = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parents[1].parent / "shared")
    for s in SOURCES:
        t0 = time.perf_counter()
        f, a = source_trunk(s, shared)
        print(f"{s}: {len(f)} faces, {time.perf_counter() - t0:.0f} s", flush=True)
