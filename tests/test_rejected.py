"""HOG proposals MMOD turned down are not looked at again while their picture stays (rejected.py)."""

from __future__ import annotations

import cv2
import numpy as np

from streamer.detect import rejected
from streamer.detect.proposals import Proposer
from streamer.types import Box, Region

W, H = 640, 360
SPOT = Box(300, 140, 359, 199, 0.1)  # where the fake HOG proposes (60 px)
PROPOSE = (Region(0, 0, W - 1, H - 1, 1.0, "propose"),)


def _texture(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return cv2.GaussianBlur(rng.integers(0, 255, (H, W, 3), dtype=np.uint8), (0, 0), 3)


def _proposer(boxes: list[Box]) -> Proposer:
    p = Proposer()
    p.propose = lambda image, r: list(boxes)  # type: ignore[method-assign]
    return p


def _verified(p: Proposer, image: np.ndarray, found: list[Box] | None = None, key: str = "s") -> int:
    """One round: the verify looks MMOD gets; MMOD finds ``found`` (nothing by default)."""
    looks = p.expand(image, PROPOSE, (), key)
    p.learn(image, found or [], key)
    return sum(r.why == "verify" for r in looks)


def test_a_static_non_face_proposed_every_round_is_looked_at_once() -> None:
    wall = _texture(1)
    p = _proposer([SPOT])
    assert [_verified(p, wall) for _ in range(10)] == [1] + [0] * 9
    # HOG's box jitters a few pixels round to round: still the same place
    p.propose = lambda image, r: [Box(303, 138, 361, 197, 0.2)]  # type: ignore[method-assign]
    assert _verified(p, wall) == 0


def test_a_face_coming_to_a_turned_down_place_is_looked_at() -> None:
    wall = _texture(2)
    p = _proposer([SPOT])
    assert _verified(p, wall) == 1
    assert _verified(p, wall) == 0
    face = wall.copy()  # someone steps in: the picture at the place changes
    face[SPOT.top - 10 : SPOT.bottom + 11, SPOT.left - 10 : SPOT.right + 11] = _texture(3)[:80, :80]
    assert _verified(p, face, [Box(305, 145, 355, 195, 1.0)]) == 1
    assert _verified(p, face) == 1  # MMOD found a face there: nothing remembered, looked at again


def test_the_memory_is_per_stream_forgets_and_is_bounded() -> None:
    wall = _texture(4)
    p = _proposer([SPOT])
    assert _verified(p, wall, key="a") == 1
    assert _verified(p, wall, key="b") == 1  # another stream pays its own look
    looks = [_verified(p, wall, key="a") for _ in range(3 * rejected.FORGET_ROUNDS)]
    # (looked at again once FORGET_ROUNDS of the stream's rounds have passed since)
    assert [i for i, n in enumerate(looks) if n] == [rejected.FORGET_ROUNDS, 2 * rejected.FORGET_ROUNDS + 1]
    many = [Box(10 + 12 * i, 10 + 8 * (i % 4), 49 + 12 * i, 49 + 8 * (i % 4), 0.0) for i in range(45)]
    q = _proposer(many)
    _verified(q, wall)
    assert len(q.memory("s").places) == rejected.MAX_REMEMBERED


def test_a_scene_cut_clears_the_memory() -> None:
    p = _proposer([SPOT])
    assert _verified(p, _texture(5)) == 1
    cut = _texture(6)
    cut[SPOT.top : SPOT.bottom + 1, SPOT.left : SPOT.right + 1] = _texture(5)[
        SPOT.top : SPOT.bottom + 1, SPOT.left : SPOT.right + 1
    ]  # (the place itself unchanged: the cut alone clears it)
    assert _verified(p, cut) == 1


def test_a_proposal_that_was_a_face_is_looked_at_every_time() -> None:
    wall = _texture(7)
    p = _proposer([SPOT])
    assert [_verified(p, wall, [SPOT]) for _ in range(3)] == [1, 1, 1]
