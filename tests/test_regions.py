"""Detection plans (#13): the planner's regions (tracks, motion, sweep) and budget, and the motion
detector. The boxes regions give are checked in test_region_boxes.py."""

from __future__ import annotations

import numpy as np
import pytest

from streamer.detect.regions import FACE_PX
from streamer.pipeline.motion import MotionDetector
from streamer.pipeline.planner import TRACK_CONTEXT, TRACK_EVERY, TRACK_FACE_PX, RegionPlanner, tiles
from streamer.track.tracker import Tracker, TrackerRule
from streamer.types import Box, Face, Region

W, H = 1920, 1080


def past_the_first_round(p: RegionPlanner) -> RegionPlanner:
    """The first round looks at the whole frame at tile_px: the rounds under test come after it."""
    (r,) = p.plan(W, H, [], [], 0.0)
    assert r.why == "whole" and r.scale == pytest.approx(640 / W)
    return p


def covered(regions, width, height) -> np.ndarray:
    m = np.zeros((height, width), bool)
    for r in regions:
        m[r.top : r.bottom + 1, r.left : r.right + 1] = True
    return m


# -- the planner ----------------------------------------------------------------------------------


def test_a_frame_affordable_at_the_min_face_scale_is_one_region() -> None:
    p = RegionPlanner(min_face_px=80, budget_px=640 * 480)
    (r,) = p.plan(640, 480, [], [], 0.0)
    assert (r.left, r.top, r.right, r.bottom, r.scale) == (0, 0, 639, 479, 1.0)
    # the same frame with 40 px faces wanted costs 4x: more than the budget, so regions (after a
    # scene's first round, which looks at all of it at that scale once: faces there boxed at once)
    p = RegionPlanner(min_face_px=40, budget_px=640 * 480, propose=False)
    (first,) = p.plan(640, 480, [], [], 0.0)
    assert (first.why, first.scale) == ("whole", 2.0)
    plan = p.plan(640, 480, [], [], 0.0)
    assert plan and all(r.why != "whole" or r.scale < 2 for r in plan)
    p.fresh = True  # a scene cut (FaceStage): the next round looks at all of it again
    assert p.plan(640, 480, [], [], 0.0) == (first,)


def test_tracks_come_first_at_a_scale_that_fits_the_face() -> None:
    p = past_the_first_round(RegionPlanner(min_face_px=40, budget_px=640 * 480, propose=False))
    small, big = Box(100, 100, 139, 139, 1.0), Box(1000, 300, 1299, 599, 1.0)
    plan = p.plan(W, H, [(1, small), (2, big)], [], 0.0)
    tr = [r for r in plan if r.why == "track"]
    assert len(tr) == 2
    for r, b in zip(tr, (small, big), strict=True):
        assert r.left <= b.left and r.right >= b.right and r.top <= b.top and r.bottom >= b.bottom
        assert FACE_PX <= b.width * r.scale <= 1.3 * FACE_PX  # big enough for MMOD, no bigger than needed
    assert sum(r.pixels for r in plan) <= p.round_budget(W, H)


def test_motion_is_looked_at_on_the_min_face_scale_and_the_sweep_fills_the_rest() -> None:
    p = past_the_first_round(RegionPlanner(min_face_px=40, budget_px=640 * 480, propose=False))
    plan = p.plan(W, H, [], [(800.0, 400.0, 839.0, 459.0)], 0.01)
    motion = [r for r in plan if r.why == "motion"]
    assert motion and all(r.scale == pytest.approx(FACE_PX / 40) for r in motion)
    m = covered(motion, W, H)
    assert m[360:500, 760:880].all()  # what moved, with a margin of a face
    assert any(r.why in ("sweep", "whole") for r in plan)
    assert sum(r.pixels for r in plan) <= p.round_budget(W, H)


def test_the_sweep_covers_the_frame_at_the_min_face_scale_over_rounds() -> None:
    p = RegionPlanner(min_face_px=40, budget_px=640 * 480, propose=False)
    seen: list[Region] = []
    cycle = p.sweep_cycle(W, H)
    for _ in range(2 * len(cycle)):
        seen += p.plan(W, H, [], [], 0.0)
    finest = [r for r in seen if r.scale == pytest.approx(p.scale)]
    assert covered(finest, W, H).all()
    assert any(r.why == "whole" for r in seen)  # and the coarse whole frame, for big faces
    # every round kept to its budget (one sweep region may overrun when nothing else was planned)
    assert max(r.pixels for r in cycle) <= 1.01 * p.round_budget(W, H) / 2


def test_a_bigger_frame_gets_a_bigger_round() -> None:
    p = RegionPlanner(min_face_px=40, budget_px=640 * 480, propose=False)
    assert p.round_budget(640, 480) == p.round_budget(320, 240) == 640 * 480
    assert p.round_budget(W, H) == pytest.approx(640 * 480 * (W * H / (640 * 480)) ** 0.5, rel=1e-3)


def test_tiles_overlap_so_a_face_at_a_seam_lies_whole_in_one() -> None:
    ts = tiles(W, H, 2.0, 640, "sweep")
    assert covered(ts, W, H).all()
    face_src = FACE_PX / 2.0  # a min-size face, in source pixels
    for x in range(0, W - int(face_src), 37):
        assert any(t.left <= x and x + face_src - 1 <= t.right for t in ts if t.top == 0), x


def test_tracks_not_looked_at_lately_go_first_when_the_budget_is_short() -> None:
    p = past_the_first_round(
        RegionPlanner(
            min_face_px=40, budget_px=int(1.2 * (TRACK_CONTEXT * TRACK_FACE_PX) ** 2), propose=False
        )
    )
    tracks = [(i, Box(100 + 150 * i, 100, 139 + 150 * i, 139, 1.0)) for i in range(6)]
    first = {r.left for r in p.plan(W, H, tracks, [], 0.0) if r.why == "track"}
    second = {r.left for r in p.plan(W, H, tracks, [], 0.0) if r.why == "track"}
    everyone = {r.left for r in (p._track_region(b, W, H) for _, b in tracks)}
    assert first < everyone  # not all fit in one round
    assert everyone - first <= second  # the ones left out come first in the next


def test_a_track_is_looked_at_every_few_rounds_and_a_new_one_at_once() -> None:
    p = past_the_first_round(RegionPlanner(min_face_px=40, budget_px=640 * 480, propose=False))
    a, b = (1, Box(100, 100, 139, 139, 1.0)), (2, Box(900, 500, 949, 549, 1.0))

    def looked(tracks) -> set[int]:
        plan = p.plan(W, H, tracks, [], 0.0)
        return {
            tid
            for tid, box in tracks
            if any(r.why == "track" and r.left <= box.left <= r.right for r in plan)
        }

    seen = [looked([a]) for _ in range(2 * TRACK_EVERY)]
    assert [1 in x for x in seen] == ([True] + [False] * (TRACK_EVERY - 1)) * 2
    rounds = [looked([a, b]) for _ in range(TRACK_EVERY)]
    assert 2 in rounds[0]  # the new track at once, whatever the old one's turn


def test_a_track_whose_box_is_hidden_is_looked_at_again_at_once() -> None:
    """A shown track whose box is not drawn now (it no longer looks like the face the detector saw:
    a face grown and turned since, a box pulled off its face) is due every round until the detector
    finds it or the track ends, not ``TRACK_EVERY`` rounds later: on the street clip a walking man's
    box stayed hidden 0.4-2.8 s, his face in plain view, until his track's turn came round."""
    p = past_the_first_round(RegionPlanner(min_face_px=40, budget_px=640 * 480, propose=False))
    a, b = (1, Box(100, 100, 139, 139, 1.0)), (2, Box(900, 500, 949, 549, 1.0))

    def looked(hidden: set[int]) -> set[int]:
        plan = p.plan(W, H, [a, b], [], 0.0, hidden=hidden)
        tracked = [r for r in plan if r.why == "track"]
        return {tid for tid, box in (a, b) if any(r.left <= box.left <= r.right for r in tracked)}

    assert looked(set()) == {1, 2}  # (new: at once)
    assert [looked({1}) for _ in range(TRACK_EVERY - 1)] == [{1}] * (TRACK_EVERY - 1)
    assert looked(set()) == {2}  # (b's turn again; a was just looked at)


def test_the_place_a_track_left_is_looked_at_once() -> None:
    """Someone walking past a standing person pulls the standing one's box along: the place where
    the detector last saw a face, now left by its track, is looked at again (once)."""
    t = Tracker(TrackerRule(confirm_hits=1))
    t.update([Face(Box(200, 600, 259, 659, 1.0))], 0, 0.0)
    (tr,) = t.tracks
    assert t.left_behind() == []
    tr.box += [70.0, 0.0, 70.0, 0.0]  # the box went off with a passer-by
    (site,) = t.left_behind()
    assert site[0] == tr.id and (site[1].left, site[1].top, site[1].right, site[1].bottom) == (
        200,
        600,
        259,
        659,
    )
    p = past_the_first_round(RegionPlanner(min_face_px=40, budget_px=640 * 480, propose=False))

    def looks_at_site(plan) -> bool:
        return any(r.why == "track" and r.left <= 200 and r.right >= 259 and r.top <= 600 for r in plan)

    first = p.plan(W, H, t.predicted(), [], 0.0, t.left_behind())
    assert looks_at_site(first)
    assert not any(looks_at_site(p.plan(W, H, t.predicted(), [], 0.0, t.left_behind())) for _ in range(4))


def test_a_moving_camera_gets_tracks_and_the_coarse_frame() -> None:
    p = RegionPlanner(min_face_px=40, budget_px=640 * 480, propose=False)
    plan = p.plan(W, H, [(1, Box(100, 100, 139, 139, 1.0))], [(0.0, 0.0, W - 1.0, H - 1.0)], 0.9)
    assert [r.why for r in plan] == ["whole", "track"]
    assert plan[0].scale == pytest.approx(640 / W)
    # then every few rounds: every 6th at 1080p for 40 px faces, every 2nd on a 640x480 webcam
    assert p.coarse_every(W, H) == 6 and p.coarse_every(640, 480) == 2
    whys = [[r.why for r in p.plan(W, H, [], [], 0.0)] for _ in range(12)]
    assert [k for k, w in enumerate(whys) if "whole" in w] == [5, 11]


# -- motion ------------------------------------------------------------------------------------------


def test_motion_finds_what_moved_and_nothing_when_still() -> None:
    rng = np.random.default_rng(0)
    background = (rng.random((H, W)) * 40 + 100).astype(np.uint8)  # grey, as the tracker keeps it
    m = MotionDetector()
    for x in (500, 520, 540):
        frame = background.copy()
        frame[300:400, x : x + 80] = 250
        m.update(frame, (W, H))
    boxes, fraction = m.take()
    assert len(boxes) == 1 and 0 < fraction < 0.05
    x0, y0, x1, y1 = boxes[0]
    assert x0 <= 500 and x1 >= 620 and y0 <= 300 and y1 >= 399 and x1 - x0 < 300
    for _ in range(3):
        m.update(background, (W, H))
    m.take()
    m.update(background, (W, H))
    assert m.take() == ([], 0.0)
    m.update(background // 2, (W, H))  # the whole picture changed
    assert m.take()[1] > 0.5


def test_motion_a_track_explains_is_left_out() -> None:
    """A tracked person walking is not a new face to look for; someone else moving still is."""
    rng = np.random.default_rng(0)
    background = (rng.random((H, W)) * 40 + 100).astype(np.uint8)  # grey, as the tracker keeps it
    m = MotionDetector()
    for x in (500, 520, 540):
        frame = background.copy()
        frame[300:360, x : x + 60] = 250  # a tracked face
        frame[360:600, x - 30 : x + 90] = 30  # its body
        frame[700:760, 1400 - x : 1460 - x] = 250  # someone untracked
        m.update(frame, (W, H), [(x, 300, x + 59, 359)])
    boxes, _ = m.take()
    assert len(boxes) == 1
    x0, y0, _, _ = boxes[0]
    assert y0 >= 650 and x0 >= 800
