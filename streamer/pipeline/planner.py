"""Where to look for faces on a frame: a detection plan of regions, each at its own scale.

Say what to find (``min_face_px``, the smallest face in source pixels) and what one detection
round may cost (``budget_px`` detector pixels for a 640x480 frame, more for a bigger one: see
``round_budget``); the planner spends it, in this order, on

0. **the whole frame** at ``tile_px`` on the first round and then every few rounds (every 2nd
   on a webcam, every 6th on a 1080p frame for 40 px faces: see ``coarse_every``): big faces
   appear within a round or two, as they did when the whole frame was all there was (a new
   scene's first rounds look at every face there: see fresh.py);
1. **tracks**: a square around each tracked face, scaled so the face is about
   ``TRACK_FACE_PX`` wide (refreshes and re-centres it at full resolution); a track every
   ``TRACK_EVERY`` rounds (the optical flow carries its box in between), new ones at once, the
   tracks looked at longest ago first; and, once, each place a track's box has left since the
   detector last saw its face there (someone passing in front may have pulled the box off a
   face that is still there);
2. **proposals** (with ``propose``, where the coarse look cannot see ``min_face_px`` faces): the
   next tile of the frame, in turn, where dlib's HOG detector proposes faces from ``min_face_px``
   up and MMOD looks at each face proposed that no track holds (proposals.py): a face that does
   not move is found within a few rounds, at a sixth of what MMOD costs to scan the same pixels
   itself (MMOD still decides; what HOG misses, profiles, is left to the rest);
3. **motion**: what changed since the last round and no track explains (see motion.py), at the
   scale that makes a ``min_face_px`` face ``FACE_PX`` wide, cut into pieces of at most
   ``piece_px`` a side (so two fit in a round's budget);
4. **sweep**: what is left goes to a slow sweep over the whole frame, tiles at finer and finer
   scales down to the ``min_face_px`` one, so a face HOG does not propose is found too.

A frame small enough to detect whole at the ``min_face_px`` scale within the budget is one
region. While the whole picture moves (a panning camera) motion says nothing about where
faces are: every round is the frame at ``tile_px`` plus the tracks too small to be seen there (and the
next proposal tile).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence

import numpy as np

from streamer.config import PipelineConfig
from streamer.detect import MAX_SIDE
from streamer.detect.proposals import (
    PROPOSE_COST,
    PROPOSE_FACE_PX,
    PROPOSE_FACE_PX_MIN,
    PROPOSE_FRAME_PX,
    cost,
)
from streamer.detect.regions import FACE_PX, square
from streamer.pipeline.fresh import fresh_look
from streamer.pipeline.tiling import inside, merge_overlapping, tiles
from streamer.track.matching import XYXY
from streamer.types import Box, Region

TRACK_FACE_PX = 90  # a tracked face is cut so that it is this wide (a margin over FACE_PX)
SWEEP_FIRST = 3  # every this many rounds, one sweep region goes before the motion regions
CELL = 64  # source pixels: the grain at which the planner remembers where it looked
TRACK_CONTEXT = 2.0  # a track's region is this many face widths square (the box may be off a little)
TRACK_EVERY = 3  # a track is looked at again after this many rounds (new ones at once)
CAMERA_MOVING = 0.5  # changed fraction of the picture above which the camera itself moved


def planner_for(p: PipelineConfig) -> RegionPlanner | None:
    """A stream's planner under ``pipeline`` settings (None: strategy "whole", as before)."""
    if p.strategy != "regions":
        return None
    propose = p.proposes  # (proposals run where regions are cut: in the local workers)
    # dlib-bin costs 20-30x the port's time a pixel: a scene's first round over budget would take
    # it seconds (on a loaded machine a minute), so with it the first round is a round like the rest
    return RegionPlanner(
        p.min_face_px, p.region_budget_px, p.detect_max_side or 640, propose, fresh_looks=p.detector != "dlib"
    )


class RegionPlanner:
    def __init__(
        self,
        min_face_px: int = 40,
        budget_px: int = 640 * 480,
        tile_px: int = 640,
        propose: bool = True,
        fresh_looks: bool = True,
    ) -> None:
        self.fresh_looks = fresh_looks  # a scene's first rounds look at every face there (fresh.py)
        self.min_face_px = min_face_px
        self.propose = propose
        self.propose_scale = PROPOSE_FACE_PX / min_face_px
        self._proposals: list[Region] = []
        self._proposals_size: tuple[int, int] = (0, 0)
        self._propose_cursor = 0
        self.budget_px = budget_px  # per round for a 640x480 frame (see round_budget)
        self.tile_px = tile_px
        self.budget = budget_px  # this frame size's round budget (set by plan)
        self.scale = FACE_PX / min_face_px  # the scale at which a min_face_px face is FACE_PX wide
        self._looked: dict[int, int] = {}  # track id -> the round that last looked at it
        self._left_looked: dict[int, Box] = {}  # track id -> the place it left that was looked at
        self._round = 0
        self._fresh = fresh_looks  # the next round is a new scene's first (FaceStage sets it at a cut)
        self._propose_all = False  # the next round proposes the whole frame (a scene's second)
        self._sweep: list[Region] = []
        self._sweep_size: tuple[int, int] = (0, 0)
        self._cursor = 0
        self._seen = np.zeros((0, 0), dtype=np.int64)  # per CELL of the frame: the round that last looked

    def round_budget(self, width: int, height: int) -> int:
        """Detector pixels per round: ``budget_px`` for a 640x480 frame, growing with the square
        root of the frame's area (a 1080p frame: 2.6 times as much) so a big frame's round still
        covers what moved in it."""
        return round(self.budget_px * math.sqrt(max(1.0, width * height / (640 * 480))))

    @property
    def piece_px(self) -> int:
        """Side of a sweep region: two fit in a round, each holds a face twice the smallest."""
        return max(3 * FACE_PX, min(self.tile_px, int(math.sqrt(self.budget / 2))))

    @property
    def motion_px(self) -> int:
        """Largest side of a motion region: one fills a round."""
        return max(3 * FACE_PX, min(self.tile_px, int(math.sqrt(self.budget))))

    def whole_at_min(self, width: int, height: int) -> Region:
        return Region(0, 0, width - 1, height - 1, self.scale, "whole")

    def fits_whole(self, width: int, height: int) -> bool:
        """Whether the whole frame at the min-face scale fits a round: then every round is just that
        (no tracks, motion or sweep to plan)."""
        return self.whole_at_min(width, height).pixels <= self.round_budget(width, height)

    def coarse(self, width: int, height: int) -> Region:
        """The whole frame at ``tile_px`` (or at the min-face scale, if smaller)."""
        s = min(self.scale, self.tile_px / max(width, height))
        return Region(0, 0, width - 1, height - 1, s, "whole")

    def still(self, width: int, height: int) -> Region:
        """One look at a photo: all of it at the min-face scale (capped at the detector's largest
        input), as dlib's upsampling would see it."""
        return Region(0, 0, width - 1, height - 1, min(self.scale, MAX_SIDE / max(width, height)), "whole")

    def coarse_every(self, width: int, height: int) -> int:
        """Every how many rounds the whole frame is looked at at ``tile_px`` (the first round, then
        regularly): every 2nd where that scale sees nearly the faces wanted, rarer the smaller the
        part of the face sizes it sees (every 6th on a 1080p frame for 40 px faces)."""
        return max(2, round(self.scale / self.coarse(width, height).scale))

    def sweep_cycle(self, width: int, height: int) -> list[Region]:
        """The sweep's regions, coarse to fine (past the whole frame at ``tile_px``, which has its
        own turn): each level twice the scale of the one before."""
        self.budget = self.round_budget(width, height)
        return self._levels(width, height)

    def _levels(self, width: int, height: int) -> list[Region]:
        whole = self.coarse(width, height)
        levels: list[Region] = []
        s = whole.scale
        while s < self.scale - 1e-9:
            s = min(self.scale, 2 * s)
            levels += tiles(width, height, s, self.piece_px, "sweep")
        return levels

    def plan(
        self,
        width: int,
        height: int,
        tracks: Sequence[tuple[int, Box]],
        motion: Sequence[XYXY],
        moved: float,
        left_behind: Sequence[tuple[int, Box]] = (),
        hidden: Collection[int] = (),
    ) -> tuple[Region, ...]:
        """The regions to detect on this frame: ``tracks`` (id, box) live now, ``motion`` boxes and
        the ``moved`` fraction of the picture since the last round; ``left_behind`` (id, box): where
        a track's face was last detected and its box has left since (looked at once, like a track);
        ``hidden``: ids of shown tracks whose box is not drawn now (it no longer looks like the face
        the detector saw: turned, grown, or pulled off it), due at once rather than ``TRACK_EVERY``
        rounds later, so that the box comes back or the track ends within a round."""
        self._round += 1
        propose_all, self._propose_all = self._propose_all, False  # (a scene's second round)
        if self.fits_whole(width, height):
            return self._spend([self.whole_at_min(width, height)])
        self.budget = self.round_budget(width, height)
        coarse = self.coarse(width, height)
        if self._fresh or moved >= CAMERA_MOVING or self._round % self.coarse_every(width, height) == 1:
            # the whole frame at tile_px, and the tracks too small to be seen there
            plan = [coarse]
            left = self.budget - coarse.pixels
            tracks = [(tid, b) for tid, b in tracks if max(b.width, b.height) * coarse.scale < TRACK_FACE_PX]
        else:
            plan, left = [], self.budget
        pieces = [] if plan else self._motion_regions(motion, width, height)
        # 1. tracks, longest unlooked first (at most half the budget while motion waits), then the
        # places tracks left (once each)
        live = {tid for tid, _ in tracks}
        self._looked = {t: r for t, r in self._looked.items() if t in live}
        self._left_looked = {t: b for t, b in self._left_looked.items() if t in live}
        for_tracks = left - (self.budget // 2 if pieces else 0)
        # the flow carries a box well between looks: one looked at in the last rounds waits its turn
        due = [
            (t, b)
            for t, b in tracks
            if t in hidden or self._looked.get(t, -TRACK_EVERY) <= self._round - TRACK_EVERY
        ]
        for tid, b in sorted(due, key=lambda tb: self._looked.get(tb[0], -1)):
            r = self._track_region(b, width, height)
            if r.pixels > for_tracks and plan:
                continue
            plan.append(r)
            left -= r.pixels
            for_tracks -= r.pixels
            self._looked[tid] = self._round
        for tid, b in left_behind:
            if self._left_looked.get(tid) == b or (plan and plan[0] is coarse):
                continue
            r = self._track_region(b, width, height)
            if r.pixels > for_tracks:
                break
            plan.append(r)
            left -= r.pixels
            for_tracks -= r.pixels
            self._left_looked[tid] = b
        if plan and plan[0] is coarse:
            if self._fresh:  # a new scene: every face there looked at in this round and the next
                self._fresh = False
                fresh = fresh_look(self, width, height)
                if fresh and fresh[0].why == "whole":
                    plan = fresh
                else:  # the coarse look alone now (big faces at once), HOG over all of it next
                    self._propose_all = bool(fresh)
                return self._spend(plan, width, height)
            self._propose_into(plan, left, width, height, propose_all)
            return self._spend(plan, width, height)
        left = self._propose_into(plan, left, width, height, propose_all)  # 2. the next proposal tile
        cycle = self._cycle(width, height)
        if self._round % SWEEP_FIRST == 0:  # now and then the sweep goes before motion: still faces
            left = self._sweep_into(plan, left, cycle, once=True)
        # 3. motion, what no track region covers already, the part looked at longest ago first
        # (one piece at least, if half of it fits)
        took = False
        for r in sorted(pieces, key=lambda r: self._last_looked(r)):
            if any(inside(r, p) for p in plan):
                continue
            if r.pixels <= left or (not took and 2 * left >= r.pixels):
                plan.append(r)
                left -= r.pixels
                took = True
        # 4. the sweep, with what is left (one region at least when nothing else was planned)
        self._sweep_into(plan, left, cycle)
        return self._spend(plan, width, height)

    def proposal_tiles(self, width: int, height: int) -> list[Region]:
        """The frame in tiles at the proposal scale, each costing at most half a round's budget."""
        self.budget = self.round_budget(width, height)
        side = min(MAX_SIDE, int(math.sqrt(self.budget / 2 / PROPOSE_COST)))
        return tiles(width, height, self.proposal_scale(width, height), side, "propose")

    def proposal_whole(self, width: int, height: int) -> list[Region]:
        """The whole frame as one proposal region (HOG scans each pixel once; the tiles overlap by
        up to half a tile: on a 720p frame they scan 9.6 Mpx for its 3.7), or its tiles where it is
        larger than the detector's largest input."""
        s = self.proposal_scale(width, height)
        if max(width, height) * s > MAX_SIDE:
            return self.proposal_tiles(width, height)
        return [Region(0, 0, width - 1, height - 1, s, "propose")]

    def proposal_scale(self, width: int, height: int) -> float:
        """HOG's scale: a min_face_px face at PROPOSE_FACE_PX (its window), unless the frame's scan
        would pass PROPOSE_FRAME_PX; then less, down to PROPOSE_FACE_PX_MIN (1080p: 60 px)."""
        fit = math.sqrt(PROPOSE_FRAME_PX / (width * height))
        return min(self.propose_scale, max(PROPOSE_FACE_PX_MIN / self.min_face_px, fit))

    def _propose_into(self, plan: list[Region], left: int, width: int, height: int, all_of_it: bool) -> int:
        """The next proposal tile into ``plan`` if it fits ``left`` (or half of it does); with
        ``all_of_it`` (a scene's second round), the whole frame, over budget. Only where
        the coarse look cannot see the smallest faces wanted (its scale under the min-face scale:
        for 40 px faces, a 640x360, 640x480 or 640x640 camera as well as 720p and 1080p): there a
        still face of 40-79 px is found only by the sweep, seconds later on such a frame, and not
        at all while the camera moves (every round is the coarse look then). On the real clips,
        mall (640x640) recall 0.75 -> 0.94 and new faces boxed in 0.2 s instead of 1.7 s; TV
        speeches (640x360) 0.67 -> 0.80 (``python -m benchmarks real``)."""
        if not self.propose or self.coarse(width, height).scale >= self.scale - 1e-9:
            return left
        if all_of_it:  # a scene's second round: all of the frame at once, over budget
            whole = self.proposal_whole(width, height)
            plan += whole
            return left - sum(cost(r) for r in whole)
        if self._proposals_size != (width, height):
            self._proposals = self.proposal_tiles(width, height)
            self._proposals_size = (width, height)
            self._propose_cursor = 0
        r = self._proposals[self._propose_cursor % len(self._proposals)]
        if 2 * left < cost(r):
            return left
        plan.append(r)
        self._propose_cursor += 1
        return left - cost(r)

    @property
    def second_look(self) -> bool:
        """Whether the next round is a new scene's second, its HOG scan of all of the frame: due at
        once, as the first was (FaceStage), whatever ``detect_every`` says."""
        return self._propose_all

    @property
    def fresh(self) -> bool:
        return self._fresh

    @fresh.setter
    def fresh(self, value: bool) -> None:
        """A new scene (a cut): its first round looks at every face there, if ``fresh_looks``."""
        self._fresh = value and self.fresh_looks
        self._propose_all = self._propose_all and not self._fresh

    def _sweep_into(self, plan: list[Region], left: int, cycle: list[Region], once: bool = False) -> int:
        """The sweep's next regions into ``plan`` while they fit ``left`` (the first also when half
        of it fits and the plan is empty, or with ``once``); returns what is left."""
        for _ in range(len(cycle)):
            r = cycle[self._cursor % len(cycle)]
            if r.pixels > left and ((plan and not once) or 2 * left < r.pixels):
                break
            plan.append(r)
            left -= r.pixels
            self._cursor += 1
            if left <= 0 or once:
                break
        return left

    def _spend(self, plan: list[Region], width: int = 0, height: int = 0) -> tuple[Region, ...]:
        if width and height:
            self._mark(plan, width, height)
        return tuple(plan)

    def _cells(self, r: Region) -> tuple[slice, slice]:
        return slice(r.top // CELL, r.bottom // CELL + 1), slice(r.left // CELL, r.right // CELL + 1)

    def _mark(self, plan: Sequence[Region], width: int, height: int) -> None:
        """Remember when each part of the frame was last looked at finely enough for the smallest faces."""
        shape = (-(-height // CELL), -(-width // CELL))
        if self._seen.shape != shape:
            self._seen = np.full(shape, -1, dtype=np.int64)
        for r in plan:
            if r.scale >= self.scale - 1e-9 and r.why != "propose":
                self._seen[self._cells(r)] = self._round

    def _last_looked(self, r: Region) -> float:
        part = self._seen[self._cells(r)]
        return float(part.mean()) if part.size else -1.0

    def _cycle(self, width: int, height: int) -> list[Region]:
        if self._sweep_size != (width, height):
            self._sweep = self.sweep_cycle(width, height)
            self._sweep_size = (width, height)
            self._cursor = 0
        return self._sweep

    def _track_region(self, b: Box, width: int, height: int) -> Region:
        w = max(b.width, b.height)
        s = min(self.scale, TRACK_FACE_PX / max(1, w))
        half = TRACK_CONTEXT * w / 2
        cx, cy = (b.left + b.right) / 2, (b.top + b.bottom) / 2
        side = min(2 * half, self.tile_px / s)
        return square(cx, cy, side, s, width, height, "track")

    def _motion_regions(self, motion: Sequence[XYXY], width: int, height: int) -> list[Region]:
        m = self.min_face_px  # a face at the edge of what moved is still inside
        boxes = [[x0 - m, y0 - m, x1 + m, y1 + m] for x0, y0, x1, y1 in motion]
        merged = merge_overlapping(boxes)
        out: list[Region] = []
        for x0, y0, x1, y1 in sorted(merged, key=lambda b: (b[2] - b[0]) * (b[3] - b[1])):
            x0, y0 = max(0, round(x0)), max(0, round(y0))
            x1, y1 = min(width - 1, round(x1)), min(height - 1, round(y1))
            w, h = x1 - x0 + 1, y1 - y0 + 1
            if w <= 0 or h <= 0:
                continue
            if max(w, h) * self.scale <= self.motion_px:
                out.append(Region(x0, y0, x1, y1, self.scale, "motion"))
                continue
            for t in tiles(w, h, self.scale, self.motion_px, "motion"):
                out.append(Region(t.left + x0, t.top + y0, t.right + x0, t.bottom + y0, t.scale, "motion"))
        return out
