"""Real footage (issue #31): a short cut of a real clip played through the live path and the planned
one, scored against the detector's reference boxes (benchmarks/real); a box on a face only a closer
look finds is not off face; a face hidden behind a passer-by leaves no box on the passer-by or on
the wall."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from benchmarks.real.reference import RealClip, reference
from benchmarks.scoring import score_real
from streamer.pipeline.tracking import FaceStage
from streamer.track.matching import iou_matrix
from streamer.track.tracker import TrackerRule
from streamer.types import Box, Detections, Face, Frame
from tests.support.tracking import two_faces_and_a_wall

ROOT = Path(__file__).resolve().parents[1]
CUT_FRAMES = 120  # 4 s of the office clip: three women at a laptop, 45-70 px faces, head turns
EVERY = 10  # reference frames


def _cut(src: Path, dst: Path, n: int) -> Path:
    """The first ``n`` frames of ``src`` into ``dst`` (MJPG, in a temp dir: never committed)."""
    cap = cv2.VideoCapture(str(src))
    fps = cap.get(cv2.CAP_PROP_FPS)
    w = cv2.VideoWriter(str(dst), cv2.VideoWriter_fourcc(*"MJPG"), fps, (int(cap.get(3)), int(cap.get(4))))
    for _ in range(n):
        ok, bgr = cap.read()
        if not ok:
            break
        w.write(bgr)
    w.release()
    cap.release()
    return dst


@pytest.fixture(scope="module")
def office(shared: Path, tmp_path_factory: pytest.TempPathFactory):
    """The cut, its reference boxes (cached in .cache/real like the benchmark's) and its size."""
    src = shared / "media" / "real" / "mfarayola-faces.mp4"
    if not src.exists():
        pytest.skip(f"{src} not found")
    clip = RealClip("mfarayola-faces", EVERY, CUT_FRAMES / 30.0)
    ref = reference(clip)
    assert sum(len(b) for b in ref.values()) >= 10  # three faces on most reference frames
    cut = _cut(src, tmp_path_factory.mktemp("real") / "office.avi", CUT_FRAMES)
    return cut, ref


def _annotate(cut: Path, out: Path, *extra: str, stderr: list[str] | None = None) -> list[dict]:
    jsonl = out / "faces.jsonl"
    r = subprocess.run(
        [sys.executable, "-m", "streamer", "annotate", str(cut), "--output", str(out / "out.avi"),
         "--detections", str(jsonl), *extra],
        capture_output=True, text=True, timeout=600, cwd=ROOT,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    if stderr is not None:
        stderr.append(r.stderr)
    return [json.loads(x) for x in jsonl.read_text().splitlines()]


@pytest.mark.slow
def test_a_real_clip_planned_boxes_its_faces_and_little_else(office, tmp_path: Path) -> None:
    cut, ref = office
    s = score_real(_annotate(cut, tmp_path, "--every", "4"), ref, EVERY, 30.0, (640, 360))
    assert s["recall_ge40"] >= 0.8, s
    assert s["boxes_off_face"] <= 0.1, s
    assert s["ids_per_track"] <= 1.5, s


@pytest.mark.slow
def test_a_real_clip_live_boxes_its_faces_once_the_detector_answers(office, tmp_path: Path) -> None:
    # live: detection as often as this machine allows (a loaded one answers late and rarely), so
    # the faces are counted from one second after the first box drawn, and the bounds are wide
    cut, ref = office
    err: list[str] = []
    lines = _annotate(cut, tmp_path, "--realtime", stderr=err)
    first = min((d["frame"] for d in lines if d["faces"]), default=None)
    rounds = re.search(r"(\d+) detection batches", err[0])
    assert rounds is not None, err[0][-2000:]
    if first is None and int(rounds.group(1)) < 4:  # (a track is drawn once confirmed: 2+ rounds)
        pytest.skip(f"{rounds.group(1)} detection rounds in 4 s: this machine is too loaded to judge")
    assert first is not None, f"no box drawn in 4 s of three faces, {rounds.group(1)} detection rounds"
    later = {n: b for n, b in ref.items() if n >= first + 30}
    if len(later) < 3:
        pytest.skip(f"the first box came at frame {first}: too late to score on a 4 s cut")
    s = score_real([d for d in lines if d["frame"] >= first + 30], later, EVERY, 30.0, (640, 360))
    assert s["recall_ge40"] >= 0.5, s
    assert s["boxes_off_face"] <= 0.25, s


def _scene(wall: np.ndarray, head: np.ndarray, passer: np.ndarray, x: int) -> tuple[np.ndarray, Box]:
    """The wall with ``head`` fixed at (100, 200) and a passer-by (a body of cloth under their own
    face) with their left edge at ``x``; the passer's face box."""
    im = wall.copy()
    im[200:264, 100:164] = head
    rng = np.random.default_rng(7)
    body = cv2.GaussianBlur(rng.integers(40, 220, (400, 130, 3), dtype=np.uint8), (0, 0), 1.5)
    x0, x1 = max(0, x), min(im.shape[1], x + 130)
    if x1 > x0:
        im[150:400, x0:x1] = body[:250, x0 - x : x1 - x]
        fx0, fx1 = max(0, x + 33), min(im.shape[1], x + 97)
        if fx1 > fx0:
            im[80:144, fx0:fx1] = passer[:, fx0 - x - 33 : fx1 - x - 33]
    return im, Box(x + 33, 80, x + 96, 143, 1.0)


def test_a_face_hidden_behind_a_passer_by_leaves_no_box_on_them_or_on_the_wall(shared: Path) -> None:
    # a face on a wall; someone walks past in front of it (their body hides it for ~20 frames) at
    # 6 px a frame. The detector (here: the truth) looks every 5th frame, its answer 3 frames
    # late, and finds the passer's face, and the wall face whenever it is in view. Within
    # HIDDEN_GRACE frames of the face going out of sight no box may lie on the passer's body or on
    # the wall where the face was, and none may be left once it is back
    head, passer, wall = two_faces_and_a_wall(shared)
    stage = FaceStage("s", 5, rule=TrackerRule(remember_s=0.0))
    hidden_box = (100, 200, 163, 263)
    waiting: list[tuple[int, Detections]] = []
    bad: list[tuple[int, tuple[int, int, int, int]]] = []
    HIDDEN_GRACE = 10
    hidden_since = None
    for n in range(110):
        x = -130 + 6 * n
        im, pbox = _scene(wall, head, passer, x)
        covered = x < 164 and x + 130 > 100  # the body overlaps the wall face
        hidden_since = (hidden_since if hidden_since is not None else n) if covered else None
        frame = Frame("s", n, im, n / 30)
        due = stage.due(n)
        stage.prepare(frame, plan=due)
        if due:
            faces = [Face(pbox)] if -20 < x < 600 else []
            if not covered:
                faces.append(Face(Box(*hidden_box, 1.0)))
            waiting.append((n + 3, Detections("s", n, frame.captured_at, tuple(faces))))
        while waiting and waiting[0][0] <= n:
            stage.on_detections(waiting.pop(0)[1])
        out = stage.finish(frame, draw=False)
        drawn = [(f.box.left, f.box.top, f.box.right, f.box.bottom) for f in out.faces]
        if hidden_since is not None and n - hidden_since >= HIDDEN_GRACE and drawn:
            on_passer = iou_matrix(drawn, [(pbox.left, pbox.top, pbox.right, pbox.bottom)])[:, 0]
            bad += [(n, d) for d, ok in zip(drawn, on_passer >= 0.5, strict=True) if not ok]
    assert not bad, f"boxes on no face while the wall face was hidden: {bad[:5]}"


def _line(n: int, *boxes: tuple[int, int, int, int]) -> dict:
    return {"frame": n, "faces": [{"left": b[0], "top": b[1], "right": b[2], "bottom": b[3]} for b in boxes]}


def test_a_box_on_a_face_only_a_closer_look_finds_is_not_counted_off_face() -> None:
    # one reference face; a second box drawn where the reference saw none: off face, unless a
    # closer look (benchmarks/real/closer.py) found a face there
    ref = {n: [Box(100, 100, 163, 163, 1.0)] for n in range(0, 90, 10)}
    lines = [_line(n, (100, 100, 163, 163), (300, 100, 339, 139)) for n in range(90)]
    plain = score_real(lines, ref, 10, 30.0, (640, 360))
    assert plain["boxes_off_face"] == 0.5 and plain["boxes_on_unreferenced_faces"] == 0
    closer = {n: [Box(302, 101, 340, 140, 0.9)] for n in ref}
    s = score_real(lines, ref, 10, 30.0, (640, 360), closer)
    assert s["boxes_off_face"] == 0 and s["boxes_on_unreferenced_faces"] == plain["boxes_drawn"] // 2
    assert s["recall_ge40"] == plain["recall_ge40"]  # the faces found closer do not count in recall
    far = {n: [Box(500, 200, 540, 240, 0.9)] for n in ref}  # a face found elsewhere does not excuse the box
    assert score_real(lines, ref, 10, 30.0, (640, 360), far)["boxes_off_face"] == 0.5


def test_a_scene_cut_ends_the_reference_tracks() -> None:
    # shot and reverse shot: one person's face, then at the cut another's in the same place; the
    # tracker starts a new track at a cut, which is one id per person, not two for one
    ref = {n: [Box(100, 100, 163, 163, 1.0)] for n in range(0, 90, 10)}
    lines = [_line(n, (100, 100, 163, 163)) for n in range(90)]
    for d in lines:
        d["faces"][0]["track"] = 1 if d["frame"] < 45 else 2
    assert score_real(lines, ref, 10, 30.0, (640, 360))["ids_per_track"] == 2
    s = score_real(lines, ref, 10, 30.0, (640, 360), cuts=[45])
    assert s["ids_per_track"] == 1 and s["tracks_ge40"] == 2


def test_a_closer_look_finds_a_small_face_the_whole_frame_reference_missed(
    shared: Path, tmp_path: Path
) -> None:
    # anon-sports-speeches, frame 280: a 37 px face the reference found on frames 230-270 and
    # misses from 280 on (the detector at the frame's own size); the same detector on the box
    # enlarged finds it. A box on the dark locker-room wall behind finds nothing
    from benchmarks.real.closer import closer_look
    from benchmarks.real.reference import CLIPS

    clip = CLIPS["anon-sports-speeches"]
    if not clip.path.exists():
        pytest.skip(f"{clip.path} not found")
    ref = {n: b for n, b in reference(clip).items() if n == 280}
    if not ref:
        pytest.skip("no cached reference for frame 280")
    on_face, on_wall = (114, 153, 151, 190), (600, 40, 637, 77)
    assert iou_matrix([xyxy_of(b) for b in ref[280]], [on_face, on_wall]).max() < 0.3
    found = closer_look(clip, [_line(280, on_face, on_wall)], ref, cache=tmp_path)
    near = iou_matrix([xyxy_of(b) for b in found[280]], [on_face, on_wall])
    assert near[:, 0].max() >= 0.5 and (near[:, 1] < 0.3).all(), found
    assert (tmp_path / "anon-sports-speeches-closer-up1.json").exists()  # cached by frame and box


def xyxy_of(b: Box) -> tuple[int, int, int, int]:
    return (b.left, b.top, b.right, b.bottom)


def test_realtime_annotate_stops_after_max_frames(tmp_path: Path) -> None:
    # the demo clip plays 275 frames in 9 s; --max-frames 30 stops it after about 1 s of play
    # (the bound leaves the event loop seconds of lateness on a loaded machine)
    from streamer.config import DEMO_VIDEO

    err: list[str] = []
    lines = _annotate(DEMO_VIDEO, tmp_path, "--realtime", "--max-frames", "30", stderr=err)
    assert lines and max(d["frame"] for d in lines) < 200, len(lines)
    # the log says how many frames it wrote, as a number (it printed a Python list: "[31]")
    written = re.search(r"realtime: (\S+) frames written", err[0])
    assert written is not None and written.group(1) == str(len(lines)), err[0][-1000:]
