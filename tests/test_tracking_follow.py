"""Boxes follow the image between detections: the optical flow (median flow on crops, batched
statistics), boxes on faces over a panning and zooming camera."""

from __future__ import annotations

from pathlib import Path

import aiortc  # noqa: F401  (before TensorFlow, which the camera fixture loads: pylibsrtp segfaults otherwise)
import cv2
import numpy as np
import pytest

from benchmarks.clips.moving_camera import CameraPath, render, truth
from streamer.pipeline.tracking import FaceStage
from streamer.track import flow
from streamer.track.matching import iou, iou_matrix
from streamer.track.tracker import Tracker
from streamer.types import Detections, Face, Frame
from tests.support.tracking import moving_camera, xyxy


@pytest.fixture(scope="module")
def camera(shared: Path):
    """The moving camera over real faces (tests/support/tracking.py)."""
    return moving_camera(shared)


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
