"""Looks between detection rounds: faces coming into view are boxed sooner, a face seen once is
looked at again once, and the picture the camera brought into view."""

from __future__ import annotations

from pathlib import Path

import aiortc  # noqa: F401  (before TensorFlow, which the camera fixture loads: pylibsrtp segfaults otherwise)
import cv2
import numpy as np
import pytest

from streamer.pipeline.revealed import Revealed
from streamer.pipeline.tracking import BetweenLooks, FaceStage
from streamer.track.matching import iou
from streamer.types import Box, Detections, Face, Frame, Region
from tests.support.tracking import face, moving_camera, xyxy


@pytest.fixture(scope="module")
def camera(shared: Path):
    """The moving camera over real faces (tests/support/tracking.py)."""
    return moving_camera(shared)


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
