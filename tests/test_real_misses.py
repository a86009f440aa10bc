"""benchmarks/real/misses.py: each missed reference face gets the cause the planned run shows; the
planned rows' detection work per frame (cli.per_frame)."""

from __future__ import annotations

import pytest

from benchmarks.real.cli import per_frame
from benchmarks.real.misses import CAUSES, classify, count
from streamer.detect.proposals import PROPOSE_COST
from streamer.types import Box, Face, Region

FPS, EVERY, LATENCY, SIZE = 8.0, 8, 6, (640, 480)
FACE = (300, 200, 349, 249)  # a 50 px face
ELSEWHERE = Region(0, 0, 199, 199, 2.0, "motion")
ON_IT = Region(250, 150, 399, 299, 2.0, "track")  # the face 100 px wide: MMOD sees it
HOG = Region(0, 0, 639, 479, 2.0, "propose")


def _ref(frames: range) -> dict[int, list[Box]]:
    return {n: [Box(*FACE, 1.0)] for n in frames}


def _lines(n_frames: int, box: tuple[int, int, int, int] | None = None) -> list[dict]:
    faces = [] if box is None else [{"left": box[0], "top": box[1], "right": box[2], "bottom": box[3]}]
    return [{"frame": n, "faces": faces} for n in range(n_frames)]


def _round(frame: int, planned: tuple[Region, ...], found: bool = False) -> dict:
    looked = tuple(r for r in planned if r.why != "propose")
    faces = (Face(Box(*FACE, 1.0)),) if found else ()
    return {"frame": frame, "faces": faces, "planned": planned, "looked": looked}


def _causes(ref, rounds, lines=None, states=None, cuts=()) -> list[str]:
    lines = lines or _lines(max(ref) + 1)
    out = classify(lines, rounds, states or {}, ref, EVERY, FPS, LATENCY, SIZE, cuts)
    return [m["cause"] for m in out]


def test_a_face_the_rounds_looked_at_finely_and_missed_is_not_found() -> None:
    ref = _ref(range(0, 33, 8))
    rounds = [_round(d, (ON_IT,)) for d in range(1, 33, 8)]
    assert set(_causes(ref, rounds)) == {"not_found"}
    # the same rounds at a scale where the face is 25 px: MMOD cannot see it there
    coarse = Region(0, 0, 639, 479, 0.5, "whole")
    assert set(_causes(ref, [_round(d, (coarse,)) for d in range(1, 33, 8)])) == {"not_looked"}


def test_a_face_only_hog_scanned_is_not_proposed_and_one_no_round_covered_is_not_looked() -> None:
    ref = _ref(range(0, 33, 8))
    assert set(_causes(ref, [_round(d, (HOG, ELSEWHERE)) for d in range(1, 33, 8)])) == {"not_proposed"}
    assert set(_causes(ref, [_round(d, (ELSEWHERE,)) for d in range(1, 33, 8)])) == {"not_looked"}
    # a round that proposed nothing still looked at its other regions: one on the face counts
    assert set(_causes(ref, [_round(d, (HOG, ON_IT)) for d in range(1, 33, 8)])) == {"not_found"}


def test_a_face_on_its_first_reference_frame_is_new() -> None:
    ref = {0: [], 8: [], 16: [Box(*FACE, 1.0)], 24: [Box(*FACE, 1.0)]}
    rounds = [_round(d, (ON_IT,)) for d in range(1, 25, 8)]
    assert _causes(ref, rounds) == ["new", "not_found"]


def test_a_face_found_and_then_without_a_track_is_lost_and_a_track_on_it_not_drawn_is_hidden() -> None:
    ref = _ref(range(0, 33, 8))
    rounds = [_round(d, (ON_IT,), found=d == 9) for d in range(1, 33, 8)]
    assert set(_causes(ref, rounds)) - {"not_found"} == {"lost"}  # (at 8: the round of 9 not in yet)
    hidden = {n: [{"box": FACE, "shown": False, "confirmed": True, "unsure": True}] for n in ref}
    assert set(_causes(ref, rounds, states=hidden)) == {"hidden"}


def test_a_drawn_box_off_the_face_is_box_off() -> None:
    ref = _ref(range(0, 33, 8))
    rounds = [_round(d, (ON_IT,)) for d in range(1, 33, 8)]
    beside = (320, 200, 369, 249)  # IoU 0.43 with the face
    assert set(_causes(ref, rounds, lines=_lines(33, beside))) == {"box_off"}
    assert _causes(ref, rounds, lines=_lines(33, FACE)) == []  # on it: no miss


def test_a_face_right_after_a_cut_before_any_answer_of_the_scene_is_after_cut() -> None:
    ref = _ref(range(0, 41, 8))
    # a cut at 20: rounds at 21 (answered at 27) and 29; the reference frame 24 had no answer yet
    rounds = [_round(d, (ON_IT,)) for d in (1, 9, 17, 21, 29, 37)]
    out = classify(_lines(41), rounds, {}, ref, EVERY, FPS, LATENCY, SIZE, [20])
    by_frame = {m["frame"]: m["cause"] for m in out}
    assert by_frame[24] == "after_cut" and by_frame[32] == "not_found"
    assert sum(count(out).values()) == len(out) and tuple(count(out)) == CAUSES


@pytest.mark.parametrize("frames", [0, 10])
def test_the_cost_per_frame_counts_mmod_and_hog_apart(frames: int) -> None:
    c = per_frame({"mmod": 4000.0, "hog": 60000.0}, frames)
    n = max(1, frames)
    assert c["mmod_px_per_frame"] == round(4000 / n)
    assert c["hog_px_per_frame"] == round(60000 / n)
    assert c["cost_px_per_frame"] == round((4000 + 60000 * PROPOSE_COST) / n)
