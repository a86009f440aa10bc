"""Identity checks and re-identification: a face of someone else never takes a track; a face that
comes back gets its remembered track back (by descriptors, and on the panning camera)."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import aiortc  # noqa: F401  (before TensorFlow, which the camera fixture loads: pylibsrtp segfaults otherwise)
import numpy as np
import pytest

from benchmarks.clips.moving_camera import ping_pong
from streamer.pipeline.tracking import FaceStage
from streamer.track.identity import recognised
from streamer.track.matching import iou_matrix, match
from streamer.track.tracker import Tracker, TrackerRule
from streamer.types import Box, Detections, Face, Frame, Label
from tests.support.tracking import GREY, face, moving_camera, near_descriptor, xyxy


@pytest.fixture(scope="module")
def camera(shared: Path):
    """The moving camera over real faces (tests/support/tracking.py)."""
    return moving_camera(shared)


def test_a_face_matched_by_place_but_of_someone_else_starts_its_own_track() -> None:
    # someone walks in front of a face: the flow takes the box along with them, and the next
    # detection, of them, overlaps the box as well as the face did; their identities tell them apart
    rng = np.random.default_rng(0)

    near = partial(near_descriptor, rng)

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

    near = partial(near_descriptor, rng)

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

    near = partial(near_descriptor, rng)

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
    again = near_descriptor(rng, me, 0.05)
    tr = Tracker(TrackerRule(confirm_hits=1))
    looks = [((100, 50), me), ((250, 150), again), (None, None), (None, None), (None, None)]
    for i, (at, who) in enumerate(looks):
        tr.follow(GREY, i, i * 0.6)
        tr.update([Face(face(*at).box, (), identity=who)] if at else [], i, i * 0.6)
    assert tr.faces() == () and sorted(tr.remembered) == [1, 2]
    tr.follow(GREY, 5, 3.0)
    tr.update([Face(face(20, 20).box, (), identity=again)], 5, 3.0)  # nearest track 2's
    assert [f.track for f in tr.faces()] == [1] and tr.remembered == ()


def test_a_face_is_recognised_only_when_clearly_one_remembered_person() -> None:
    rng = np.random.default_rng(2)
    a, b = (rng.normal(size=128).astype(np.float32) * 0.09 for _ in range(2))

    near = partial(near_descriptor, rng)

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
