"""Detection plans (#13), the boxes: mapping and merging region boxes, tracks outside the regions
looked at (or too small to be found in their own), faces found on older frames carried to now, and
real MMOD boxes from regions against the whole frame's (proposals: test_region_proposals.py)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from streamer.detect.regions import boxes_in, cut, looked_at, merge, to_frame
from streamer.pipeline.planner import tiles
from streamer.track.tracker import Tracker, TrackerRule
from streamer.types import Box, Face, Region

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
