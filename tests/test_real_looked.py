"""Boxes judged by looking on the real clips (benchmarks/real/looked.py): a box on a face the
detector does not see is not off face; a box judged no face is; boxes nobody judged are counted."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from benchmarks.real import closer, looked
from benchmarks.real.reference import ALL, RealClip
from benchmarks.scoring import score_real
from streamer.types import Box

FIELDS = "clip,frame,x0,y0,x1,y1,face,note\n"
REF = {n: [Box(100, 100, 163, 163, 1.0)] for n in range(0, 90, 10)}  # one face the reference sees


def _lines(*extra: tuple[int, int, int, int]) -> list[dict]:
    boxes = [(100, 100, 163, 163), *extra]
    return [
        {"frame": n, "faces": [{"left": b[0], "top": b[1], "right": b[2], "bottom": b[3]} for b in boxes]}
        for n in range(90)
    ]


def _csv(tmp_path: Path, rows: list[str]) -> Path:
    p = tmp_path / "looked.csv"
    p.write_text(FIELDS + "".join(r + "\n" for r in rows))
    return p


@pytest.fixture
def clip(monkeypatch: pytest.MonkeyPatch) -> RealClip:
    monkeypatch.setattr(closer, "clip_info", lambda path: (30.0, 90, 640, 360))
    return RealClip("c", 10, 3.0)


def test_a_box_judged_a_face_is_on_a_face_and_one_judged_no_face_stays_off(tmp_path: Path, clip) -> None:
    # a second box where the reference sees nothing (a bowed head, say), on frames 30-80
    lines = _lines((300, 100, 339, 139))
    plain = score_real(lines, REF, 10, 30.0, (640, 360))
    assert plain["boxes_off_face"] == 0.5
    rows = [f"c,{n},302,101,340,140,{1 if n < 60 else 0},bowed head" for n in range(30, 90, 10)]
    path = _csv(tmp_path, rows)
    s = score_real(lines, REF, 10, 30.0, (640, 360), looked.with_faces({}, "c", path))
    # three of the six later boxes judged faces: they count as on faces, the other three stay off
    assert s["boxes_on_unreferenced_faces"] == 3 and s["recall_ge40"] == plain["recall_ge40"]
    assert s["boxes_off_face"] == round((plain["boxes_drawn"] // 2 - 3) / plain["boxes_drawn"], 4)
    # every box off face from 1 s on (frame 30) is judged, either way: none is left to look at
    assert looked.unjudged(lines, REF, clip, {}, path) == {}
    assert looked.unjudged(lines, REF, clip, {}, _csv(tmp_path, rows[:4])).keys() == {70, 80}


def test_unjudged_lists_the_boxes_off_face_no_look_explains(tmp_path: Path, clip) -> None:
    lines = _lines((300, 100, 339, 139), (500, 200, 539, 239))
    path = _csv(tmp_path, ["c,40,302,101,340,140,1,turned face", "c,50,498,198,540,240,0,a sign"])
    left = looked.unjudged(lines, REF, clip, {60: [Box(300, 100, 339, 139, 0.3)]}, path)
    # from 1 s on (frame 30): both boxes on every reference frame, less the judged and the closer-found
    want = {n: [(300, 100, 339, 139), (500, 200, 539, 239)] for n in range(30, 90, 10)}
    want[40] = [(500, 200, 539, 239)]
    want[50] = [(300, 100, 339, 139)]
    want[60] = [(500, 200, 539, 239)]
    assert {n: [tuple(b) for b in bs] for n, bs in left.items()} == want


def test_the_judgements_are_on_reference_frames_of_known_clips_and_say_what_was_seen() -> None:
    with looked.LOOKED.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows, "looked.csv holds no judgement"
    for r in rows:
        c = ALL.get(r["clip"])
        assert c is not None, r
        assert int(r["frame"]) % c.every == 0, f"not a reference frame of {c.stem}: {r}"
        assert int(r["x0"]) < int(r["x1"]) and int(r["y0"]) < int(r["y1"]), r
        assert r["face"] in ("0", "1") and r["note"].strip(), r
        assert None not in r, f"a note with a comma, unquoted: {r}"
    keys = [(r["clip"], r["frame"], r["x0"], r["y0"], r["x1"], r["y1"]) for r in rows]
    assert len(keys) == len(set(keys)), "a box judged twice"
