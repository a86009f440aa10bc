"""The best look per track (history/looks.py), on real face pictures: a sharp, large, whole face
beats a blurred, small or cut-off one; looks are counted at detections only; a track merged into
a remembered one hands its looks over; the stream's end still yields each track's look."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import pytest

from streamer.history.looks import LookKeeper, score_look
from streamer.track.tracker import TrackEvent
from streamer.types import Box
from tests.conftest import SHARED


@dataclass
class FakeTrack:
    """What the keeper reads of a tracker's track: id, hits, as_box()."""

    id: int
    hits: int
    box: tuple[int, int, int, int]

    def as_box(self) -> Box:
        return Box(*self.box, 1.0)


def end(track: int, merged_into: int | None = None) -> TrackEvent:
    return TrackEvent("end", track, 0.0, Box(0, 0, 1, 1, 1.0), (), 1.0, merged_into=merged_into)


@pytest.fixture(scope="module")
def face_frame() -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """A real face (CelebA, aligned: the face is in the middle) on a 640x480 frame."""
    path = SHARED / "data" / "celeba" / "images" / "000001.jpg"
    if not path.exists():
        pytest.skip(f"{path} missing")
    face = cv2.imread(str(path))[:, :, ::-1]
    frame = np.full((480, 640, 3), 90, np.uint8)
    h, w = face.shape[:2]
    frame[100 : 100 + h, 200 : 200 + w] = face
    return frame, (200 + w // 5, 100 + h // 4, 200 + 4 * w // 5, 100 + 3 * h // 4)


def test_sharp_large_whole_faces_score_higher(face_frame) -> None:
    frame, box = face_frame
    sharp = score_look(frame, box)
    blurred = score_look(cv2.GaussianBlur(frame, (0, 0), 3), box)
    small = cv2.resize(frame, (320, 240), interpolation=cv2.INTER_AREA)
    small_box = tuple(v // 2 for v in box)
    assert sharp > 2 * blurred
    assert sharp > 2 * score_look(small, small_box)  # type: ignore[arg-type]
    x0, y0, x1, y1 = box
    w = x1 - x0
    cut = (x0 - w // 2 - 200, y0, x1 - w // 2 - 200, y1)  # half outside the frame (and not the face)
    assert score_look(frame, cut) < sharp / 2
    assert score_look(frame, (-50, -50, -10, -10)) == 0.0


def test_the_best_look_is_kept_and_looks_are_counted_at_detections(face_frame) -> None:
    frame, box = face_frame
    blurred = cv2.GaussianBlur(frame, (0, 0), 4)
    keeper = LookKeeper(max_side=120, thumb_width=200)
    tr = FakeTrack(1, 1, box)
    keeper.observe(blurred, 1.0, [tr], [])  # first look: blurred
    keeper.observe(blurred, 1.1, [tr], [])  # no new detection (hits unchanged): not a look
    tr.hits = 2
    keeper.observe(frame, 2.0, [tr], [])  # sharp: better
    tr.hits = 3
    keeper.observe(blurred, 3.0, [tr], [])  # blurred again: the sharp one stays
    keeper.observe(frame, 3.1, [], [end(1)])
    look, looks = keeper.take(1)
    assert looks == 3 and look is not None and look.time == 2.0
    assert max(look.face.shape[:2]) <= 120 and look.thumb.shape[1] == 200
    assert cv2.Laplacian(cv2.cvtColor(look.face, cv2.COLOR_RGB2GRAY), cv2.CV_32F).var() > 50  # the sharp one
    assert keeper.take(1) == (None, 0)  # taken once


def test_a_merged_track_hands_its_looks_to_the_remembered_one_and_the_end_yields_all(face_frame) -> None:
    frame, box = face_frame
    keeper = LookKeeper()
    young = FakeTrack(9, 1, box)
    keeper.observe(frame, 1.0, [young], [])
    # its face was recognised as track 4's, who had left: 9 ends merged into 4, which goes on
    back = FakeTrack(4, 2, box)
    keeper.observe(cv2.GaussianBlur(frame, (0, 0), 4), 2.0, [back], [end(9, merged_into=4)])
    assert keeper.take(9) == (None, 0)  # (no record for the merged track)
    keeper.observe(None, 3.0, [], [end(4)])  # the stream is over: no frame, every track ends
    look, looks = keeper.take(4)
    assert looks == 2 and look is not None and look.time == 1.0  # the young track's sharp look


@pytest.fixture(scope="module")
def frontal_face() -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """A face looking at the camera (the shared obama-480p still) and dlib's own box for it."""
    import dlib

    path = SHARED / "media" / "obama-480p.jpg"
    if not path.exists():
        pytest.skip(f"{path} missing")
    image = np.ascontiguousarray(cv2.imread(str(path))[:, :, ::-1])
    (r,) = dlib.get_frontal_face_detector()(image, 0)
    return image, (r.left(), r.top(), r.right(), r.bottom())


def _turned(
    frame: np.ndarray, box: tuple[int, int, int, int]
) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """The face as a head turned away looks: the half of it left of the nose squeezed to half its width
    (the eye on that side comes nearer the nose), the rest unchanged."""
    x0, y0, x1, y1 = box
    cx = (x0 + x1) // 2
    half = frame[:, x0 - 40 : cx]
    squeezed = cv2.resize(half, (half.shape[1] // 2, half.shape[0]), interpolation=cv2.INTER_AREA)
    out = frame.copy()
    out[:, x0 - 40 : cx] = 90
    out[:, cx - squeezed.shape[1] : cx] = squeezed
    return out, (cx - squeezed.shape[1] + 20, y0, x1, y1)


def test_a_frontal_look_beats_the_same_face_turned(frontal_face) -> None:
    from streamer.history.pose import frontal_from_points, frontalness

    frame, box = frontal_face
    turned, turned_box = _turned(frame, box)
    assert frontalness(frame, box) > 0.9
    assert frontalness(turned, turned_box) < frontalness(frame, box) - 0.2
    # the rule on its own: the nose halfway between the eyes, then at one eye (a profile)
    eyes = [(0, 0), (10, 0), (40, 0), (50, 0)]
    assert frontal_from_points(np.array([*eyes, (25, 20)], float)) == pytest.approx(1.0)
    assert frontal_from_points(np.array([*eyes, (5, 20)], float)) == pytest.approx(0.0)
    # the same face, frontal, between two turned looks: the keeper keeps the frontal one
    keeper = LookKeeper()
    tr = FakeTrack(1, 1, turned_box)
    keeper.observe(turned, 1.0, [tr], [])
    tr.hits, tr.box = 2, box
    keeper.observe(frame, 2.0, [tr], [])
    tr.hits, tr.box = 3, turned_box
    keeper.observe(turned, 3.0, [tr], [end(1)])
    look, _ = keeper.take(1)
    assert look is not None and look.time == 2.0


def test_a_face_of_one_frame_is_measured_once_for_its_snapshot_and_its_cluster(
    face_frame, monkeypatch
) -> None:
    """The snapshot scorer and the unknown clusters ask for the same faces in the same render
    thread: dlib's landmarks run once per face and frame, again for another frame."""
    from streamer.history import pose

    frame, box = face_frame
    loaded = pose._load()
    if loaded is None:
        pytest.skip("no landmark model")
    dlib, predictor = loaded
    calls = []

    def counting(image, rect):
        calls.append(rect)
        return predictor(image, rect)

    monkeypatch.setattr(pose, "_load", lambda: (dlib, counting))
    first = pose.frontalness(frame, box)
    assert pose.frontalness(frame, box) == first and len(calls) == 1
    pose.frontalness(frame, (box[0] + 4, *box[1:]))  # another face: measured
    assert len(calls) == 2
    pose.frontalness(frame.copy(), box)  # another frame: measured again
    assert len(calls) == 3
