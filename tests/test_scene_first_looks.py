"""A new scene's first looks (streamer/pipeline/fresh.py): the frame a cut is found on is the new
scene's first round when it goes to the detector, and HOG scans all of the frame the round after."""

from __future__ import annotations

import cv2
import numpy as np

from streamer.pipeline.planner import RegionPlanner
from streamer.pipeline.tracking import FaceStage
from streamer.types import Frame, Region


def _scene(seed: int, level: int) -> np.ndarray:
    """A 720p picture of its own (blurred noise around ``level``): two of them are a scene cut."""
    rng = np.random.default_rng(seed)
    small = rng.integers(level - 40, level + 40, (36, 64, 3)).astype(np.uint8)
    return cv2.resize(small, (1280, 720), interpolation=cv2.INTER_CUBIC)


def _all_of(r: Region) -> bool:
    return (r.left, r.top, r.right, r.bottom) == (0, 0, 1279, 719)


def test_the_frame_a_cut_is_found_on_is_the_new_scenes_first_round() -> None:
    """720p, detection on every frame the detector takes (detect_every 1): the stream's first frame,
    and the frame a cut is found on, are each the new scene's first round (the whole frame at
    640 px, alone); the next frame's is HOG over all of the frame at once. (A round like any
    other on the cut frame, then the first look a frame late, puts the scene's HOG scan a round
    later: a second later on a TV clip's 720p frames on a loaded 2-core CPU.)"""
    stage = FaceStage("s", 1, planner=RegionPlanner(min_face_px=40, budget_px=640 * 480))
    frames = [_scene(1, 70)] * 4 + [_scene(2, 170)] * 3  # the cut at frame 4
    plans = {}
    for n, img in enumerate(frames):
        assert stage.due(n)
        plans[n] = stage.prepare(Frame("s", n, img, n / 25), plan=True)
        stage.finish(Frame("s", n, img, n / 25), draw=False)
    for first in (0, 4):  # the stream's start, the cut
        (coarse,) = plans[first]
        assert coarse.why == "whole" and _all_of(coarse) and coarse.scale == 0.5, plans[first]
        (hog,) = plans[first + 1]
        assert hog.why == "propose" and _all_of(hog), plans[first + 1]
    assert not any(r.why == "propose" and _all_of(r) for r in plans[6])  # (then rounds as usual)
