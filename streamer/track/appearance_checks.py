"""The tracker's uses of appearance.py: does each track's box still show the face it follows?

Each track keeps a template, the face as the detector last saw it. Four rules compare the
content under a track's box with it:

- ``check_boxes``, every frame, each track in turn (one look every ``unlike_every`` frames: a look
  costs a few tenths of a millisecond): a box that shows nothing like its face (``unlike``) at
  ``unlike_looks`` looks in a row is not drawn until it does again or the detector sees the face
  (``Track.shown``): the flow pulled it off its face, or left it on the wall behind. Such a box,
  and one the flow lost for a frame, is unsure (``Track.unsure``): drawn again only at a look of
  ``sure_like`` or more (or a detection), and looked at on every frame until then.
- ``check_carried``, when a new face's box has been carried from the frame the detector saw to
  now: a box that looks less than ``carried_unlike`` like the face is unsure from the start (the
  carry lost the face on the way).
- a face that looks less than ``doubt`` like its template while another track's box is near
  (``has_neighbour``: someone who could have walked in front of it) is doubted: classified again
  at the next detection, so its identity is checked (identity.py). A face alone that turns or is
  lit otherwise needs no check. ``doubt_at_detection`` asks the same of the detection a track
  is matched to.
- ``less_like`` tells which of two tracks on one face is not that face (lifecycle.py ends it).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from streamer.track.appearance import likeness
from streamer.track.rule import TrackerRule
from streamer.track.track import Track

# of two tracks on one face, one whose template the face is this much less like is not that face
CLEARLY_LIKER = 0.1


def check_boxes(tracks: Sequence[Track], gray: np.ndarray, s: float, index: int, rule: TrackerRule) -> None:
    """Frame ``index`` (``gray``, the flow's image at scale ``s``): the tracks whose turn it is
    compare their box's content with their template (``Track.likeness``, ``unlike_run``,
    ``doubted``). The turns are spread by track id, so a frame looks at a share of the tracks."""
    for tr in tracks:
        due = (index + tr.id) % rule.unlike_every == 0 or tr.unsure  # (an unsure box: every frame)
        if rule.unlike_looks and tr.template is not None and due:
            tr.likeness = likeness(tr.template, gray, s, tr.box)
            unlike = tr.likeness is not None and tr.likeness < rule.unlike
            tr.unlike_run = tr.unlike_run + 1 if unlike else 0
            if rule.sure_like and tr.likeness is not None:
                hidden = tr.unlike_run >= rule.unlike_looks or (
                    tr.misses > 0 and tr.likeness < rule.missed_unlike
                )
                tr.unsure = tr.likeness < rule.sure_like and (tr.unsure or hidden)
            if not tr.doubted and tr.likeness is not None and tr.likeness < rule.doubt:
                tr.doubted = has_neighbour(tr, tracks)


def check_carried(tr: Track, gray: np.ndarray | None, s: float, rule: TrackerRule) -> None:
    """A new track's box, carried from the frame the detector saw to the last followed one
    (``gray``, at scale ``s``), compared with its face there: under ``carried_unlike`` the carry
    lost the face on the way, and the box is unsure until a look finds the face under it."""
    if not (rule.carried_unlike and rule.sure_like) or tr.template is None or gray is None:
        return
    tr.likeness = likeness(tr.template, gray, s, tr.box)
    tr.unsure = tr.likeness is not None and tr.likeness < rule.carried_unlike


def doubt_at_detection(
    tr: Track,
    tracks: Sequence[Track],
    seen: tuple[np.ndarray, float] | None,
    det: tuple[float, float, float, float],
    rule: TrackerRule,
) -> None:
    """``tr`` is matched to the detection ``det`` on the grey frame ``seen`` (image, scale): the
    detected face looking unlike the track's template beside another track puts it in doubt."""
    # (the neighbour first: cheaper than the look, and most faces have none near)
    if (
        rule.doubt > 0
        and seen is not None
        and tr.template is not None
        and not tr.doubted
        and has_neighbour(tr, tracks)
    ):
        like = likeness(tr.template, seen[0], seen[1], np.asarray(det, dtype=np.float64))
        tr.doubted = like is not None and like < rule.doubt


def has_neighbour(tr: Track, tracks: Sequence[Track]) -> bool:
    """Another track's box lies within half a box width of this one's: someone who could have
    walked in front of its face."""
    x0, y0, x1, y1 = tr.box
    m = (x1 - x0) / 2
    for o in tracks:
        if (
            o is not tr
            and o.box[0] < x1 + m
            and o.box[2] > x0 - m
            and o.box[1] < y1 + m
            and o.box[3] > y0 - m
        ):
            return True
    return False


def less_like(a: Track, b: Track, gray: np.ndarray | None, s: float, doubt: float) -> Track | None:
    """Of two tracks on one place, the one whose template is clearly less like what is there,
    where the other's is like it beyond ``doubt`` (None: no clear difference, neither like it, or a
    template or the frame is missing)."""
    if gray is None or a.template is None or b.template is None:
        return None
    la = likeness(a.template, gray, s, a.box)
    lb = likeness(b.template, gray, s, b.box)
    if la is None or lb is None or abs(la - lb) < CLEARLY_LIKER or max(la, lb) < doubt:
        return None
    return a if la < lb else b
