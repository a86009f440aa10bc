"""Track lifecycle: when a track shows (confirmation), how long a missed one coasts, and which of
two tracks on one face ends."""

from __future__ import annotations

from streamer.track.tracker import Tracker, TrackerRule
from tests.support.tracking import GREY, face, xyxy


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
