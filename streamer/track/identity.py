"""Is the face a detection matched to a track the same person the track was following?

Overlap and the flow cannot tell: when someone walks in front of a face, the flow moves the box
with the passer-by, and the next detection, of the passer-by, overlaps the box as well as the face
did. A 16-pixel grey template cannot either: faces are alike at that size (different people on the
1080p clips score 0.9 and more against each other's). dlib's face descriptor (``Face.identity``,
computed where a face is classified on the face backbone) can: on the street and group clips
(planned runs, one detection every 12 frames), descriptors of one person at consecutive detections
lie 0.11 apart at the median and 0.42 at the 99th percentile, and a track that had moved onto
someone else lay 0.63-0.99 from that person's descriptor (9 of 10 such switches over 0.6).
"""

from __future__ import annotations

import numpy as np

# descriptors further apart than this are two people: dlib's own same-person threshold is 0.6, on
# faces of 80 px and more; these are often 40-60 px, and one of them lay 0.600 from itself 24
# frames later (street2, a face turning)
OTHER_PERSON = 0.65


def other_person(a: np.ndarray | None, b: np.ndarray | None, limit: float = OTHER_PERSON) -> bool:
    """Whether two identities are of two people; False where either is unknown (or ``limit`` is 0)."""
    if a is None or b is None or limit <= 0:
        return False
    return float(np.linalg.norm(np.asarray(a, np.float32) - np.asarray(b, np.float32))) > limit
