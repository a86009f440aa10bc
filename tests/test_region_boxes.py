"""Detection plans (#13), the boxes: mapping and merging region boxes, tracks outside the regions
looked at, faces found on older frames carried to now, and real MMOD boxes from regions and proposals
against the whole frame's."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from streamer.detect.proposals import PROPOSE_FACE_PX, cost
from streamer.detect.regions import boxes_in, cut, looked_at, merge, to_frame
from streamer.pipeline.planner import RegionPlanner, tiles
from streamer.track.tracker import Tracker, TrackerRule
from streamer.types import Box, Face, Region
from tests.test_regions import covered

W, H = 1920, 1080


# -- mapping and merging --------------------------------------------------------------------------


def test_region_boxes_map_back_and_duplicates_merge_by_dlibs_rule() -> None:
    r1, r2 = Region(0, 0, 399, 399, 2.0), Region(200, 0, 599, 399, 2.0)
    b = Box(250, 100, 329, 179, 1.0)  # a face in both regions
    in1, in2 = boxes_in(r1, [b])[0], boxes_in(r2, [b])[0]
    assert to_frame(in1, r1, W, H) == b and to_frame(in2, r2, W, H) == b
    other = Box(10, 10, 59, 59, 0.5)
    stronger = Box(in2.left, in2.top, in2.right, in2.bottom, 2.0)
    faces = merge([[Face(in1), Face(boxes_in(r1, [other])[0])], [Face(stronger)]], [r1, r2], W, H)
    assert sorted((f.box.left, f.box.confidence) for f in faces) == [(10, 0.5), (250, 2.0)]


def test_a_weak_detection_never_suppresses_a_face_in_the_merge() -> None:
    """A face near one region's cut (scored 0.4) and a weak box on it well inside another region:
    the face stays (a box well inside its region would otherwise go first and take its place)."""
    r1, r2 = Region(0, 0, 399, 399, 1.0), Region(0, 0, 299, 399, 1.0)
    face_box, weak_box = Box(230, 100, 289, 159, 0.4), Box(228, 98, 289, 159, -0.3)
    faces = merge([[Face(weak_box)], [Face(face_box)]], [r1, r2], W, H)
    assert [(f.box.left, f.box.confidence) for f in faces] == [(230, 0.4)]


def test_a_part_face_at_a_cut_edge_is_dropped() -> None:
    r = Region(200, 0, 599, 399, 1.0)
    at_edge = Box(0, 50, 39, 99, 1.0)  # region pixels: touches the left cut
    at_frame_edge = Box(10, 0, 49, 39, 1.0)  # touches the top, which is the frame's own edge
    faces = merge([[Face(at_edge), Face(at_frame_edge)]], [r], W, H)
    assert [f.box.left for f in faces] == [210]


def test_cut_scales_the_region() -> None:
    img = np.zeros((H, W, 3), np.uint8)
    assert cut(img, Region(10, 20, 109, 69, 2.0)).shape == (100, 200, 3)
    assert cut(img, Region(0, 0, W - 1, H - 1, 1 / 3)).shape == (360, 640, 3)


def test_hog_scans_the_region_in_grey_at_its_scale() -> None:
    """HOG's input is one channel (the grey of the region's pixels), the same size and place as
    ``cut`` gives MMOD: a grey scan costs HOG about a quarter less than colour for nearly the same
    proposals."""
    from streamer.detect.proposals import grey_cut

    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    r = Region(10, 20, 109, 69, 2.0, "propose")
    g = grey_cut(img, r)
    assert g.shape == (100, 200) and g.dtype == np.uint8
    want = cut(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY), r)
    assert np.abs(g.astype(int) - want.astype(int)).max() <= 1
    assert np.array_equal(grey_cut(img[..., 0], r), cut(img[..., 0], r))  # a grey frame as it is


def _left_after_a_round(boxes: list[Box], looked: Region) -> list[int]:
    """Tracks started on ``boxes`` (ending at their first miss), then a round over ``looked`` that
    finds nothing: the left edges of the tracks still there."""
    t = Tracker(TrackerRule(confirm_hits=1, max_misses=1, max_coast_s=0.0))
    grey = np.full((H, W, 3), 128, np.uint8)
    t.follow(grey, 0, 0.0)
    t.update([Face(b) for b in boxes], 0, 0.0)
    t.follow(grey, 1, 0.1)
    t.update([], 1, 0.1, looked=(looked,))
    return [tr.box[0] for tr in t.tracks]


def test_a_track_outside_the_regions_looked_at_is_not_missed() -> None:
    here = Region(0, 0, 639, 639, 2.0)
    assert looked_at(Box(100, 100, 139, 139, 0), [here]) and not looked_at(
        Box(1500, 800, 1539, 839, 0), [here]
    )
    faces = [Box(100, 100, 139, 139, 1.0), Box(1500, 800, 1539, 839, 1.0)]
    assert _left_after_a_round(faces, here) == [1500]  # the one looked at and not found ended
    # too small at a coarse region's scale: not looked at either
    assert not looked_at(Box(1500, 800, 1539, 839, 0), [Region(0, 0, W - 1, H - 1, 1 / 3)])
    # ... nor a face under MMOD's smallest there (a 50 px face at scale 1: MMOD finds none that small)
    assert not looked_at(Box(100, 100, 149, 149, 0), [Region(0, 0, 639, 639, 1.0)])
    assert looked_at(Box(100, 100, 179, 179, 0), [Region(0, 0, 639, 639, 1.0)])


def test_a_face_across_a_regions_edge_was_not_looked_at_but_one_cut_by_the_frame_was() -> None:
    """Half a face at a tile's edge is not a face to MMOD: a track there was not looked for, so a
    round that did not find it did not miss it (its centre inside the tile is not enough)."""
    tile = Region(0, 0, 319, 319, 2.0)
    across = Box(280, 100, 339, 159, 0)  # 60 px, centre in the tile, a third of it out
    assert not looked_at(across, [tile])
    assert looked_at(across, [tile, Region(280, 0, 639, 319, 2.0)])  # the next tile holds it
    assert looked_at(Box(270, 100, 329, 159, 0), [tile])  # cut by a sixth: still a face
    # a face partly outside the frame is cut alike in every region: it counts where it is shown
    off_frame = Box(-30, 100, 29, 159, 0)
    assert not looked_at(off_frame, [tile]) and looked_at(off_frame, [tile], frame=(W, H))
    # through the tracker: the track across the edge stays, the one inside the tile ends
    assert _left_after_a_round([Box(100, 100, 159, 159, 1.0), Box(280, 200, 339, 259, 1.0)], tile) == [280]


@pytest.mark.parametrize("speed", [6, 15])
def test_a_face_found_on_an_older_frame_starts_where_it_is_now(speed: int) -> None:
    """Live, a detection comes back ~10 frames after its frame: a face walking across a 1080p street
    has moved 2 face widths meanwhile (too far for one flow step), and is carried frame by frame."""
    rng = np.random.default_rng(1)
    texture = (rng.random((60, 60, 3)) * 255).astype(np.uint8)

    def frame(x: int) -> np.ndarray:
        im = np.full((480, 640, 3), 90, np.uint8)
        im[200:260, x : x + 60] = texture
        return im

    t = Tracker(TrackerRule(confirm_hits=1))
    for i in range(10):  # frame 0 goes to the detector
        t.follow(frame(100 + speed * i), i, i / 30, keep=(i == 0))
    t.update([Face(Box(100, 200, 159, 259, 1.0))], 0, 9 / 30)
    (tr,) = t.tracks
    assert abs(tr.box[0] - (100 + 9 * speed)) <= 3  # where the face is on frame 9, not where it was seen
    assert not t._frames  # no frame kept once no detection is awaited


def test_a_face_found_after_a_long_round_on_1080p_starts_where_it_is_now() -> None:
    """A round of 1080p regions can take longer than the grey frames kept fit (16 full-resolution
    1080p frames, while a small face keeps them at full resolution): the frame the detector saw is
    kept and frames between go, so the new face is still carried (it had started where it was
    seen, a face width or more off the face)."""
    rng = np.random.default_rng(2)
    texture = (rng.random((60, 60, 3)) * 255).astype(np.uint8)
    still = (rng.random((40, 40, 3)) * 255).astype(np.uint8)

    def frame(x: int) -> np.ndarray:
        im = np.full((1080, 1920, 3), 90, np.uint8)
        im[100:140, 100:140] = still  # a small tracked face: the flow works at full resolution
        im[500:560, x : x + 60] = texture
        return im

    t = Tracker(TrackerRule(confirm_hits=1))
    t.follow(frame(400), 0, 0.0)
    t.update([Face(Box(100, 100, 139, 139, 1.0))], 0, 0.0)
    late = 30
    for i in range(1, late + 1):  # frame 1 goes to the detector; its answer comes 29 frames later
        t.follow(frame(400 + 4 * i), i, i / 25, keep=(i == 1))
    t.update([Face(Box(100, 100, 139, 139, 1.0)), Face(Box(404, 500, 463, 559, 1.0))], 1, late / 25)
    new = [tr for tr in t.tracks if tr.box[1] > 400]
    assert len(new) == 1 and abs(new[0].box[0] - (400 + 4 * late)) <= 4


def test_a_fast_face_found_after_a_long_round_on_1080p_is_carried_to_it(shared) -> None:
    """A 48 px face crossing a 1080p street at 14 px a frame, answered 30 frames late: the frames
    kept between are 2-3 apart (16 full-resolution frames fit), 30-40 px of motion, past what
    frame-to-frame LK finds; a deeper pyramid and the face's own velocity carry it there (it had
    stayed where the flow lost it, a few face widths behind, and a box stood on the empty street)."""
    bgr = cv2.imread(str(shared / "data/dlib_faces/bald_guys.jpg"))
    face = cv2.resize(bgr[433:613, 552:732], (48, 48), interpolation=cv2.INTER_AREA)  # one man's face
    rng = np.random.default_rng(3)
    street = cv2.GaussianBlur((rng.random((1080, 1920, 3)) * 40 + 100).astype(np.uint8), (0, 0), 3)
    speed, late = -14, 30

    def frame(i: int) -> np.ndarray:
        im = street.copy()
        im[100:148, 100:148] = face  # a still face with a track: the flow stays at full resolution
        x = 1400 + speed * i
        im[500:548, x : x + 48] = face
        return im

    t = Tracker(TrackerRule(confirm_hits=1))
    t.follow(frame(0), 0, 0.0)
    t.update([Face(Box(100, 100, 147, 147, 1.0))], 0, 0.0)
    for i in range(1, late + 1):  # frame 1 goes to the detector; its answer comes 29 frames later
        t.follow(frame(i), i, i / 25, keep=(i == 1))
    gaps = np.diff(sorted(t._frames))
    assert gaps.max() >= 2  # the frames between were thinned: the case under test
    t.update(
        [Face(Box(100, 100, 147, 147, 1.0)), Face(Box(1400 + speed, 500, 1447 + speed, 547, 1.0))],
        1,
        late / 25,
    )
    (new,) = [tr for tr in t.tracks if tr.box[1] > 400]
    assert abs(new.box[0] - (1400 + speed * late)) <= 6, new.box


def test_frames_kept_for_carrying_are_bounded() -> None:
    """A detector that never answers must not make the tracker hold every frame."""
    from streamer.track.tracker import CARRY_BYTES, CARRY_FRAMES

    t = Tracker()
    im = np.zeros((120, 160, 3), np.uint8)
    for i in range(3 * CARRY_FRAMES):
        t.follow(im, i, i / 30, keep=(i % 7 == 0))
    assert 0 < len(t._frames) <= CARRY_FRAMES
    t = Tracker()  # 1080p frames (a small face keeps them at full resolution): bounded in bytes
    t.update([Face(Box(100, 100, 139, 139, 1.0))], 0, 0.0)
    im = np.zeros((1080, 1920, 3), np.uint8)
    for i in range(CARRY_FRAMES):
        t.follow(im, i, i / 30, keep=(i % 7 == 0))
    assert 0 < sum(g.nbytes for g, _ in t._frames.values()) <= CARRY_BYTES


# -- real boxes -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def engine():
    from streamer.inference.engine import Engine, EngineSpec

    return Engine(EngineSpec(detector="mmod", detect_max_side=0))


@pytest.mark.slow
def test_boxes_from_regions_match_the_whole_frames(engine, shared) -> None:
    """Regions at scale 1 see the frame's own pixels: the same faces as the whole frame, boxes
    close to its (MMOD's pyramid levels depend on the image size, so a face may be picked at a
    neighbouring level); at scale 2 (OpenCV's bilinear, not dlib's pyramid_up) they find what
    dlib's upsample 1 finds, with boxes a little apart."""
    img = cv2.cvtColor(cv2.imread(str(shared / "data/dlib_faces/2008_002506.jpg")), cv2.COLOR_BGR2RGB)
    h, w = img.shape[:2]
    (whole,), _ = engine.run([img])
    assert len(whole.faces) >= 2
    plan = tuple(tiles(w, h, 1.0, 256, "sweep"))
    assert len(plan) > 1
    (parts,), _ = engine.run([img], None, [plan])
    ious = _best_ious(whole.faces, parts.faces)
    assert len(parts.faces) == len(whole.faces) and min(ious) >= 0.5 and np.mean(ious) >= 0.75, ious

    engine.spec = engine.spec.__class__(detector="mmod", detect_max_side=0, upsample=1)
    (up,), _ = engine.run([img])
    engine.spec = engine.spec.__class__(detector="mmod", detect_max_side=0)
    (parts2,), _ = engine.run([img], None, [tuple(tiles(w, h, 2.0, 640, "sweep"))])
    assert len(up.faces) >= len(whole.faces)
    ious = _best_ious(up.faces, parts2.faces)
    assert min(ious) >= 0.5 and np.mean(ious) >= 0.7, ious
    assert len(parts2.faces) <= len(up.faces) + 1


def _best_ious(ref, got) -> list[float]:
    from streamer.track.matching import iou

    def xy(b):
        return (b.left, b.top, b.right, b.bottom)

    return [max((iou(xy(r.box), xy(g.box)) for g in got), default=0.0) for r in ref]


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
    from streamer.detect.regions import cut

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


def test_a_track_too_small_to_be_found_in_its_own_region_is_missed_once_it_coasted() -> None:
    """A box the flow shrank under what its track region lets the detector find (a head turning
    away: 25 px at the 40 px-face scale 2) is never looked for, so it was never missed and stayed
    on the back of a head for seconds. Looked at in its own region and not found, it counts as
    missed once it has gone ``max_coast_s`` without a detection, and ends at the second such
    round; a region of another kind (the coarse frame) does not count, nor does a track in time."""
    rule = TrackerRule(confirm_hits=1)
    grey = np.full((H, W, 3), 128, np.uint8)
    small = Box(600, 300, 624, 324, 1.0)
    track = Region(575, 275, 649, 349, 2.0, "track")
    coarse = Region(0, 0, W - 1, H - 1, 0.5, "whole")
    t = Tracker(rule)
    t.follow(grey, 0, 0.0)
    t.update([Face(small)], 0, 0.0)
    for n, (at, looked) in enumerate([(0.5, track), (1.2, coarse)], start=1):
        t.follow(grey, n, at)
        t.update([], n, at, looked=(looked,))
        assert t.tracks[0].misses == 0  # (in time; or a look that could not have seen it either way)
    t.follow(grey, 3, 1.3)
    t.update([], 3, 1.3, looked=(track,))
    assert t.tracks[0].misses == 1
    t.follow(grey, 4, 1.7)
    t.update([], 4, 1.7, looked=(track,))
    assert not t.tracks
