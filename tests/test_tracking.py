"""Tracking: matching, confirmation, coasting, label evidence (units), boxes following a moving
camera over real faces between detections, track ids and events through annotate and the service."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from functools import partial
from pathlib import Path

import aiortc  # noqa: F401  (before TensorFlow, which the camera fixture loads: pylibsrtp segfaults otherwise)
import cv2
import numpy as np
import pytest

from benchmarks.clips.moving_camera import CameraPath, frames, load_still, ping_pong, render, truth
from streamer.metrics import Metrics
from streamer.pipeline.events import EventHub
from streamer.pipeline.revealed import Revealed
from streamer.pipeline.tracking import BetweenLooks, FaceStage
from streamer.track import appearance, flow
from streamer.track.evidence import EvidenceRule, LabelEvidence
from streamer.track.identity import recognised
from streamer.track.matching import iou, iou_matrix, match
from streamer.track.tracker import Tracker, TrackerRule, TrackEvent
from streamer.types import Box, Detections, Face, Frame, Label, Region
from tests.conftest import CLIP, metric, wait_for

GREY = np.full((240, 320, 3), 128, np.uint8)


def face(x: int, y: int, size: int = 60, conf: float = 1.0, labels=()) -> Face:
    return Face(Box(x, y, x + size - 1, y + size - 1, conf), tuple(labels))


def _near(rng: np.random.Generator, v: np.ndarray, d: float) -> np.ndarray:
    """A face descriptor ``d`` from ``v``, in a random direction."""
    step = rng.normal(size=v.shape).astype(np.float32)
    return v + step * (d / np.linalg.norm(step))


def xyxy(b: Box) -> tuple[int, int, int, int]:
    return (b.left, b.top, b.right, b.bottom)


def two_faces_and_a_wall(shared: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two real faces (64 px, RGB, from dlib's bald_guys.jpg) and a textured 640x480 wall."""
    bgr = cv2.imread(str(shared / "data/dlib_faces/bald_guys.jpg"))
    faces = [
        cv2.resize(cv2.cvtColor(c, cv2.COLOR_BGR2RGB), (64, 64))
        for c in (bgr[433:613, 552:732], bgr[0:180, 0:180])
    ]
    rng = np.random.default_rng(3)
    wall = cv2.GaussianBlur(rng.integers(0, 255, (480, 640, 3), dtype=np.uint8), (0, 0), 3)
    return faces[0], faces[1], wall


# -- units ------------------------------------------------------------------------------------------


def test_two_tracks_drifting_onto_one_face_become_one() -> None:
    tr = Tracker(TrackerRule(confirm_hits=1))
    tr.follow(GREY, 0, 0.0)
    tr.update([face(40, 40, 60), face(200, 40, 60)], 0, 0.0)
    tr.follow(GREY, 1, 0.1)
    tr.update([face(200, 40, 60)], 1, 0.1)  # the second seen again: the first coasts
    tr.tracks[0].box[:] = (195, 45, 254, 104)  # and its box drifts onto the second's face
    tr.follow(GREY, 2, 0.2)
    (only,) = tr.faces()
    assert only.track == 2  # the one detected last stays
    assert ("end", 1) in [(e.kind, e.track) for e in tr.drain_events()]


def test_of_two_tracks_on_one_face_the_one_it_looks_like_stays(shared: Path) -> None:
    # someone walks in front of a face and the flow pulls the face's box onto theirs: of the two
    # boxes now on the passer-by, theirs stays, though the face's track was detected more recently
    him, her, wall = two_faces_and_a_wall(shared)
    both = wall.copy()
    both[60:124, 100:164], both[60:124, 300:364] = him, her
    tr = Tracker(TrackerRule(confirm_hits=1))
    tr.follow(both, 0, 0.0)
    tr.update([face(100, 60, 64)], 0, 0.0)
    tr.update([face(300, 60, 64)], 0, 0.1)  # hers, detected after his
    tr.tracks[1].box[:] = (103, 62, 166, 125)  # her box pulled onto him
    tr.follow(both, 1, 0.2)
    assert [f.track for f in tr.faces()] == [1]
    # where the face there is like neither template, the one detected longer ago ends, as before
    tr2 = Tracker(TrackerRule(confirm_hits=1))
    tr2.follow(both, 0, 0.0)
    tr2.update([face(100, 60, 64)], 0, 0.0)
    tr2.update([face(300, 60, 64)], 0, 0.1)
    tr2.tracks[1].box[:] = (103, 62, 166, 125)
    tr2.follow(wall, 1, 0.2)  # (both faces gone: the wall)
    assert [t.id for t in tr2.tracks] == [2]


def test_flow_on_crops_moves_boxes_as_flow_on_the_whole_image() -> None:
    """A 1080p frame with small faces is followed on crops around them: the same shift and scale as
    the whole image's flow, for a box in the middle and one cut off by the frame's corner."""
    rng = np.random.default_rng(1)
    texture = cv2.GaussianBlur((rng.random((1080, 1920)) * 255).astype(np.uint8), (7, 7), 0)
    a = texture[20:1060, 20:1900]
    z, c, t = 1.02, (940, 520), (6, -4)  # zoom about the centre, then shift
    m = np.float32([[z, 0, (1 - z) * c[0] + t[0]], [0, z, (1 - z) * c[1] + t[1]]])
    b = cv2.warpAffine(a, m, (a.shape[1], a.shape[0]), flags=cv2.INTER_LINEAR)
    boxes = [(900.0, 500.0, 949.0, 549.0), (60.0, 70.0, 109.0, 119.0)]  # the second one's crop is cut
    whole, near, chosen = (f(a, b, 1.0, boxes) for f in (flow.follow, flow.follow_near, flow.follow_boxes))
    assert chosen == near  # two small faces on a big frame: crops
    for (x0, y0, x1, y1), mw, mn in zip(boxes, whole, near, strict=True):
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        want = ((z - 1) * (cx - c[0]) + t[0], (z - 1) * (cy - c[1]) + t[1])
        assert mw is not None and mn is not None
        assert mn == pytest.approx(mw, abs=0.3)
        assert mn[:2] == pytest.approx(want, abs=0.5) and mn[2] == pytest.approx(z, abs=0.01)
    big = [(100.0, 100.0, 1500.0, 900.0)]  # a face filling the frame: the whole image
    assert flow.follow_boxes(a, b, 1.0, big) == flow.follow(a, b, 1.0, big)


def test_median_flow_statistics_of_all_boxes_at_once_are_each_boxs_own() -> None:
    """The batched statistics give, for every box, median flow computed on that box alone: the
    better half of its points by round-trip error (all held ones where that half is too few), their
    median shift, the median ratio of their pairwise distances (clipped), None under MIN_POINTS."""
    rng = np.random.default_rng(3)
    for _ in range(40):
        n = int(rng.integers(1, 12))
        pts = (rng.random((n, 25, 2)) * 200).astype(np.float32)
        p1 = (pts + rng.normal(0, 2, pts.shape).astype(np.float32)) * np.float32(rng.uniform(0.85, 1.2))
        fb = np.abs(rng.normal(0, 0.7, (n, 25)))
        fb[fb > 1.0] = np.inf
        fb[0, : int(rng.integers(0, 25))] = np.inf  # a box losing many of its points
        got = flow._moves(pts, p1, fb, 0.5)
        for k in range(n):
            held = np.isfinite(fb[k])
            better = held & (fb[k] <= np.median(fb[k][held])) if held.any() else held
            use = better if better.sum() >= flow.MIN_POINTS else held
            if use.sum() < flow.MIN_POINTS:
                assert got[k] is None
                continue
            q0, q1 = pts[k][use].astype(np.float64), p1[k][use].astype(np.float64)
            shift = np.median(q1 - q0, axis=0) / 0.5
            i, j = np.triu_indices(len(q0), 1)
            d0, d1 = np.linalg.norm(q0[i] - q0[j], axis=1), np.linalg.norm(q1[i] - q1[j], axis=1)
            ok = d0 > 2.0
            scale = float(np.clip(np.median(d1[ok] / d0[ok]), 0.8, 1.25)) if ok.any() else 1.0
            assert got[k] == pytest.approx((shift[0], shift[1], scale), abs=1e-4)


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


def test_a_doubtful_detection_shows_on_its_second_hit_a_sure_one_at_once() -> None:
    tr = Tracker(TrackerRule(confirm_hits=2, confirm_confidence=0.5))
    tr.follow(GREY, 0, 0.0)
    tr.update([face(10, 10, conf=0.2), face(150, 10, conf=0.9)], 0, 0.0)
    assert [f.box.left for f in tr.faces()] == [150]
    assert [e.kind for e in tr.drain_events()] == ["start"]
    tr.follow(GREY, 1, 0.1)
    tr.update([face(12, 10, conf=0.2), face(150, 10, conf=0.9)], 1, 0.1)
    assert sorted(f.box.left for f in tr.faces()) == [12, 150]
    ids = {f.track for f in tr.faces()}
    assert len(ids) == 2 and None not in ids
    still = Tracker(TrackerRule(confirm_hits=1))  # a still image: one look is all there is
    still.update([face(10, 10, conf=0.05)], 0, 0.0)
    assert len(still.faces()) == 1


def test_a_one_off_false_positive_never_shows_and_leaves_no_event() -> None:
    tr = Tracker(TrackerRule(confirm_confidence=0.5))
    tr.follow(GREY, 0, 0.0)
    tr.update([face(10, 10, conf=0.1)], 0, 0.0)
    tr.follow(GREY, 1, 0.1)
    tr.update([], 1, 0.1)
    assert tr.tracks == [] and tr.faces() == () and tr.drain_events() == []


def test_a_missed_track_coasts_for_a_bounded_time_then_ends() -> None:
    tr = Tracker(TrackerRule(max_misses=2, max_coast_s=1.0))
    t = 0.0
    for i in range(3):
        tr.follow(GREY, i, t)
        tr.update([face(100, 50)], i, t)
        t += 0.1
    (tid,) = [f.track for f in tr.faces()]
    tr.drain_events()
    # missed by two detections within the coasting time: still shown, same id, where it was
    for i in range(3, 6):
        tr.follow(GREY, i, t)
        tr.update([], i, t)
        t += 0.1
    assert [f.track for f in tr.faces()] == [tid]
    assert tr.faces()[0].box.left == 100
    assert tr.drain_events() == []
    t = 1.5  # past max_coast_s since the last hit
    tr.follow(GREY, 6, t)
    tr.update([], 6, t)
    assert tr.faces() == ()
    (end,) = tr.drain_events()
    assert end.kind == "end" and end.track == tid and end.duration_s > 0


def test_a_box_left_on_no_face_is_hidden_until_the_face_is_there_again(shared: Path) -> None:
    # a real face on a textured wall; the face goes (someone passed in front and took the flow
    # along, or it moved faster than the flow follows) and the box stays on the wall
    head, _, wall = two_faces_and_a_wall(shared)
    with_face = wall.copy()
    with_face[60:124, 100:164] = head
    tr = Tracker(TrackerRule(confirm_hits=1, max_coast_s=10.0, unlike=0.5, unlike_looks=3, unlike_every=1))
    tr.follow(with_face, 0, 0.0)
    tr.update([face(100, 60, 64)], 0, 0.0)
    (tid,) = [f.track for f in tr.faces()]
    for i in (1, 2):
        tr.follow(with_face, i, i / 10)
    assert [f.track for f in tr.faces()] == [tid]  # the box shows the face the detector saw
    assert tr.tracks[0].likeness > 0.8
    shown = []
    for i in range(3, 8):
        tr.follow(wall, i, i / 10)
        shown.append(len(tr.faces()))
        assert tr.tracks[0].likeness < 0.5
    assert shown == [1, 1, 0, 0, 0]  # two unlike looks leave it (a blink, a hand); three hide it
    assert [t.id for t in tr.tracks] == [tid]  # hidden, not ended: the detector has the last word
    assert [e.kind for e in tr.drain_events()] == ["start"]
    tr.follow(with_face, 8, 0.8)  # the face is back under the box: shown again, same id
    assert [f.track for f in tr.faces()] == [tid]
    # by default a track is looked at every 3rd frame and hidden from its first unlike look
    default = Tracker(TrackerRule(confirm_hits=1, max_coast_s=10.0))
    default.follow(with_face, 0, 0.0)
    default.update([face(100, 60, 64)], 0, 0.0)
    shown = []
    for i in range(1, 9):
        default.follow(wall, i, i / 10)
        shown.append(len(default.faces()))
    assert 0 in shown[:3] and shown[-3:] == [0, 0, 0]
    # and with the rule off the same box on the wall stays drawn
    off = Tracker(TrackerRule(confirm_hits=1, max_coast_s=10.0, unlike_looks=0))
    off.follow(with_face, 0, 0.0)
    off.update([face(100, 60, 64)], 0, 0.0)
    for i in range(1, 6):
        off.follow(wall, i, i / 10)
    assert len(off.faces()) == 1


def test_a_face_partly_out_of_view_is_not_judged_by_its_look(shared: Path) -> None:
    # half a face is not like the whole one: judged, faces coming in or going out at the frame's
    # edge were hidden (the moving camera's recall at every 6th frame fell 0.961 -> 0.940)
    bgr = cv2.imread(str(shared / "data/dlib_faces/bald_guys.jpg"))
    gray = cv2.cvtColor(bgr[433:913, 552:1192], cv2.COLOR_BGR2GRAY)  # a face at (0..180, 0..180)
    whole = (10.0, 10.0, 170.0, 170.0)
    t = appearance.template(gray, 1.0, whole)
    assert t is not None and appearance.likeness(t, gray, 1.0, whole) > 0.9
    assert appearance.template(gray, 1.0, (-40.0, 10.0, 120.0, 170.0)) is None
    shifted = np.roll(gray, -50, axis=1)  # the face slid half out at the left
    assert appearance.likeness(t, shifted, 1.0, (-40.0, 10.0, 120.0, 170.0)) is None
    assert appearance.likeness(t, shifted, 1.0, (300.0, 10.0, 460.0, 170.0)) < 0.5  # no face there


def test_a_track_inside_a_face_given_to_another_track_is_a_duplicate_and_ends() -> None:
    tr = Tracker()
    tr.follow(GREY, 0, 0.0)
    tr.update([face(100, 100, 50)], 0, 0.0)  # track 1 on the inner part of a face
    tr.drain_events()
    tr.follow(GREY, 1, 0.1)
    tr.update([face(80, 80, 120)], 1, 0.1)  # the whole face: IoU 0.17, so a new track takes it
    (only,) = tr.faces()  # and track 1, inside it, is not left to coast beside it for a second
    assert xyxy(only.box) == (80, 80, 199, 199) and only.track != 1
    assert ("end", 1) in [(e.kind, e.track) for e in tr.drain_events()]
    tr.follow(GREY, 2, 0.2)
    tr.update([face(80, 80, 120), face(300, 100, 50)], 2, 0.2)
    tr.follow(GREY, 3, 0.3)
    tr.update([face(80, 80, 120)], 3, 0.3)  # a face beside it that the detector missed coasts on
    assert len(tr.faces()) == 2


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


def test_labels_settle_over_looks_and_one_odd_look_does_not_flip_them() -> None:
    ev = LabelEvidence("gender", EvidenceRule(looks=8, min_looks=2, min_score=0.4, switch_margin=0.4))
    assert ev.label().label == "?"
    ev.add(Label("gender", "male", 0.9), 1.0)
    assert ev.label().label == "?"  # one look is not enough
    assert ev.add(Label("gender", "male", 0.8), 1.0)
    assert ev.label().label == "male"
    assert not ev.add(Label("gender", "female", 0.95), 1.0)  # one confident odd look
    assert ev.label().label == "male"
    for _ in range(6):  # a steady run of the other label does win in the end
        ev.add(Label("gender", "female", 0.9), 1.0)
    assert ev.label().label == "female"
    # uncertain looks weigh without voting: they dilute the score towards "?"
    weak = LabelEvidence("gender", EvidenceRule(min_looks=2, min_score=0.4))
    weak.add(Label("gender", "male", 0.65), 1.0)
    weak.add(Label("gender", "?", 0.55), 1.0)
    assert weak.label().label == "?"


def test_a_settled_track_is_reclassified_on_growth_or_schedule_only() -> None:
    tr = Tracker(TrackerRule(reclassify_every=3, reclassify_growth=1.2))
    male = [Label("gender", "male", 0.9)]
    for i in range(2):
        tr.follow(GREY, i, i / 30)
        tr.update([face(100, 50, 60, labels=male)], i, i / 30)
    assert tr.faces()[0].labels[0].label == "male"
    assert len(tr.settled_boxes()) == 1  # settled: the next detection need not classify it
    for i in range(2, 5):
        tr.follow(GREY, i, i / 30)
        tr.update([face(100, 50, 60)], i, i / 30)  # detected, not classified
    assert tr.looks_skipped == 3
    assert tr.settled_boxes() == ()  # reclassify_every reached
    tr.update([face(100, 50, 60, labels=male)], 4, 5 / 30)
    assert len(tr.settled_boxes()) == 1
    tr.update([face(100, 50, 80)], 4, 6 / 30)  # the box grew by a third
    assert tr.settled_boxes() == ()


def test_a_face_matched_by_place_but_of_someone_else_starts_its_own_track() -> None:
    # someone walks in front of a face: the flow takes the box along with them, and the next
    # detection, of them, overlaps the box as well as the face did; their identities tell them apart
    rng = np.random.default_rng(0)

    near = partial(_near, rng)

    she = rng.normal(size=128).astype(np.float32) * 0.09
    female, male = [Label("gender", "female", 0.95)], [Label("gender", "male", 0.95)]
    tr = Tracker(TrackerRule(confirm_hits=1))
    drift = near(np.zeros_like(she), 0.45)  # her face turning: each look 0.45 on from the last
    looks = [(she, female), (she + drift, female), (she + 2 * drift, female), (None, [])]
    for i, (who, labels) in enumerate(looks):
        tr.follow(GREY, i, i / 10)
        tr.update([Face(Box(100, 50, 159, 109, 1.0), tuple(labels), identity=who)], i, i / 10)
    # her at every look (the third 0.9 from the first, 0.45 from the one before), then a look
    # without identity (settled, unclassified)
    (kept,) = tr.faces()
    assert kept.track == 1 and kept.labels[0].label == "female" and tr.switches == 0
    tr.drain_events()
    tr.follow(GREY, 4, 0.3)
    tr.update([Face(Box(104, 52, 163, 111, 1.0), tuple(male), identity=near(she, 0.9))], 4, 0.3)
    (him,) = tr.faces()
    assert him.track == 2 and him.labels[0].label != "female"  # her label is not shown on him
    events = [(e.kind, e.track) for e in tr.drain_events()]
    assert ("end", 1) in events and ("start", 2) in events and tr.switches == 1
    # his track knows him from its first detection: her face there again is not his; it is hers,
    # recognised: her track goes on, with her labels
    tr.follow(GREY, 5, 0.4)
    tr.update([Face(Box(104, 52, 163, 111, 1.0), (), identity=she)], 5, 0.4)
    (back,) = tr.faces()
    assert back.track == 1 and back.labels[0].label == "female" and tr.switches == 2
    # with the rule off he would have gone on as her
    off = Tracker(TrackerRule(confirm_hits=1, other_person=0.0))
    for i, (who, labels) in enumerate([(she, female), (near(she, 0.9), male)]):
        off.follow(GREY, i, i / 10)
        off.update([Face(Box(100, 50, 159, 109, 1.0), tuple(labels), identity=who)], i, i / 10)
    assert [f.track for f in off.faces()] == [1]


def test_a_face_that_comes_back_is_recognised_and_gets_its_track_back() -> None:
    # a person leaves (or is lost behind someone) and comes back: the new detection's identity is
    # near what their ended track remembers, so the track goes on: its id, labels and first sighting
    rng = np.random.default_rng(1)

    near = partial(_near, rng)

    she, he = (rng.normal(size=128).astype(np.float32) * 0.09 for _ in range(2))  # ~1.4 apart
    female, male = (Label("gender", "female", 0.95),), (Label("gender", "male", 0.95),)

    def leave_and_come_back(rule: TrackerRule, away_s: float, who: np.ndarray) -> Tracker:
        tr = Tracker(rule)
        for i in range(3):
            tr.follow(GREY, i, i / 10)
            tr.update([Face(face(100, 50).box, female, identity=near(she, 0.1))], i, i / 10)
        for i, t in ((3, 0.3), (4, 1.3)):  # missed, then past the coasting time: it ends
            tr.follow(GREY, i, t)
            tr.update([], i, t)
        assert tr.faces() == ()
        tr.follow(GREY, 5, 1.4)
        tr.update([Face(face(200, 100).box, male, identity=he)], 5, 1.4)  # someone else meanwhile
        t = 1.3 + away_s
        tr.follow(GREY, 6, t)  # she comes back elsewhere, looking male to the classifier this once
        tr.update([Face(face(20, 20).box, male, identity=near(she, 0.2))], 6, t)
        return tr

    tr = leave_and_come_back(TrackerRule(confirm_hits=1), 5.0, she)
    back, other = sorted(tr.faces(), key=lambda f: f.box.left)
    assert (back.track, other.track) == (1, 2)
    assert back.labels[0].label == "female"  # three looks of her and one odd one
    starts = [e for e in tr.drain_events() if e.kind == "start"]
    assert [(e.track, e.resumed) for e in starts] == [(1, False), (2, False), (1, True)]
    assert starts[-1].duration_s == pytest.approx(6.3) and starts[-1].as_dict("s")["resumed"] is True
    assert (tr.started, tr.resumed) == (2, 1)
    # forgotten after remember_s, or not remembered at all: a new track, her labels not carried
    for rule, away in (
        (TrackerRule(confirm_hits=1, remember_s=4.0), 5.0),
        (TrackerRule(confirm_hits=1, remember_s=0), 1.0),
    ):
        back = min(leave_and_come_back(rule, away, she).faces(), key=lambda f: f.box.left)
        assert back.track == 3 and back.labels[0].label != "female"


def test_a_face_recognised_only_at_a_later_look_becomes_the_remembered_track() -> None:
    # she comes out from behind a passer-by half hidden: her first descriptor is too far off to
    # tell; at the next look it is clearly hers, and the new track becomes her remembered one
    rng = np.random.default_rng(4)

    near = partial(_near, rng)

    she = rng.normal(size=128).astype(np.float32) * 0.09
    female = (Label("gender", "female", 0.95),)

    def run(later: list[np.ndarray]) -> Tracker:
        tr = Tracker(TrackerRule(confirm_hits=1))
        for i in range(3):
            tr.follow(GREY, i, i / 10)
            tr.update([Face(face(100, 50).box, female, identity=near(she, 0.1))], i, i / 10)
        for i, t in ((3, 0.3), (4, 1.3)):
            tr.follow(GREY, i, t)
            tr.update([], i, t)
        tr.drain_events()
        for k, who in enumerate([near(she, 0.4), *later]):
            tr.follow(GREY, 5 + k, 1.5 + k / 10)
            tr.update([Face(face(104, 50).box, (), identity=who)], 5 + k, 1.5 + k / 10)
        return tr

    tr = run([near(she, 0.1)])
    (back,) = tr.faces()
    assert back.track == 1 and back.labels[0].label == "female"
    events = [(e.kind, e.track, e.merged_into, e.resumed) for e in tr.drain_events()]
    assert events == [("start", 2, None, False), ("end", 2, 1, False), ("start", 1, None, True)]
    assert (tr.started, tr.resumed) == (2, 1)
    # past its first ``recognise_hits`` detections a track keeps its own id
    late = run([near(she, 0.4)] * 4 + [near(she, 0.1)])
    assert [f.track for f in late.faces()] == [2]


def test_a_person_who_left_two_tracks_gets_the_first_back() -> None:
    # a person's detected box jumps away from their (still live) track, so a second track starts
    # (a live track is not remembered yet); both end. When they come back, their first track goes
    # on, however near the second one's identity lies, and both are forgotten
    rng = np.random.default_rng(5)
    me = rng.normal(size=128).astype(np.float32) * 0.09
    again = _near(rng, me, 0.05)
    tr = Tracker(TrackerRule(confirm_hits=1))
    looks = [((100, 50), me), ((250, 150), again), (None, None), (None, None), (None, None)]
    for i, (at, who) in enumerate(looks):
        tr.follow(GREY, i, i * 0.6)
        tr.update([Face(face(*at).box, (), identity=who)] if at else [], i, i * 0.6)
    assert tr.faces() == () and sorted(d.id for d in tr._departed) == [1, 2]
    tr.follow(GREY, 5, 3.0)
    tr.update([Face(face(20, 20).box, (), identity=again)], 5, 3.0)  # nearest track 2's
    assert [f.track for f in tr.faces()] == [1] and list(tr._departed) == []


def test_a_face_is_recognised_only_when_clearly_one_remembered_person() -> None:
    rng = np.random.default_rng(2)
    a, b = (rng.normal(size=128).astype(np.float32) * 0.09 for _ in range(2))

    near = partial(_near, rng)

    assert recognised(near(a, 0.2), [[b], [near(a, 0.05), a]]) == 1
    assert recognised(near(a, 0.3), [[b], [a]]) is None  # not near enough
    assert recognised(a, []) is None and recognised(None, [[a]]) is None
    assert recognised(a, [[a]], limit=0) is None  # off
    # two people nearly as near: not clearly either
    mid = (a + b) / 2
    c, d = near(mid, 0.2), near(mid, 0.2)
    assert np.linalg.norm(c - d) > 0.25 and recognised(mid, [[c], [d]]) is None
    # two remembered tracks of one person: that person
    assert recognised(a, [[near(a, 0.1)], [near(a, 0.12)]]) in (0, 1)


def test_a_face_that_looks_unlike_its_template_beside_another_is_classified_again(shared: Path) -> None:
    # the doubt that asks for an identity: a settled track's box whose content changed while
    # another track is near (someone who could have walked in front) is not left out of the next
    # detection's classifying, so who it shows is checked then; a face alone is not
    head, other, wall = two_faces_and_a_wall(shared)
    with_face, with_other = wall.copy(), wall.copy()
    with_face[60:124, 100:164] = head
    with_other[60:124, 100:164] = other
    male = [Label("gender", "male", 0.95)]

    def settled(neighbour: bool) -> Tracker:
        tr = Tracker(TrackerRule(confirm_hits=1, unlike_every=1))
        for i in range(2):
            tr.follow(with_face, i, i / 10)
            faces = [face(100, 60, 64, labels=male)] + ([face(190, 60, 64, labels=male)] if neighbour else [])
            tr.update(faces, i, i / 10)
        for i in (2, 3):
            tr.follow(with_face, i, i / 10)
        assert len(tr.settled_boxes()) == 1 + neighbour and not tr.tracks[0].doubted
        tr.follow(with_other, 4, 0.4)
        assert tr.tracks[0].likeness < 0.8
        return tr

    alone = settled(neighbour=False)
    assert not alone.tracks[0].doubted and len(alone.settled_boxes()) == 1
    tr = settled(neighbour=True)
    assert tr.tracks[0].doubted and len(tr.settled_boxes()) == 1  # only the changed face
    tr.update([face(100, 60, 64)], 4, 0.45)  # detected but not classified: still in doubt
    assert tr.tracks[0].doubted and len(tr.settled_boxes()) == 1
    tr.update([face(100, 60, 64, labels=male)], 4, 0.5)  # classified again: the doubt is answered
    assert not tr.tracks[0].doubted and len(tr.settled_boxes()) == 2
    tr.follow(with_other, 5, 0.6)  # and the face it shows now is its template
    assert tr.tracks[0].likeness > 0.8 and not tr.tracks[0].doubted


def test_event_hub_drops_a_slow_client_and_never_blocks() -> None:
    m = Metrics()
    hub = EventHub("cam", m)
    slow = hub.subscribe()
    box = Box(0, 0, 9, 9, 1.0)
    hub.publish([TrackEvent("start", i, 0.0, box, (), 0.0) for i in range(300)])
    assert slow.dropped and slow not in hub.clients
    assert m.registry.get_sample_value("streamer_events_dropped_total", {"stream": "cam"}) > 0
    fresh = hub.subscribe()  # a new client first gets the open tracks
    assert fresh.queue.qsize() == 300
    m.forget_stream("cam")
    assert m.registry.get_sample_value("streamer_events_dropped_total", {"stream": "cam"}) is None


def test_face_stage_metrics_carry_the_stream_and_are_forgotten_with_it() -> None:
    m = Metrics()
    stage = FaceStage("door", 1, m)
    male = (Label("gender", "male", 0.9),)
    for i in range(3):
        f = Frame("door", i, GREY, i / 30)
        assert stage.due(i)
        stage.on_detections(Detections("door", i, f.captured_at, (face(100, 50, labels=male),)))
        out = stage.process(f)
        assert out.faces and out.faces[0].track == 1
    assert not np.array_equal(out.image, GREY)  # drawn
    get = m.registry.get_sample_value
    assert get("streamer_tracks_active", {"stream": "door"}) == 1
    assert get("streamer_track_switches_total", {"stream": "door"}) == 0  # there, at 0
    stage.close(1.0)
    assert get("streamer_tracks_total", {"stream": "door"}) == 1
    assert get("streamer_faces_total", {"stream": "door", "label": "gender:male"}) == 1  # once per track
    assert get("streamer_tracks_active", {"stream": "door"}) == 0
    assert get("streamer_stage_seconds_count", {"stage": "track"}) == 3
    # a track whose box came to lie on someone else ends, and says so
    gate = FaceStage("gate", 1, m)
    me, you = np.zeros(128, np.float32), np.full(128, 0.1, np.float32)  # 1.13 apart
    for i, who in enumerate((me, me, you)):
        f = Frame("gate", i, GREY, i / 30)
        gate.on_detections(
            Detections("gate", i, f.captured_at, (Face(face(100, 50).box, male, identity=who),))
        )
        gate.process(f)
    assert get("streamer_track_switches_total", {"stream": "gate"}) == 1
    # mine ended, and counts; yours is new: it counts once past its first looks, or when it ends
    assert get("streamer_tracks_total", {"stream": "gate"}) == 1
    assert get("streamer_tracks_resumed_total", {"stream": "gate"}) == 0
    # ... and I come back (my track had ended): my track goes on, not a new face nor a new count
    f = Frame("gate", 3, GREY, 3 / 30)
    gate.on_detections(Detections("gate", 3, f.captured_at, (Face(face(200, 100).box, male, identity=me),)))
    assert 1 in [x.track for x in gate.process(f).faces]
    assert get("streamer_tracks_resumed_total", {"stream": "gate"}) == 1
    assert get("streamer_tracks_total", {"stream": "gate"}) == 1
    gate.close(1.0)
    assert get("streamer_tracks_total", {"stream": "gate"}) == 2  # you, as you ended
    assert get("streamer_faces_total", {"stream": "gate", "label": "gender:male"}) == 1  # me, once
    m.forget_stream("door")
    text = m.render().decode()
    assert 'stream="door"' not in text


def test_a_merged_track_is_not_counted_as_a_face_of_its_own() -> None:
    m = Metrics()
    stage = FaceStage("hall", 1, m)
    male = (Label("gender", "male", 0.9),)
    me = np.zeros(128, np.float32)
    blurred = me + np.full(128, 0.4 / np.sqrt(128), np.float32)  # 0.4 off: not recognised at once
    looks = [
        (0.0, me, male),
        (0.1, me, male),
        (0.2, None, ()),
        (1.3, None, ()),
        (1.4, blurred, ()),
        (1.5, me, ()),
    ]
    for i, (t, who, labels) in enumerate(looks):
        f = Frame("hall", i, GREY, t)
        faces = () if who is None else (Face(face(100, 50).box, labels, identity=who),)
        stage.on_detections(Detections("hall", i, t, faces))
        stage.process(f, draw=False)
    assert [x.track for x in stage.faces] == [1]  # the new track (2) became mine at its second look
    stage.close(2.0)
    get = m.registry.get_sample_value
    assert get("streamer_faces_total", {"stream": "hall", "label": "gender:male"}) == 1
    for other in ("gender:?", "face"):  # track 2 is not a face of its own
        assert get("streamer_faces_total", {"stream": "hall", "label": other}) is None
    assert get("streamer_tracks_resumed_total", {"stream": "hall"}) == 1


def test_a_track_merged_after_its_label_settled_counts_neither_face_nor_track_again() -> None:
    """I leave; a new track on me, not recognised at its first looks, settles my label, then is
    recognised and merges into my track: one face, one track, one label in the counters; a new face
    past its first looks counts at once."""
    m = Metrics()
    stage = FaceStage("hall", 1, m)
    male = (Label("gender", "male", 0.9),)
    me = np.zeros(128, np.float32)
    blurred = me + np.full(128, 0.4 / np.sqrt(128), np.float32)  # 0.4 off: not recognised
    looks = [(0.0, me), (0.1, me), (0.2, None), (1.3, None), (1.4, blurred), (1.5, blurred), (1.6, me)]
    get = m.registry.get_sample_value
    for i, (t, who) in enumerate(looks):
        f = Frame("hall", i, GREY, t)
        faces = () if who is None else (Face(face(100, 50).box, male, identity=who),)
        stage.on_detections(Detections("hall", i, t, faces))
        out = stage.process(f, draw=False)
        if i == 5:  # the new track shows "male", settled, as its own id
            assert [(x.track, x.labels[0].label) for x in out.faces] == [(2, "male")]
    assert [x.track for x in stage.faces] == [1]  # ... until it was recognised as mine
    assert get("streamer_tracks_total", {"stream": "hall"}) == 1
    assert get("streamer_faces_total", {"stream": "hall", "label": "gender:male"}) == 1
    # someone new, seen on more than recognise_hits detections: counted while still in view
    you = np.full(128, 0.1, np.float32)
    for i in range(7, 13):
        f = Frame("hall", i, GREY, i / 10)
        faces = (Face(face(100, 50).box, male, identity=me), Face(face(250, 50).box, male, identity=you))
        stage.on_detections(Detections("hall", i, i / 10, faces))
        stage.process(f, draw=False)
    assert get("streamer_tracks_total", {"stream": "hall"}) == 2
    assert get("streamer_faces_total", {"stream": "hall", "label": "gender:male"}) == 2
    stage.close(2.0)
    assert get("streamer_tracks_total", {"stream": "hall"}) == 2
    assert get("streamer_faces_total", {"stream": "hall", "label": "gender:male"}) == 2


# -- a moving camera over real faces ----------------------------------------------------------------


@pytest.fixture(scope="module")
def camera(shared: Path):
    """The still, its faces (detected once), the camera path, the frames and per-frame truth."""
    from streamer.detect import make_detector

    still = load_still(shared)
    (faces,) = make_detector("mmod").detect([still], 0)
    assert len(faces) >= 20
    path = CameraPath(frames=90)
    images = list(frames(still, path))
    wh = (still.shape[1], still.shape[0])
    people = [[(k, b) for k, b in truth(faces, wh, path, n) if b.width >= 64] for n in range(path.frames)]
    return still, faces, path, images, people


@pytest.mark.parametrize("every", [6, 15])
def test_boxes_follow_faces_between_detections_on_a_moving_camera(camera, every: int) -> None:
    """Detections (the true boxes) only every Nth frame; in between the boxes must stay on the faces."""
    _, _, _path, images, people = camera
    stage = FaceStage("cam", every)
    ious, ids, started, ended = [], {}, set(), set()
    for n, img in enumerate(images):
        f = Frame("cam", n, img, n / 30)
        if stage.due(n):
            stage.on_detections(Detections("cam", n, f.captured_at, tuple(Face(b) for _, b in people[n])))
        out = stage.process(f, draw=False)
        started |= {e.track for e in out.events if e.kind == "start"}
        ended |= {e.track for e in out.events if e.kind == "end"}
        got = out.faces
        m = iou_matrix([xyxy(b) for _, b in people[n]], [xyxy(g.box) for g in got])
        known = {k for k, _ in people[n - n % every]}  # a face that came in since can not have a box yet
        for i, (person, _) in enumerate(people[n]):
            j = int(np.argmax(m[i])) if len(got) else -1
            if person in known:
                ious.append(m[i, j] if j >= 0 else 0.0)
            if j >= 0 and m[i, j] >= 0.5:
                ids.setdefault(person, set()).add(got[j].track)
    ious = np.array(ious)
    assert (ious >= 0.5).mean() >= 0.95, f"faces covered: {(ious >= 0.5).mean():.3f}"
    assert ious.mean() >= 0.7, f"mean IoU {ious.mean():.3f}"
    # one id per person and visit (the camera's path takes a face out of view and back once)
    for person, tids in ids.items():
        seen = [any(k == person for k, _ in p) for p in people]
        visits = sum(1 for a, b in zip([False, *seen], seen, strict=False) if b and not a)
        assert len(tids) <= visits, f"person {person}: ids {tids} over {visits} visits"
    # the camera pans across the still: people leave (their tracks end) and others arrive
    first, last = {k for k, _ in people[0]}, {k for k, _ in people[-1]}
    assert first - last and last - first
    # a face out of view for longer than the coasting time (1 s) has its track ended
    last_seen = {k: n for n, p in enumerate(people) for k, _ in p}
    left = {max(ids[k]) for k, n in last_seen.items() if n < len(people) - 45 and k in ids}
    assert left and left <= ended
    arrived = {max(ids[k]) for k in last - first if k in ids}
    assert arrived and arrived <= started
    # boxes held where the last detection put them cover far fewer faces: the image carries the boxes
    held = []
    for n in range(len(images)):
        last_boxes = [xyxy(b) for _, b in people[n - n % every]]
        m = iou_matrix([xyxy(b) for _, b in people[n]], last_boxes)
        known = {k for k, _ in people[n - n % every]}
        held += [float(m[i].max()) for i, (k, _) in enumerate(people[n]) if k in known]
    assert np.mean(np.array(held) >= 0.5) < (ious >= 0.5).mean() - 0.05


def _in_regions(b: Box, regions) -> bool:
    return any(
        b.left >= r.left and b.top >= r.top and b.right <= r.right and b.bottom <= r.bottom for r in regions
    )


def test_faces_coming_into_view_are_boxed_between_rounds(camera) -> None:
    """Detection every 15th frame on the panning camera, a detector that finds the faces fully in
    view inside what it is shown: with looks between rounds, a face coming into view is boxed
    within a few frames instead of waiting up to 14 for the next round, for a fraction of a
    whole-frame look, each at the edge where the picture came in."""
    _, _, path, images, people = camera
    W, H = path.size
    delays = {}
    for between in (BetweenLooks(), None):
        stage = FaceStage("cam", 15, between=between)
        entered: dict[int, int] = {}  # person -> the frame they came fully into view
        first: dict[int, int] = {}  # person -> the frame their face first had a box
        between_px = 0
        known = {k for k, _ in people[0]}
        for n, img in enumerate(images):
            f = Frame("cam", n, img, n / 30)
            due = stage.due(n)
            regions = stage.prepare(f, plan=due)
            if due:
                faces = tuple(Face(b) for _, b in people[n] if not regions or _in_regions(b, regions))
                stage.on_detections(Detections("cam", n, f.captured_at, faces, regions))
                between_px += sum(r.pixels for r in regions)
                for r in regions:  # at the edge the picture came in at, or around a face seen once
                    assert r.why in ("revealed", "confirm")
                    if r.why == "revealed":
                        assert r.left == 0 or r.top == 0 or r.right == W - 1 or r.bottom == H - 1
            out = stage.finish(f, draw=False)
            for k, b in people[n]:
                if k not in known:
                    entered.setdefault(k, n)
                    if any(iou(xyxy(b), xyxy(g.box)) >= 0.5 for g in out.faces):
                        first.setdefault(k, n)
        assert len(entered) >= 3
        delays[between is not None] = [first.get(k, len(images)) - n for k, n in entered.items()]
        if between is not None:
            assert stage.looks_between >= 3
            # each a band along an edge or two, not the frame: under half a whole-frame look
            assert between_px / (W * H) / stage.looks_between < 0.5
        else:
            assert stage.looks_between == 0
    with_looks, without = np.mean(delays[True]), np.mean(delays[False])
    assert with_looks <= without / 2, f"frames until boxed: {delays}"


def test_a_face_seen_once_gets_a_look_between_rounds_and_no_more() -> None:
    """A doubtful face (it needs a second sighting to show) is looked at again on the next frame,
    around it only, rather than at the next round; once."""
    img = cv2.GaussianBlur(
        np.random.default_rng(1).integers(0, 255, (240, 320, 3), dtype=np.uint8), (0, 0), 2
    )
    stage = FaceStage("s", 10, between=BetweenLooks())
    doubtful = face(100, 80, 50, conf=0.1)
    plans = []
    for n in range(6):
        f = Frame("s", n, img, n / 30)
        due = stage.due(n)
        regions = stage.prepare(f, plan=due)
        plans.append((due, regions))
        if due:
            stage.on_detections(Detections("s", n, f.captured_at, (doubtful,), regions))
        out = stage.finish(f, draw=False)
        if n == 0:
            assert out.faces == ()  # doubtful: not shown at its first sighting
    assert plans[0] == (True, ())  # the round: the whole frame
    due, (r,) = plans[1]
    assert due and r.why == "confirm"
    assert r.left <= 100 and r.top <= 80 and r.right >= 149 and r.bottom >= 129 and r.pixels < 320 * 240 / 4
    assert [d for d, _ in plans[2:]] == [False] * 4  # still camera, face confirmed: nothing new
    assert len(stage.faces) == 1 and stage.faces[0].track is not None
    # every frame a round: no looks between
    assert FaceStage("s", 1, between=BetweenLooks()).between is None


def test_revealed_is_the_picture_the_camera_brought_into_view() -> None:
    """The camera's motion, estimated from the picture, carries what the detector looked at: a
    pan brings new picture in at one edge, as deep as the pan; a zoom out at all four; a still
    camera none; a look at it leaves none."""
    rng = np.random.default_rng(0)
    world = cv2.GaussianBlur(rng.integers(0, 255, (900, 1200), dtype=np.uint8), (0, 0), 2)
    grey = lambda x, y: world[y : y + 480, x : x + 640]  # noqa: E731  (a 640x480 view at x, y)
    rv = Revealed()
    rv.update(grey(200, 200), (640, 480))
    for k in range(1, 6):  # the view pans right 8 px a frame: the picture moves left
        rv.update(grey(200 + 8 * k, 200), (640, 480))
    (b,) = rv.unseen(8)
    assert b.right == 639 and b.top == 0 and b.bottom == 479 and 32 <= 640 - b.left <= 48
    assert rv.unseen(60) == []  # not yet that deep
    rv.looked([Region(560, 0, 639, 479, 1.0, "revealed")], (640, 480))
    assert rv.unseen(8) == []
    rv.update(grey(240, 200), (640, 480))
    rv.update(grey(240, 200), (640, 480))  # still
    assert rv.unseen(4) == []
    # zoom out: a bigger part of the world in the same 640x480
    rv = Revealed()
    rv.update(grey(300, 200), (640, 480))
    big = world[150 : 150 + 576, 236 : 236 + 768]
    rv.update(cv2.resize(big, (640, 480), interpolation=cv2.INTER_AREA), (640, 480))
    sides = {
        (
            "left"
            if b.left == 0 and b.right < 320
            else "right"
            if b.right == 639 and b.left > 320
            else "top"
            if b.top == 0 and b.bottom < 240
            else "bottom"
        )
        for b in rv.unseen(8)
    }
    assert sides == {"left", "right", "top", "bottom"}


@pytest.mark.parametrize("remember_s", [30.0, 0.0])
def test_faces_that_leave_and_come_back_get_their_tracks_back(camera, remember_s: float) -> None:
    """The camera pans across the still and back: faces leave the view (their tracks end) and come
    back. Recognised by their real face descriptors (dlib's network on each detected face, as the
    engine hands them over), each gets its own track back: one id per person, never one track on
    two people. Without remembering (0 s) a face that came back is a new track."""
    from streamer.classify.backbone import FaceBackbone

    _, _, path, images, people = camera
    order = ping_pong(path)
    backbone = FaceBackbone()
    stage = FaceStage("pan", 6, rule=TrackerRule(remember_s=remember_s))
    ids: dict[int, set[int]] = {}
    on: dict[int, set[int]] = {}
    for n, k in enumerate(order):
        f = Frame("pan", n, images[k], n / 30)
        if stage.due(n):
            boxes = [b for _, b in people[k]]
            who = backbone.descriptors(images[k], boxes) if boxes else []
            stage.on_detections(
                Detections(
                    "pan",
                    n,
                    f.captured_at,
                    tuple(Face(b, identity=d) for b, d in zip(boxes, who, strict=True)),
                )
            )
        got = stage.process(f, draw=False).faces
        m = iou_matrix([xyxy(b) for _, b in people[k]], [xyxy(g.box) for g in got])
        for i, j in match(m, 0.5)[0]:
            person, tid = people[k][i][0], got[j].track
            ids.setdefault(person, set()).add(tid)
            on.setdefault(tid, set()).add(person)
    visits = {}
    for person in ids:
        seen = [any(p == person for p, _ in people[k]) for k in order]
        visits[person] = sum(1 for a, b in zip([False, *seen], seen, strict=False) if b and not a)
    back = [p for p, v in visits.items() if v > 1]
    assert len(back) >= 5  # the path brings faces back
    assert all(len(ps) == 1 for ps in on.values())  # no track on two people
    if remember_s:
        assert all(len(ids[p]) == 1 for p in back), {p: ids[p] for p in back}
        assert stage.tracker.resumed >= len(back)
    else:
        # (one whose visits were a moment apart can keep its track by coasting)
        assert sum(len(ids[p]) > 1 for p in back) >= len(back) // 2 + 1, sorted((p, ids[p]) for p in back)


def _clip_frames(n: int) -> list[np.ndarray]:
    """The first ``n`` frames of the demo clip (the Hamilton clip), RGB."""
    cap = cv2.VideoCapture(str(CLIP))
    images = []
    while len(images) < n:
        ok, bgr = cap.read()
        assert ok
        images.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    cap.release()
    return images


def test_a_change_of_exposure_is_not_a_scene_cut() -> None:
    """The lights go up on the performer (the Hamilton clip from frame 130 on, 1.8 times as bright):
    the histogram jumps as at a cut, but the picture is the same, so his track goes on (same id,
    boxed throughout); the clip's real cuts at 211 still end every track."""
    from streamer.detect import make_detector

    detector = make_detector("mmod")
    images = _clip_frames(215)
    bright = [np.clip(im.astype(np.float32) * 1.8, 0, 255).astype(np.uint8) for im in images[130:]]
    images[130:] = bright
    stage = FaceStage("light", 3)
    ids = []
    for n in range(110, 215):
        f = Frame("light", n, images[n], n / 30)
        if stage.due(n):
            (boxes,) = detector.detect([images[n]], 0)
            stage.on_detections(Detections("light", n, f.captured_at, tuple(Face(b) for b in boxes)))
        out = stage.process(f, draw=False)
        if n == 130:
            assert not stage.tracker.cut
        if 120 <= n < 211:
            assert len(out.faces) == 1, f"frame {n}: {out.faces}"
            ids.append(out.faces[0].track)
        if n == 211:
            assert stage.tracker.cut and not any(t in ids for t in (g.track for g in out.faces))
    assert len(set(ids)) == 1


def test_tracks_follow_the_source_changing_resolution(camera) -> None:
    """A WebRTC sender adapting to its bandwidth changes the frame size mid-stream (the same view):
    every track is scaled with it, keeps its id and stays on its face; an answer for a frame of the
    old size, arriving after the change, is dropped. A change of the picture's shape ends the tracks."""
    _, _, _path, images, people = camera
    stage = FaceStage("res", 6)
    half = 14  # from this frame on the sender sends half the resolution
    in_flight: list[tuple[int, Detections]] = []
    ids_before: dict[int, int] = {}
    covered = []
    for n, img in enumerate(images):
        k = 0.5 if n >= half else 1.0
        if k != 1.0:
            img = cv2.resize(img, (img.shape[1] // 2, img.shape[0] // 2), interpolation=cv2.INTER_AREA)
        boxes = [(p, Box(*(round(v * k) for v in xyxy(b)), 1.0)) for p, b in people[n]]
        f = Frame("res", n, img, n / 30)
        if stage.due(n):
            in_flight.append((n + 4, Detections("res", n, f.captured_at, tuple(Face(b) for _, b in boxes))))
        while in_flight and in_flight[0][0] <= n:
            stage.on_detections(in_flight.pop(0)[1])
        out = stage.process(f, draw=False)
        m = iou_matrix([xyxy(b) for _, b in boxes], [xyxy(g.box) for g in out.faces])
        for i, (person, _) in enumerate(boxes):
            j = int(np.argmax(m[i])) if out.faces else -1
            if j < 0 or m[i, j] < 0.5:
                if half <= n < half + 12:
                    covered.append(False)
                continue
            if n == half - 1:
                ids_before[person] = out.faces[j].track
            if half <= n < half + 12:  # until detections of the new size have come
                covered.append(True)
                if person in ids_before:
                    assert out.faces[j].track == ids_before[person], f"frame {n}: person {person}: new id"
    assert len(ids_before) >= 4
    assert np.mean(covered) >= 0.9, f"faces boxed right after the change: {np.mean(covered):.2f}"
    assert stage.tracker.dropped_stale == 1  # the answer for frame 12, at full size, came at frame 16

    tr = Tracker()
    tr.follow(images[0], 0, 0.0)
    tr.update([Face(b) for _, b in people[0]], 0, 0.0)
    assert len(tr.faces()) == len(people[0])
    tr.follow(np.ascontiguousarray(images[1][:, 80:560]), 1, 1 / 30)  # a 4:3 picture turned square
    assert not tr.faces() and tr.cut


def test_faces_found_before_a_scene_cut_are_not_carried_past_it() -> None:
    """The Hamilton clip cuts from the performer to the audience at frame 211. Detections arrive 3
    frames after the frame they were taken from (as live): the answer for the performer's last
    frames comes after the cut and must not start tracks there (a box where nobody is, with the
    performer's labels, until it coasted out); the audience's faces get boxes from the first
    detection of their scene on."""
    from streamer.detect import make_detector

    detector = make_detector("mmod")
    images = _clip_frames(230)
    stage = FaceStage("cut", 2)
    found: dict[int, list[Box]] = {}
    in_flight: list[tuple[int, Detections]] = []
    for n in range(196, 230):
        f = Frame("cut", n, images[n], n / 30)
        if stage.due(n):
            (boxes,) = detector.detect([images[n]], 0)
            found[n] = boxes
            in_flight.append((n + 3, Detections("cut", n, f.captured_at, tuple(Face(b) for b in boxes))))
        while in_flight and in_flight[0][0] <= n:
            stage.on_detections(in_flight.pop(0)[1])
        out = stage.process(f, draw=False)
        if n == 209:
            assert len(out.faces) == 1  # the performer, tracked
        if 211 <= n < 211 + 3:  # nothing seen of the new scene yet (its first answer comes at 214)
            assert not out.faces, f"frame {n}: {out.faces}"
        if n >= 211:
            truth = found.get(n)
            if truth is None:
                (truth,) = detector.detect([images[n]], 0)
            for g in out.faces:
                best = max((iou(xyxy(g.box), xyxy(b)) for b in truth), default=0.0)
                assert best >= 0.3, f"frame {n}: box {g.box} (track {g.track}) on no face of this scene"
    assert stage.tracker.dropped_stale >= 1
    assert len(out.faces) >= 3  # the audience, from the first detection after the cut on


def test_tracker_follows_a_zoom(camera) -> None:
    """The camera zooms in: the box grows with the face (median scale of the flow)."""
    still, faces, _, _, _ = camera
    path = CameraPath(frames=30, view_w=(1300.0, 900.0), zooms=0.5, pan=0.05, start=0.3)  # zooms in
    wh = (still.shape[1], still.shape[0])
    tr = Tracker()
    first = truth(faces, wh, path, 0)
    tr.follow(render(still, path, 0), 0, 0.0)
    tr.update([Face(b) for _, b in first], 0, 0.0)
    for n in range(1, 30):
        tr.follow(render(still, path, n), n, n / 30)
    now = dict(truth(faces, wh, path, 29))
    got = {f.track: f.box for f in tr.faces()}
    checked = 0
    assert len(first) >= 2
    for tid, (k, b0) in enumerate(first, 1):
        if k in now and tid in got:
            assert got[tid].width > b0.width * 1.1
            assert iou(xyxy(got[tid]), xyxy(now[k])) >= 0.6
            checked += 1
    assert checked >= 2


# -- end to end ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_annotate_every_nth_frame_writes_track_ids_that_stay_on_the_faces(camera, tmp_path: Path) -> None:
    _, _, path, images, people = camera
    clip = tmp_path / "moving.avi"
    w = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 30, path.size)
    for im in images:
        w.write(cv2.cvtColor(im, cv2.COLOR_RGB2BGR))
    w.release()
    out, jsonl = tmp_path / "out.avi", tmp_path / "faces.jsonl"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "streamer",
            "annotate",
            str(clip),
            "--output",
            str(out),
            "--detections",
            str(jsonl),
            "--every",
            "6",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    lines = [json.loads(x) for x in jsonl.read_text().splitlines()]
    assert len(lines) == len(images) and [x["frame"] for x in lines] == list(range(len(images)))
    found = total = 0
    ids: dict[int, set[int]] = {}
    for n, line in enumerate(lines):
        got = [(f["left"], f["top"], f["right"], f["bottom"]) for f in line["faces"]]
        assert all(isinstance(f["track"], int) for f in line["faces"])
        m = iou_matrix([xyxy(b) for _, b in people[n]], got)
        for i, (k, _) in enumerate(people[n]):
            total += 1
            if len(got) and m[i].max() >= 0.5:
                found += 1
                ids.setdefault(k, set()).add(line["faces"][int(np.argmax(m[i]))]["track"])
    assert found / total >= 0.9, f"recall vs the true boxes {found / total:.3f}"
    assert sum(len(v) for v in ids.values()) / len(ids) <= 1.2


@pytest.mark.slow
async def test_track_events_arrive_over_sse_and_metrics_carry_the_stream(make_app) -> None:
    client = await make_app(sources=[{"id": "clip", "file": str(CLIP), "loop": True}])
    app = client.server.app
    resp = await client.get("/streams/clip/events")
    assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/event-stream")
    kind = data = None
    async with asyncio.timeout(90):
        while True:
            line = (await resp.content.readline()).decode()
            if line.startswith("event: "):
                kind = line[7:].strip()
            elif line.startswith("data: "):
                data = json.loads(line[6:])
                break
    resp.close()
    assert kind == "start" and data["stream"] == "clip" and isinstance(data["track"], int)
    assert set(data) >= {"time", "box", "labels"}
    await wait_for(lambda: metric(app, "streamer_tracks_total", stream="clip") >= 1, 30, "a track counted")
    assert metric(app, "streamer_stage_seconds_count", stage="track") > 0
    listed = await (await client.get("/streams")).json()
    (s,) = [x for x in listed["streams"] if x["id"] == "clip"]
    assert "tracks" in s
    assert (await client.get("/streams/nope/events")).status == 404


@pytest.mark.slow
def test_engine_leaves_faces_of_settled_tracks_unclassified(shared: Path, tiny_classifier: Path) -> None:
    from streamer.config import ClassifierConfig
    from streamer.inference.engine import Engine, EngineSpec

    engine = Engine(EngineSpec(classifiers=(ClassifierConfig(name="gender", model=str(tiny_classifier)),)))
    rgb = cv2.cvtColor(cv2.imread(str(shared / "media" / "two_people.jpg")), cv2.COLOR_BGR2RGB)
    (full,), t_full = engine.run([rgb])
    assert len(full.faces) == 2 and all(f.labels for f in full.faces)
    assert t_full.classifier_batches["gender"] == 2
    settled = full.faces[0].box
    nudged = Box(settled.left + 3, settled.top - 2, settled.right + 3, settled.bottom - 2, 1.0)  # predicted
    (part,), t_part = engine.run([rgb], [(nudged,)])
    assert [bool(f.labels) for f in part.faces] == [False, True]
    assert [f.box for f in part.faces] == [f.box for f in full.faces]  # the boxes are all still there
    assert t_part.classifier_batches["gender"] == 1
    (none,), t_none = engine.run([rgb], [tuple(f.box for f in full.faces)])
    assert not any(f.labels for f in none.faces) and "gender" not in t_none.classifier_batches
