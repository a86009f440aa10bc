"""Association of detections with tracks: IoU and the Hungarian assignment, late answers matched
where the track was on their frame, the keyframe carry of a new face, nearness when IoU is too low."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from streamer.track.matching import iou, iou_matrix, match
from streamer.track.tracker import Tracker, TrackerRule
from streamer.types import Face
from tests.support.tracking import GREY, face, xyxy


def test_iou_and_hungarian_matching_take_the_best_overall_assignment() -> None:
    assert iou((0, 0, 9, 9), (0, 0, 9, 9)) == pytest.approx(1.0)
    assert iou((0, 0, 9, 9), (5, 0, 14, 9)) == pytest.approx(50 / 150)
    assert iou((0, 0, 9, 9), (20, 20, 29, 29)) == 0.0
    # greedy would give row 0 its best column (0) and leave row 1 with nothing above 0.3
    m = np.array([[0.9, 0.8], [0.85, 0.1]])
    pairs, rows, cols = match(m, 0.3)
    assert sorted(pairs) == [(0, 1), (1, 0)] and rows == [] and cols == []
    pairs, rows, cols = match(np.array([[0.2]]), 0.3)
    assert pairs == [] and rows == [0] and cols == [0]
    assert iou_matrix([], [(0, 0, 1, 1)]).shape == (0, 1)


def test_a_late_detection_is_matched_where_the_track_was_on_its_frame() -> None:
    """Detections arrive a few frames late in the live service: the track moved meanwhile."""
    tr = Tracker()
    tr.follow(GREY, 0, 0.0)
    tr.update([face(100, 50)], 0, 0.0)
    (tid,) = [f.track for f in tr.faces()]
    for i in range(1, 6):  # the face moves 10 px a frame (set by hand: a flat image has no flow)
        tr.tracks[0].box[[0, 2]] += 10
        tr.follow(GREY, i, i / 30)
    # the detection of frame 1 (face at 112): it must match, and correct the box by +2 px, not jump back
    tr.update([face(112, 50)], 1, 6 / 30)
    (f,) = tr.faces()
    assert f.track == tid
    assert f.box.left == 100 + 50 + 2


def test_a_new_face_answered_late_is_matched_where_it_was_on_each_frame_since() -> None:
    """A face found on frame 0, answered at frame 24 (its track carried there by the flow), is
    found again on frame 12, answered at frame 29: that answer is the same face, matched where the
    track was on frame 12 (120 px back on this pan), not a second track beside it."""
    rng = np.random.default_rng(5)
    world = cv2.GaussianBlur(rng.integers(0, 255, (700, 1400, 3), dtype=np.uint8), (0, 0), 2)
    tr = Tracker(TrackerRule(confirm_hits=1))

    def at(n: int) -> Face:  # the face, fixed in the world, on frame n: the view pans 10 px a frame
        x = 300 - 10 * n
        return face(x, 200, 60)

    for n in range(30):
        x = 100 + 10 * n
        tr.follow(np.ascontiguousarray(world[100:580, x : x + 640]), n, n / 30, keep=n in (0, 12))
        if n == 24:
            tr.update([at(0)], 0, n / 30)
            (t,) = tr.tracks
            assert iou(t.xyxy, xyxy(at(24).box)) >= 0.7  # carried to now
        if n == 29:
            tr.update([at(12)], 12, n / 30)
    (t,) = tr.tracks
    assert t.hits == 2 and iou(t.xyxy, xyxy(at(29).box)) >= 0.7


def test_two_late_detections_in_a_row_correct_the_box_once_each() -> None:
    """Live, frame 3 goes to the detector while frame 1's answer is still to be applied (on frame 3):
    when frame 3's own answer comes, the track's box on frame 3 must be the corrected one, or the
    first correction is applied twice."""
    tr = Tracker()
    tr.follow(GREY, 0, 0.0)
    tr.update([face(100, 50)], 0, 0.0)
    for i in (1, 2, 3):
        tr.follow(GREY, i, i / 30, keep=i in (1, 3))
    tr.update([face(110, 50)], 1, 3 / 30)  # frame 1's answer: the face is 10 px further right
    assert tr.faces()[0].box.left == 110
    for i in (4, 5):
        tr.follow(GREY, i, i / 30)
    tr.update([face(110, 50)], 3, 5 / 30)  # frame 3's answer: still there
    assert tr.faces()[0].box.left == 110


def test_a_face_whose_box_moved_more_than_iou_allows_keeps_its_track() -> None:
    """Seen on the demo clip: a head turns, the detector's box of it shifts by half its width and
    shrinks (IoU 0.27 with the track): the track follows it, no second track starts beside a
    stale one. A face a whole width away is another face."""
    tr = Tracker()
    grey = np.full((480, 640, 3), 128, np.uint8)
    tr.follow(grey, 0, 0.0)
    tr.update([face(254, 41, 96)], 0, 0.0)  # the boxes seen there
    (tid,) = [f.track for f in tr.faces()]
    tr.follow(grey, 1, 0.1)
    assert iou((254, 41, 349, 136), (307, 51, 386, 130)) < TrackerRule().min_iou
    tr.update([face(307, 51, 80)], 1, 0.1)
    (f,) = tr.faces()
    assert f.track == tid and f.box.left == 307
    tr.follow(grey, 2, 0.2)
    tr.update([face(307, 51, 80), face(407, 51, 80)], 2, 0.2)
    assert sorted(f.track for f in tr.faces())[0] == tid and len(tr.faces()) == 2


def test_a_weak_detection_keeps_a_shown_track_and_places_its_box() -> None:
    """ByteTrack's second association: a face the detector scores under its threshold (blurred,
    small, turned) keeps the track it overlaps and moves its box there; without it the track coasts
    out (missed twice, past max_coast_s) and a face still in view loses its box."""
    for weak_iou, kept in ((0.5, True), (0.0, False)):
        tr = Tracker(TrackerRule(weak_iou=weak_iou, max_misses=2, max_coast_s=1.0))
        tr.follow(GREY, 0, 0.0)
        tr.update([face(100, 50)], 0, 0.0)
        (tid,) = [f.track for f in tr.faces()]
        for i in range(1, 6):  # 2.5 s of weak detections only, the face drifting 4 px a look
            tr.follow(GREY, i, i / 2)
            tr.update([face(100 + 4 * i, 50, conf=-0.3)], i, i / 2)
        if kept:
            (f,) = tr.faces()
            assert f.track == tid and f.box.left == 120
            assert tr.tracks[0].misses == 0 and tr.tracks[0].hits == 1  # (kept, but no hit)
        else:
            assert tr.faces() == () and tr.tracks == []


def test_a_weak_detection_alone_starts_no_track_and_confirms_none() -> None:
    tr = Tracker()
    for i in range(4):  # the same weak box, look after look: no face
        tr.follow(GREY, i, i / 10)
        tr.update([face(100, 50, conf=-0.2)], i, i / 10)
    assert tr.tracks == [] and tr.faces() == () and tr.drain_events() == []
    # a doubtful face (seen once, not shown) is not confirmed by a weak one: it ends unseen
    tr.follow(GREY, 4, 0.4)
    tr.update([face(100, 50, conf=0.1)], 4, 0.4)
    assert len(tr.tracks) == 1 and tr.faces() == ()
    tr.follow(GREY, 5, 0.5)
    tr.update([face(100, 50, conf=-0.2)], 5, 0.5)
    assert tr.tracks == [] and tr.drain_events() == []


def test_a_weak_detection_does_not_take_a_face_from_a_track_or_end_one_as_a_duplicate() -> None:
    """A face is matched first: a weak box overlapping the same track better does not take its
    place, and a missed track inside a weak box is no duplicate of a face (it coasts)."""
    tr = Tracker()
    tr.follow(GREY, 0, 0.0)
    tr.update([face(100, 50), face(200, 50, 40)], 0, 0.0)
    a, b = tr.tracks
    tr.follow(GREY, 1, 0.1)
    tr.update([face(100, 50, conf=-0.1), face(108, 50), face(195, 45, 60, conf=-0.1)], 1, 0.1)
    assert a.hits == 2 and a.box[0] == 108  # the face, not the weak box on it
    # b lies wholly inside the weak box (IoU 0.44: not matched to it): missed, but coasting
    assert b in tr.tracks and b.misses == 1 and b.box[0] == 200
