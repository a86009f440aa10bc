"""Drawn boxes the detector cannot judge, judged by looking: on a face, or on no face.

A drawn box that overlaps no reference box gets a closer look (closer.py), but that look is the
same detector, and it does not see every face: a head bowed over a table, a face in profile, a
defocused passer-by. A box the tracker keeps on such a face is on a face; counted as off face, it
makes the tracker look worse for doing its job, and a change that drops it looks better. So those
boxes are looked at and judged by eye, and the judgement is kept in ``looked.csv``: per clip and
reference frame, the drawn box looked at and whether a face is under it (``face`` 1: a face,
frontal, turned or bowed, the box on it; 0: no face, or the box mostly beside one).

Scoring (cli.py): a drawn box that overlaps (IoU >= OFF_FACE_IOU) a box judged a face counts in
``boxes_on_unreferenced_faces`` as one the closer look finds would, not off face; recall is not
changed (it counts reference faces only). A box judged no face stays off face. Drawn boxes off
face that no judgement covers are counted in ``boxes_off_unjudged``: a run whose figure rests on
boxes nobody looked at says so. To judge them:

    python -m benchmarks real --no-live --keep DIR ...    (or live runs: the same --keep)
    python -m benchmarks.real.looked DIR [--sheets OUT]

prints a CSV row (without its ``face`` value) per unjudged box and draws them on numbered sheets
(red: the drawn box, green: the reference boxes near it) under OUT; look at each, fill in 1 or 0,
and add the rows to ``looked.csv``. The clips' frames are never kept in the repository.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from benchmarks.real.closer import off_reference
from benchmarks.real.reference import ALL, RealClip, load
from benchmarks.scoring import OFF_FACE_IOU, read_detection_lines, xyxy
from streamer.track.matching import iou_matrix
from streamer.types import Box

LOOKED = Path(__file__).with_name("looked.csv")
FIELDS = ("clip", "frame", "x0", "y0", "x1", "y1", "face", "note")
TILE = 200  # px of a sheet's tile


def judged(clip: str, path: Path = LOOKED) -> dict[int, list[tuple[tuple[int, int, int, int], bool]]]:
    """Reference frame -> the boxes judged there by looking, each with whether a face is under it."""
    out: dict[int, list[tuple[tuple[int, int, int, int], bool]]] = {}
    if not path.exists():
        return out
    with path.open(newline="") as f:
        for r in csv.DictReader(f):
            if r["clip"] == clip:
                box = (int(r["x0"]), int(r["y0"]), int(r["x1"]), int(r["y1"]))
                out.setdefault(int(r["frame"]), []).append((box, r["face"].strip() == "1"))
    return out


def faces(clip: str, path: Path = LOOKED) -> dict[int, list[Box]]:
    """Reference frame -> the boxes judged faces, as faces a closer look would have found."""
    return {
        n: [Box(*b, 1.0) for b, face in got if face]
        for n, got in judged(clip, path).items()
        if any(f for _, f in got)
    }


def with_faces(closer: dict[int, list[Box]], clip: str, path: Path = LOOKED) -> dict[int, list[Box]]:
    """The closer look's faces and the faces judged by looking, per reference frame."""
    out = {n: list(bs) for n, bs in closer.items()}
    for n, bs in faces(clip, path).items():
        out.setdefault(n, []).extend(bs)
    return out


def unjudged(
    lines: list[dict[str, Any]],
    ref: dict[int, list[Box]],
    clip: RealClip,
    closer: dict[int, list[Box]],
    path: Path = LOOKED,
) -> dict[int, list[tuple]]:
    """Reference frame -> the drawn boxes counted off face that no judgement by looking covers
    (none of the closer look's faces, nor any judged box, at IoU >= OFF_FACE_IOU)."""
    marks = judged(clip.stem, path)
    out: dict[int, list[tuple]] = {}
    for n, boxes in off_reference(lines, ref, clip).items():
        known = [xyxy(b) for b in closer.get(n, [])] + [b for b, _ in marks.get(n, [])]
        near = iou_matrix(known, boxes).max(axis=0) if known else np.zeros(len(boxes))
        if left := [b for b, v in zip(boxes, near, strict=True) if v < OFF_FACE_IOU]:
            out[n] = left
    return out


def sheet(clip: RealClip, todo: dict[int, list[tuple]], ref: dict[int, list[Box]], out: Path) -> int:
    """Draw ``todo``'s boxes on numbered tiles (the box with a box width around it) into ``out``."""
    cap = cv2.VideoCapture(str(clip.path))
    tiles, n = [], 0
    while todo and n <= max(todo):
        ok, bgr = cap.read()
        if not ok:
            break
        for b in todo.get(n, []):
            x0, y0, x1, y1 = (int(v) for v in b)
            s = x1 - x0 + 1
            X0, Y0 = max(0, x0 - s), max(0, y0 - s)
            crop = bgr[Y0 : y1 + s + 1, X0 : x1 + s + 1].copy()
            for r in ref.get(n, []):
                a = [int(v) for v in xyxy(r)]
                cv2.rectangle(crop, (a[0] - X0, a[1] - Y0), (a[2] - X0, a[3] - Y0), (0, 255, 0), 1)
            cv2.rectangle(crop, (x0 - X0, y0 - Y0), (x1 - X0, y1 - Y0), (0, 0, 255), 2)
            crop = cv2.resize(crop, (TILE, TILE))
            cv2.putText(crop, f"#{len(tiles)} f{n}", (3, 16), 0, 0.5, (0, 255, 255), 1)
            tiles.append(crop)
        n += 1
    cap.release()
    cols = 6
    rows = max(1, -(-len(tiles) // cols))
    img = np.zeros((rows * TILE, cols * TILE, 3), np.uint8)
    for i, t in enumerate(tiles):
        img[(i // cols) * TILE : (i // cols + 1) * TILE, (i % cols) * TILE : (i % cols + 1) * TILE] = t
    out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out), img)
    return len(tiles)


def main(argv: list[str] | None = None) -> int:
    from benchmarks.real.closer import closer_look

    ap = argparse.ArgumentParser(
        prog="python -m benchmarks.real.looked", description=__doc__.split("\n\n")[0]
    )
    ap.add_argument("runs", type=Path, help="a `python -m benchmarks real --keep` folder")
    ap.add_argument("--sheets", type=Path, default=None, help="draw the unjudged boxes here (PNG per run)")
    args = ap.parse_args(argv)
    w = csv.writer(sys.stdout)
    for path in sorted(args.runs.glob("*/*.jsonl")):
        stem = path.parent.name
        if stem not in ALL:
            continue
        clip, ref = ALL[stem], load(ALL[stem])
        last = max(ref) + 1
        lines = [d for d in read_detection_lines(path) if d["frame"] < last]
        todo = unjudged(lines, ref, clip, closer_look(clip, lines, ref))
        if not todo:
            continue
        print(f"# {stem} {path.stem}: {sum(map(len, todo.values()))} boxes", file=sys.stderr)
        if args.sheets:
            sheet(clip, todo, ref, args.sheets / f"{stem}-{path.stem}.png")
        for n in sorted(todo):
            for b in todo[n]:
                w.writerow([stem, n, *(int(v) for v in b), "", ""])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
