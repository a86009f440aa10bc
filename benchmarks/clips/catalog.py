"""1080p 25 fps clips with exact per-frame face truth, for small faces in big frames (issue #13).

Two kinds, so that nothing is tuned to one clip:

- ``street`` (street.py): a static camera looking down a street or hall. People (head-and-shoulders cut-outs
  of real photos, blended softly, on a drawn torso) walk towards the camera (faces grow from
  about 26 px to 140 px and leave at the bottom or side), cross it at one distance (40-95 px),
  or stand still. Nearer people hide farther ones: a face more than a quarter covered is marked
  not visible.
- ``group`` (photo_wall.py): a slow virtual camera panning and zooming over a wall of group photos
  (``bald_guys.jpg``, 24 faces, in the middle; smaller photos around it), faces 35-120 px.

Truth: the detector's (MMOD's) own boxes on each source image, carried through the known
placement and scale, so it is exact wherever a face goes. ``validate`` checks it against MMOD at
``upsample = 1`` on whole decoded 1080p frames (seconds per frame).

Clips are cached (default ``.cache/clips``, not in git) under a name that holds every parameter;
the same parameters give the same clip (seeded). ``python -m benchmarks small-faces --clips-only
[--validate N]`` makes, describes and checks the clips its runs play.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from pathlib import Path

import numpy as np

from benchmarks.clips.photo_wall import group_frames
from benchmarks.clips.street import street_frames
from benchmarks.clips.truth import FPS, MIN_FACE, SIZE, Clip, TruthFace, load_clip, save_truth
from benchmarks.clips.video import read_frames_at, write_h264
from benchmarks.scoring import xyxy
from streamer.track.matching import iou_matrix, match

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared"
CACHE = ROOT / ".cache" / "clips"
CLIP_VERSIONS = {"street": 1, "street-lite": 1, "group": 2}  # bump when a kind's rendering or truth changes


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
    if detector is None:
        from streamer.detect import make_detector

        detector = make_detector("mmod")
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f"{name}.part.mp4"
    truth: list[list[TruthFace]] = []

    def frames() -> Iterator[np.ndarray]:
        for rgb, faces in KINDS[kind](shared, detector, seed, seconds, out):
            truth.append(faces)
            yield rgb

    write_h264(tmp, frames(), FPS, SIZE, {"preset": "veryfast", "crf": "18", "g": str(2 * FPS)})
    clip = Clip(name, video, float(FPS), SIZE, truth)
    save_truth(clip, video.with_suffix(".truth.json"))
    tmp.rename(video)
    return clip


def validate(clip: Clip, frames: int = 3, detector=None, min_px: int = MIN_FACE) -> dict[str, object]:
    """MMOD at upsample 1 on whole decoded frames against the truth (IoU >= 0.5).

    ``agreement``: the share of visible truth faces >= ``min_px`` that the detector found;
    ``extra``: detections matching no truth face at all (any size, hidden or not; IoU >= 0.3).
    """
    if detector is None:
        from streamer.detect import make_detector

        detector = make_detector("mmod")
    n = len(clip.truth)
    picks = sorted({round((k + 1) * n / (frames + 1)) for k in range(frames)})
    images = read_frames_at(clip.path, set(picks))
    truth_n = found = extra = 0
    per_frame = []
    for i in picks:
        dets = detector.detect([images[i]], 1)[0]
        want = clip.scored(i, min_px)
        m = iou_matrix([xyxy(f.box) for f in want], [xyxy(b) for b in dets])
        pairs, _, _ = match(m, 0.5)
        everyone = iou_matrix([xyxy(f.box) for f in clip.truth[i]], [xyxy(b) for b in dets])
        extra_boxes = [
            xyxy(b) for j, b in enumerate(dets) if not (everyone.size and everyone[:, j].max() >= 0.3)
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


def describe(clip: Clip) -> dict[str, object]:
    """What is in ``clip``: frames, people, visible faces per frame, their widths (p10, p50, p90)."""
    widths = [f.width for faces in clip.truth for f in faces if f.visible]
    return {
        "clip": str(clip.path),
        "frames": len(clip.truth),
        "people": len({f.person for faces in clip.truth for f in faces}),
        "visible_faces_per_frame": round(len(widths) / max(1, len(clip.truth)), 2),
        "face_px_p10_p50_p90": [int(np.percentile(widths, q)) for q in (10, 50, 90)] if widths else [],
    }
