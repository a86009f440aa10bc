"""Faces a stream learns of the people it names (issue #33, streamer/people/learned.py): a person
enrolled from one photo is named in a pose the photo does not cover once a track of theirs ended
named; strangers, unsure looks, profiles and vetoed faces teach nothing."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from streamer.people.learned import Learned
from streamer.people.match import Gallery, MatchRule
from streamer.people.recognize import PERSON, StageRecognizer
from streamer.people.settings import PeopleConfig
from streamer.types import Box, Face, Label

RULE = MatchRule(known=0.5, unknown=0.6, margin=0.04)
RNG = np.random.default_rng(3)


def unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v)).astype(np.float32)


def toward(a: np.ndarray, b: np.ndarray, dist: float) -> np.ndarray:
    """A descriptor ``dist`` from ``a``, in the direction of ``b``."""
    return (a + dist * unit(b - a)).astype(np.float32)


ALICE = RNG.normal(0, 0.09, 128).astype(np.float32)  # her enrolled photo
TURNED = toward(ALICE, RNG.normal(0, 0.09, 128), 0.62)  # Alice turned: too far from the photo
HALFWAY = toward(ALICE, TURNED, 0.31)  # a look between the two: near both
BOB = toward(ALICE, RNG.normal(0, 0.09, 128), 1.0)


def face(d: np.ndarray) -> Face:
    return Face(Box(100, 50, 219, 169, 1.0), (Label("gender", "female", 0.9),), identity=d)


def named(rec: StageRecognizer, d: np.ndarray) -> str:
    (f,) = rec.label([face(d)])
    return next(lab.label for lab in f.labels if lab.classifier == PERSON)


def track_ends(rec: StageRecognizer, looks: list[np.ndarray], shown: str, tid: int = 1) -> None:
    tr = SimpleNamespace(id=tid, identities=[], box=(100, 50, 220, 170), last_hit=0.0)
    for k, d in enumerate(looks):
        tr.identities = [*tr.identities, d.copy()]
        tr.last_hit = float(k)
        rec.observe([tr], [])
    end = SimpleNamespace(kind="end", merged_into=None, track=tid, labels=(Label(PERSON, shown, 1.0),))
    rec.observe([], [end])


def test_a_track_named_surely_teaches_the_stream_a_face_that_names_the_person_turned() -> None:
    library = Gallery([("Alice", ALICE), ("Bob", BOB)])
    rec = StageRecognizer(lambda: library, RULE, learned=Learned(0.45, keep=8, min_frontal=0.0))
    assert named(rec, TURNED) == "unknown"  # (0.62 from her photo)
    track_ends(rec, [toward(ALICE, TURNED, 0.3), toward(ALICE, TURNED, 0.32)], "Alice")
    assert len(rec.learned) == 1
    assert named(rec, TURNED) == "Alice"  # 0.31 from the learned face
    assert named(rec, BOB) == "Bob" and len(library) == 2  # (the library itself is unchanged)
    other = StageRecognizer(lambda: library, RULE, learned=Learned(0.45, min_frontal=0.0))
    assert named(other, TURNED) == "unknown"  # (another stream learned nothing)


def test_unsure_looks_strangers_and_profiles_teach_nothing() -> None:
    library = Gallery([("Alice", ALICE), ("Bob", BOB)])
    learned = Learned(0.45, min_frontal=0.0)
    rec = StageRecognizer(lambda: library, RULE, learned=learned)
    far = toward(ALICE, TURNED, 0.48)  # known (under 0.5) but not surely (over 0.45)
    track_ends(rec, [far, far.copy()], "Alice")
    track_ends(rec, [HALFWAY], "Alice", tid=2)  # one sure look is not enough
    track_ends(rec, [HALFWAY, HALFWAY.copy()], "unknown", tid=3)  # not shown named
    assert len(learned) == 0 and named(rec, TURNED) == "unknown"
    profiles = Learned(0.45, min_frontal=0.5)  # (looks' frontalness measured: profiles left out)
    import streamer.people.recognize as recognize

    old = recognize.frontalness
    recognize.frontalness = lambda image, box: 0.2
    try:
        rec2 = StageRecognizer(lambda: library, RULE, learned=profiles)
        tr = SimpleNamespace(id=1, identities=[], box=(100, 50, 220, 170), last_hit=0.0)
        for k in range(3):
            tr.identities = [*tr.identities, HALFWAY.copy()]
            tr.last_hit = float(k)
            rec2.observe([tr], [], np.zeros((300, 300, 3), np.uint8))
        end = SimpleNamespace(kind="end", merged_into=None, track=1, labels=(Label(PERSON, "Alice", 1.0),))
        rec2.observe([], [end], np.zeros((300, 300, 3), np.uint8))
    finally:
        recognize.frontalness = old
    assert len(profiles) == 0


def test_a_learned_face_a_negative_vetoes_or_whose_person_left_is_not_used() -> None:
    learned = Learned(0.45, min_frontal=0.0)
    library = Gallery([("Alice", ALICE), ("Bob", BOB)])
    rec = StageRecognizer(lambda: current, RULE, learned=learned)
    current = library
    track_ends(rec, [HALFWAY, HALFWAY.copy()], "Alice")
    assert named(rec, TURNED) == "Alice"
    # "not Alice" on a face like the learned one (a little nearer her photo, so it vetoes no look
    # at TURNED itself): the learned face goes, her photo stays
    current = Gallery([("Alice", ALICE), ("Bob", BOB)], negatives=[("Alice", toward(HALFWAY, ALICE, 0.03))])
    assert named(rec, TURNED) == "unknown" and named(rec, ALICE) == "Alice"
    current = Gallery([("Bob", BOB)])  # Alice removed from the library
    assert named(rec, TURNED) == "unknown" and named(rec, BOB) == "Bob"


def test_each_person_keeps_their_newest_learned_faces_and_0_turns_learning_off() -> None:
    counted: list[None] = []
    learned = Learned(0.45, keep=2, min_frontal=0.0, on_learn=lambda: counted.append(None))
    library = Gallery([("Alice", ALICE)])
    rec = StageRecognizer(lambda: library, RULE, learned=learned)
    for t in range(4):
        track_ends(rec, [HALFWAY, HALFWAY.copy()], "Alice", tid=t)
    assert len(learned) == 2 and len(counted) == 4  # (each learned face counted, kept or not)
    assert PeopleConfig(learn_distance=0).learned() is None
    on = PeopleConfig().learned()
    assert on is not None and on.distance == PeopleConfig().learn_distance
