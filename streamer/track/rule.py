"""The tracker's rule: every threshold that steers tracking, in one frozen dataclass.

Each field says what it decides. The service sets only ``remember_s`` (config.toml's
``[pipeline] reidentify_s``, see ``streamer.pipeline.tracking.rule_for``); the rest are the
defaults below, which tests and benchmarks vary one at a time.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from streamer.track.evidence import EvidenceRule
from streamer.track.identity import OTHER_PERSON, SAME_PERSON


@dataclass(frozen=True)
class TrackerRule:
    min_iou: float = 0.3  # a detection and a track overlap at least this much to be the same face
    # or, of those left, their centres lie within this share of the larger one's width (0: off)
    near_reach: float = 0.5
    # a confirmed track no face matched takes a weak detection (scored under types.FACE_SCORE)
    # overlapping it this much: it is not missed and its box goes there (ByteTrack; 0: off)
    weak_iou: float = 0.5
    confirm_hits: int = 2
    confirm_confidence: float = 0.3  # MMOD score (a face from 0); clear frontal faces score 0.8 and more
    max_misses: int = 2
    max_coast_s: float = 1.0
    history: int = 120  # frames of box history kept to place late detections
    reclassify_growth: float = 1.2
    reclassify_every: int = 10
    # a track the detector missed whose box lies at least this much (of its own area) inside a
    # face the detector found on that frame is a duplicate of that face: it ends at once
    duplicate_inside: float = 0.6
    # two tracks overlapping this much are one face: the one detected longer ago ends
    duplicate_iou: float = 0.5
    # a track whose box has shown nothing like the face the detector last saw there (best
    # correlation of their grey patches under ``unlike``) at this many looks in a row, one every
    # ``unlike_every`` frames, is not drawn until it does again or the detector sees it: a box
    # pulled off its face, left on the street (0 looks: off)
    unlike: float = 0.5
    unlike_looks: int = 1
    unlike_every: int = 3
    # a detection overlapping a track whose identity (face descriptor, identity.py) is further than
    # this from each of the track's last ones is someone else: never matched to it; the track ends
    # (its box had moved onto that person) and the face starts its own, with its own labels (0: off)
    other_person: float = OTHER_PERSON
    # a track the detector looked for and missed whose box looks less than this like its template
    # (at the miss, and at its looks after it) is not drawn until it is detected again or looks
    # like its face again: the face went behind someone or turned away, and what the box shows
    # now (hair, a passer-by, the wall) is not it; a face the detector misses but still there
    # (blur, a turn) keeps its look and stays drawn (0: off)
    missed_unlike: float = 0.6
    # ... and where the detector last found the face only faintly (its MMOD score under ``faint``:
    # a face turned or bowed to the edge of what it finds), this bar instead: such a face the
    # detector then misses is drawn only while its box shows it as it was (a small face that stayed
    # put keeps 0.95 and more; a bowed or turned head that the flow follows looks 0.7-0.9 like it).
    # Off (0): the bowed and turned heads it hid on the real clips are faces, judged by looking
    faint: float = 0.0
    faint_missed_unlike: float = 0.95
    # a new face's box, carried by the flow from the frame the detector saw to now (carry.py), that
    # looks less than this like the face is unsure (drawn once a look finds it ``sure_like``): the
    # carry lost the face on the way and left the box on hair, a coat or a passer-by. A face the
    # carry followed still looks like itself (0: off)
    carried_unlike: float = 0.6
    # a box hidden by those looks, or one the flow lost for a frame (it moved on at its velocity: a
    # guess), is drawn again only once a look finds it at least this like its template, or the
    # detector finds the face: a passer-by or the back of a head the flow followed instead looks
    # 0.6-0.8 like a 16 px face, a face back under its box 0.8 and more (0: off)
    sure_like: float = 0.8
    # a box the flow grew, between two frames since the detector last saw its face (or from the
    # detector's box on), by more than flow_slack * flow_growth ** seconds is unsure too: the flow's
    # points spread over the face and something moving away from it (on pw-shiv213 a face's 92 px
    # box grew 1.7 times in 0.17 s). Faces walking at the camera grow at most 1.5 times a second on
    # the real clips; the slack takes the flow's jitter (a box on a face grows at most 1.19 times
    # more than 1.5 ** seconds there). Shrinking is not bounded: boxes shrinking off a face and on a
    # face turning or receding shrink alike (0.56-0.83 and 0.72-0.8 in 0.2-1 s). 0: off
    flow_growth: float = 1.5
    flow_slack: float = 1.3
    # a track whose face looks less than this like its template (at a look, or the detection it is
    # matched to) while another track's box is near it is classified again at the next detection,
    # so its identity is checked (0: off)
    doubt: float = 0.8
    # a confirmed track that ends is remembered this long (its identities: face descriptors, kept in
    # memory only); a new face within ``same_person`` of them, and clearly nearer them than any other
    # remembered track's, resumes it: its id, labels and first sighting (0: off)
    remember_s: float = 30.0
    same_person: float = SAME_PERSON
    # ... checked at a new track's first detection, and at its classifications up to its
    # ``recognise_hits``-th detection (a face coming out from behind someone, or turned, can be
    # recognised only at a later look): a track recognised then becomes the remembered one
    recognise_hits: int = 4
    evidence: EvidenceRule = field(default_factory=EvidenceRule)
    # classifiers shown on a condition (``when`` in config): (classifier, its condition's
    # classifier, that one's label); a track shows the label only while its own meets it
    conditions: tuple[tuple[str, str, str], ...] = ()
