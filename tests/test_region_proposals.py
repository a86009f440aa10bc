"""Detection plans (#13), HOG's proposals: a proposal tile a round on big frames, a new scene's
second look, rounds planned after an answer, the stage's hidden tracks, and real small faces that
HOG proposes and MMOD boxes."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from streamer.detect.proposals import PROPOSE_FACE_PX, cost
from streamer.detect.regions import cut, looked_at
from streamer.pipeline.planner import RegionPlanner
from streamer.types import Box, Face, Region
from tests.test_region_boxes import _best_ious
from tests.test_regions import covered

W, H = 1920, 1080


@pytest.fixture(scope="module")
def engine():
    from streamer.inference.engine import Engine, EngineSpec

    return Engine(EngineSpec(detector="mmod", detect_max_side=0))


# -- proposals ------------------------------------------------------------------------------------


def test_big_frames_get_a_proposal_tile_a_round_and_a_webcam_none() -> None:
    """On 1080p every round scans the next tile with HOG (within the round's budget, at HOG's cost),
    and the tiles cover the frame in turn; a 640x480 frame whose coarse look sees every face wanted
    plans as before (no proposals), one whose coarse look misses the smallest gets them too. The
    first round (a new scene's) is the coarse look alone, within budget (big faces boxed at once);
    the second scans all of the frame at once, as one region, over budget (faces there boxed in
    two rounds); after a scene cut the same again."""
    p = RegionPlanner(min_face_px=40, budget_px=640 * 480)
    n = len(p.proposal_tiles(W, H))
    assert n > 1
    for _ in range(2):
        first = p.plan(W, H, [], [], 0.0)
        assert [r.why for r in first] == ["whole"] and sum(cost(r) for r in first) <= p.round_budget(W, H)
        (second,) = [r for r in p.plan(W, H, [], [], 0.0) if r.why == "propose"]
        assert covered([second], W, H).all() and second.scale == pytest.approx(p.proposal_scale(W, H))
        assert cost(second) <= 1.3 * p.round_budget(W, H)
        p.fresh = True
    p.plan(W, H, [], [], 0.0)
    p.plan(W, H, [], [], 0.0)
    seen = []
    for _ in range(n):
        plan = p.plan(W, H, [(1, Box(100, 100, 139, 139, 1.0))], [], 0.0)
        props = [r for r in plan if r.why == "propose"]
        assert len(props) == 1 and props[0].scale == pytest.approx(60 / 40)  # (1080p: 60 px, cost)
        assert sum(cost(r) for r in plan) <= 1.05 * p.round_budget(W, H)
        seen += props
    assert covered(seen, W, H).all()
    assert p.proposal_scale(1280, 720) == pytest.approx(PROPOSE_FACE_PX / 40)  # (HOG's own window)
    assert p.proposal_scale(640, 640) == pytest.approx(PROPOSE_FACE_PX / 40)
    webcam = RegionPlanner(min_face_px=80, budget_px=640 * 480)
    assert not [r for _ in range(6) for r in webcam.plan(640, 480, [], [], 0.0) if r.why == "propose"]
    small = RegionPlanner(min_face_px=40, budget_px=640 * 480)  # the coarse look sees faces from 80 px
    rounds = [small.plan(640, 360, [], [], 0.0) for _ in range(6)]
    assert not [r for r in rounds[0] if r.why == "propose"]  # the first: the whole frame at the finest scale
    assert all(any(r.why == "propose" for r in plan) for plan in rounds[1:])
    # a propose region is not a look at a track in it: MMOD looked only at what HOG proposed
    assert not looked_at(Box(100, 100, 139, 139, 0), props)


def test_a_new_scenes_second_look_is_due_at_once_whatever_detect_every_says() -> None:
    """On 720p with detection every 8th frame: the first frame's round is the coarse look, the
    next frame's the HOG scan of all of it (not 8 frames later); then every 8th frame again."""
    from streamer.pipeline.tracking import FaceStage
    from streamer.types import Frame

    stage = FaceStage("s", 8, planner=RegionPlanner(min_face_px=40, budget_px=640 * 480))
    img = np.full((720, 1280, 3), 128, np.uint8)
    plans = {}
    for n in range(10):
        if stage.due(n):
            plans[n] = [r.why for r in stage.prepare(Frame("s", n, img, n / 25), plan=True)]
        else:
            stage.prepare(Frame("s", n, img, n / 25))
    assert sorted(plans) == [0, 1, 9]
    assert plans[0] == ["whole"] and plans[1] == ["propose"]
    assert plans[9].count("propose") == 1  # the next strip, as every round


def test_a_round_planned_after_an_answer_came_looks_at_the_faces_it_found() -> None:
    """An answer that came while no frame was planned (sync_output let its frames go after a slow
    round: the stream's first HOG scan) is applied before the next round is planned, so that round
    looks at the faces it found (a ``track`` region), not only at the next tile and sweep: planned
    first, they waited a round more for their second look and their box."""
    from streamer.pipeline.tracking import FaceStage
    from streamer.types import Detections, Frame

    stage = FaceStage("s", 8, planner=RegionPlanner(min_face_px=40, budget_px=640 * 480))
    img = np.random.default_rng(0).integers(0, 255, (720, 1280, 3), dtype=np.uint8)
    face = Box(600, 300, 647, 347, 1.0)
    for n in range(9):
        frame = Frame("s", n, img, n / 25)
        stage.prepare(frame, plan=stage.due(n))
        stage.finish(frame)
    stage.on_detections(Detections("s", 1, 1 / 25, (Face(face),), ()))  # (frame 1's round: the HOG scan)
    assert stage.due(9)
    plan = stage.prepare(Frame("s", 9, img, 9 / 25), plan=True)
    tracks = [r for r in plan if r.why == "track"]
    assert len(tracks) == 1 and looked_at(face, tracks)


@pytest.mark.parametrize("hidden", [False, True])
def test_the_stage_hands_the_planner_its_hidden_tracks(hidden: bool) -> None:
    """A shown track looked at one round is not due the next (``TRACK_EVERY``), unless its box is
    hidden now (here: what lies under it changed, it no longer looks like the face): the stage
    tells the planner which tracks are hidden."""
    from streamer.pipeline.tracking import FaceStage
    from streamer.types import Detections, Frame

    stage = FaceStage("s", 8, planner=RegionPlanner(min_face_px=40, budget_px=640 * 480))
    rng = np.random.default_rng(0)
    img = cv2.GaussianBlur(rng.integers(0, 255, (720, 1280, 3), dtype=np.uint8), (0, 0), 3)
    changed = img.copy()  # (texture the flow follows; the second with other picture under the face)
    changed[290:358, 590:658] = cv2.GaussianBlur(rng.integers(0, 255, (68, 68, 3), dtype=np.uint8), (0, 0), 3)
    face = Box(600, 300, 647, 347, 1.0)
    plans, shown = {}, {}
    for n in range(18):
        frame = Frame("s", n, changed if hidden and n >= 12 else img, n / 25)
        due = stage.due(n)
        regions = stage.prepare(frame, plan=due)
        if n == 1:
            stage.on_detections(Detections("s", 1, 1 / 25, (Face(face),), regions))
        stage.finish(frame)
        shown[n] = [tr.shown for tr in stage.tracker.tracks]
        if due:
            plans[n] = [r for r in regions if r.why == "track"]
    assert looked_at(face, plans[9])  # (new: at once)
    assert shown[16] == [not hidden]
    assert bool(plans[17]) == hidden


@pytest.mark.slow
def test_proposals_find_small_faces_and_mmod_gives_the_boxes(engine, shared) -> None:
    """A 720p frame with 24 faces of 38-114 px: the coarse look misses them, the propose region (HOG
    at PROPOSE_FACE_PX, then MMOD on each face proposed) finds nearly all, its faces are those MMOD
    finds on the regions it was given, and faces already known (tracked) are not looked at again."""
    from streamer.detect.proposals import Proposer

    still = cv2.cvtColor(cv2.imread(str(shared / "data/dlib_faces/bald_guys.jpg")), cv2.COLOR_BGR2RGB)
    (on_still,), _ = engine.run([still])
    s, x0, y0 = 0.4, 300, 60
    small = cv2.resize(still, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
    frame = np.full((720, 1280, 3), 100, np.uint8)
    frame[y0 : y0 + small.shape[0], x0 : x0 + small.shape[1]] = small
    truth = [
        Box(
            round(f.box.left * s) + x0,
            round(f.box.top * s) + y0,
            round(f.box.right * s) + x0,
            round(f.box.bottom * s) + y0,
            1.0,
        )
        for f in on_still.faces
        if f.box.width * s >= 40
    ]
    assert len(truth) >= 20
    (coarse,), _ = engine.run([frame], None, [(Region(0, 0, 1279, 719, 0.5, "whole"),)])
    propose = (Region(0, 0, 1279, 719, PROPOSE_FACE_PX / 40, "propose"),)
    (found,), _ = engine.run([frame], None, [propose])
    assert np.mean([i >= 0.5 for i in _best_ious([Face(b) for b in truth], coarse.faces)]) < 0.2
    assert np.mean([i >= 0.5 for i in _best_ious([Face(b) for b in truth], found.faces)]) >= 0.9
    looks = Proposer().expand(frame, propose)
    assert looks and all(r.why == "verify" for r in looks)
    (again,), _ = engine.run([frame], None, [looks])
    assert [f.box for f in again.faces] == [f.box for f in found.faces]
    known = [f.box for f in found.faces]
    left = Proposer().expand(frame, propose, known)  # (what is left: proposals MMOD found no face on)
    assert len(left) < len(looks) - len(known) // 2
    assert not any(b.left <= (r.left + r.right) / 2 <= b.right and b.top <= (r.top + r.bottom) / 2 <= b.bottom
                   for r in left for b in known)  # fmt: skip


@pytest.mark.slow
def test_a_lower_propose_threshold_proposes_a_faint_face_and_the_config_reaches_the_engine(shared) -> None:
    """On a real meeting (bitornobit-meeting, frame 30) HOG scores a 40 px face at about -0.6 (its
    grey scan): a threshold of -0.5 does not propose it, -0.8 does; ``pipeline.propose_threshold``
    reaches the worker's Engine through its spec (its default: ``PROPOSE_THRESHOLD``)."""
    from streamer.config import Config
    from streamer.detect.proposals import PROPOSE_THRESHOLD, Proposer
    from streamer.inference.engine import engine_spec

    path = shared / "media" / "real" / "bitornobit-meeting.mp4"
    if not path.exists():
        pytest.skip(f"{path} not found")
    cap = cv2.VideoCapture(str(path))
    cap.set(cv2.CAP_PROP_POS_FRAMES, 30)
    ok, bgr = cap.read()
    cap.release()
    assert ok
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    tile = Region(0, 0, 639, 359, PROPOSE_FACE_PX / 40, "propose")
    face = Box(465, 133, 504, 173, 1.0)

    def on_face(p: Proposer) -> bool:
        return any(b.iou(face) >= 0.5 for b in p.propose(rgb, tile))

    assert not on_face(Proposer(-0.5)) and on_face(Proposer(-0.8))
    # the Proposer scans grey: a grey frame proposes exactly what the RGB one does, and a colour
    # scan of this frame would not (its scores differ)
    from streamer.detect.proposals import hog_scan

    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    assert Proposer(-0.8).propose(rgb, tile) == Proposer(-0.8).propose(grey, tile)
    p = Proposer(-0.8)
    p.propose(rgb, tile)  # (loads HOG)
    assert hog_scan(p._hog, rgb, tile, -0.8, view=cut) != p.propose(rgb, tile)
    spec = engine_spec(Config.model_validate({"pipeline": {"propose_threshold": -0.8}}))
    assert spec.propose_threshold == -0.8 and engine_spec(Config()).propose_threshold == PROPOSE_THRESHOLD
    assert Proposer().threshold == PROPOSE_THRESHOLD


def test_a_worker_that_proposes_loads_hog_at_warm_up_and_one_that_does_not_never_loads_it() -> None:
    """Loading dlib's HOG detector takes about 0.5 s: done in the first proposal round, it held a
    stream's first small faces that long (a street clip's first boxes came 1.3-2.2 s in). The
    Engine's warm-up loads it where the config sends propose regions (strategy regions, propose on,
    local workers), and nowhere else (without proposals, or behind Triton, which plans none)."""
    from dataclasses import replace

    from streamer.config import Config
    from streamer.inference.engine import Engine, engine_spec

    def spec(**pipeline: object):
        return replace(engine_spec(Config.model_validate({"pipeline": pipeline})), classifiers=())

    on = spec()
    assert on.propose
    assert not spec(propose=False).propose and not spec(strategy="whole").propose
    assert not spec(backend="triton", triton_urls=["model-server:8001"]).propose
    engine = Engine(on)
    assert engine._proposer._hog is None
    engine.warm_up()
    assert engine._proposer._hog is not None
    engine = Engine(spec(propose=False))
    engine.warm_up()
    assert engine._proposer._hog is None
