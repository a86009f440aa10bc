"""A new scene's first looks (the stream's start, and each scene cut): every face already there is
looked at within a round or two, over budget once, instead of over the sweep's next seconds.

On a frame whose coarse look (the whole frame at ``tile_px``) sees nearly the faces wanted, or
without proposals, that is one round: the whole frame at the min-face scale, if it costs at most
``FRESH_ROUNDS`` rounds (a 640x480 or 640x640 camera: 4-5). On a bigger frame (720p, 1080p) it
is two. The first is the coarse look alone, a round like any other, so big faces are boxed at
once. The second, due at once (``RegionPlanner.second_look``), is all of the frame proposed in
one HOG scan (``proposal_whole``: a 720p frame's costs about 1.2 rounds' MMOD pixels, 1080p's
about 1.0), for the frontal faces down to ``min_face_px``. Both in one round would hold the
scene's first boxes for the time of both: on a 2-core CPU a TV scene's next cut could come
first. So does a closer first look: the whole 720p frame at scale 1.0 (faces from 80 px, four
times the coarse look's pixels) as the first round held the TV dinner clip's first boxes after
its cuts longer on a loaded 2-core machine, and it lost more faces than it found. The first look
is the round after the cut frame's own (FaceStage sees the cut only once it has followed the
frame): made the cut frame's round instead, it saved a round where it applied, and the planned
runs of the TV clips lost more faces than they gained (one look fewer after each cut).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from streamer.types import Region

if TYPE_CHECKING:
    from streamer.pipeline.planner import RegionPlanner

FRESH_ROUNDS = 5  # a scene's first round may cost this many rounds' budget (see fresh_look)


def fresh_look(p: RegionPlanner, width: int, height: int) -> list[Region]:
    """How a new scene's faces are all looked at: the whole frame at the min-face scale in its
    first round (a frame the coarse look nearly covers, or without proposals; empty if that costs
    over ``FRESH_ROUNDS`` rounds), or (720p, 1080p) the frame's HOG scan in its second round (the
    first: the coarse look alone)."""
    if p.propose and p.coarse_every(width, height) > 2:
        return p.proposal_whole(width, height)
    whole = p.whole_at_min(width, height)
    return [whole] if whole.pixels <= FRESH_ROUNDS * p.round_budget(width, height) else []
