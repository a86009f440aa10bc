"""The face library (issue #33): migration, matching rule, enrolling and recognising real photos,
"not this person", recognition per track through the face stage, privacy blur."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest

from streamer.history.db import EventStore, Record
from streamer.history.schema import MIGRATIONS, VERSION, Database
from streamer.people.faces import FaceFinder
from streamer.people.library import Library
from streamer.people.match import Cohort, Gallery, MatchRule, load_backend, load_cohort
from streamer.people.recognize import PERSON, StageRecognizer, blur_boxes, person_of
from streamer.people.settings import PeopleConfig
from streamer.pipeline.tracking import FaceStage
from streamer.types import Box, Detections, Face, Frame, Label

RULE = MatchRule(known=0.55, unknown=0.6, margin=0.08)


@pytest.fixture(scope="module")
def finder() -> FaceFinder:
    return FaceFinder()


def rgb(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def lfw(shared: Path, person: str) -> list[Path]:
    root = shared / "data" / "faces" / "lfw"
    with open(root / "labels.csv") as f:
        return [root / r["path"] for r in csv.DictReader(f) if r["person"] == person]


def test_migration_4_adds_the_library_to_a_version_3_store_and_keeps_its_events(tmp_path: Path) -> None:
    old = Database("", tmp_path)
    c = old.connect()
    c.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    for v in range(3):  # a store made by the code before the face library
        for q in MIGRATIONS[v](old.dialect):
            c.execute(q)
        c.execute("INSERT INTO schema_version VALUES (?)", (v + 1,))
    EventStore(old).write(c, [Record("cam", 1, 1000.0, 1005.0, 5.0, {"gender": {"label": "male", "p": 0.9}})])
    assert VERSION == 5 and old.migrate(c) == (3, 5)
    tables = {r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"people", "person_faces", "unknown_clusters", "unknown_tracks"} <= tables
    assert EventStore(old).count(c) == 1
    lib = Library(old)
    lib.add_faces(c, "Alice", [(np.zeros(128, np.float32), None)], "file")
    assert [p["name"] for p in lib.people(c)] == ["Alice"]
    assert lib.remove_person(c, "Alice") and not c.execute("SELECT * FROM person_faces").fetchall()


def test_the_rule_names_the_nearest_leaves_strangers_unknown_and_a_negative_vetoes() -> None:
    a, b = np.zeros(128, np.float32), np.zeros(128, np.float32)
    b[0] = 1.0
    g = Gallery([("A", a), ("B", b)])
    near_a = a.copy()
    near_a[1] = 0.3
    far = a.copy()
    far[2] = 0.9
    m = g.match(np.stack([near_a, far]), RULE)
    assert (m[0].outcome, m[0].name) == ("known", "A") and m[1].outcome == "unknown"
    assert g.match(a + 0.0, MatchRule(0.5, 0.55, margin=1.5))[0].outcome == "uncertain"  # B too near
    veto = near_a.copy()
    veto[1] = 0.28
    g2 = Gallery([("A", a), ("B", b)], negatives=[("A", veto)])
    assert g2.match(near_a, RULE)[0].outcome == "unknown"  # nearer A's negative than A: not A
    assert g2.match(a, RULE)[0].name == "A"  # (A's own face still is A)


def test_a_face_as_near_as_names_someone_among_20_people_is_not_named_among_1000() -> None:
    """Open set: every enrolled person is one more chance for a stranger to lie near someone, so
    the configured rule asks a larger library for a nearer match: a stranger at the distance that
    names the nearest of 20 people stays unnamed when 1,000 are enrolled."""
    rule = PeopleConfig().match_rule()
    rng = np.random.default_rng(0)
    people = rng.normal(0, 1, (1000, 128)).astype(np.float32)  # people far apart (~16)
    between = (rule.known_for(20) + rule.known_for(1000)) / 2
    assert rule.known_for(1000) < between < rule.known_for(20) <= rule.unknown
    face = people[0].copy()
    face[0] += between  # (as near person 0 as that, every other person far)
    named = [(f"p{i:04d}", d) for i, d in enumerate(people)]
    small = Gallery(named[:20]).match(face, rule)[0]
    large = Gallery(named).match(face, rule)[0]
    assert (small.outcome, small.name) == ("known", "p0000")
    assert large.name == "p0000" and large.distance == pytest.approx(small.distance)
    assert large.outcome != "known"
    assert rule.known_for(1) == rule.known_for(rule.people) == rule.known  # (no looser below)


def test_enroll_real_photos_then_recognise_others_and_a_stranger_stays_unknown(
    tmp_path: Path, shared: Path, finder: FaceFinder
) -> None:
    db = Database("", tmp_path)
    conn = db.connect()
    db.migrate(conn)
    lib = Library(db)
    for person in ("Norah_Jones", "Meryl_Streep"):
        photos = lfw(shared, person)
        for p in photos[:2]:
            got = finder.one_face(rgb(p), pick_central=True)
            lib.add_faces(conn, person, [(got.descriptor, None)], "file")
    obama = finder.one_face(rgb(shared / "media" / "obama-1080p.jpg"))
    lib.add_faces(conn, "Obama", [(obama.descriptor, None)], "upload")
    cfg = PeopleConfig()  # the shipped cohort and back-end, and the rule config.toml sets for them
    cohort = load_cohort(cfg.cohort, cfg.cohort_k)
    assert cohort is not None
    configured = cfg.match_rule()
    for g, rule in (
        (lib.gallery(conn), RULE),
        (lib.gallery(conn, cohort, load_backend(cfg.backend)), configured),
    ):
        assert g.names == ["Meryl_Streep", "Norah_Jones", "Obama"]
        queries = [(p, "Norah_Jones") for p in lfw(shared, "Norah_Jones")[2:]]
        queries += [(p, "Meryl_Streep") for p in lfw(shared, "Meryl_Streep")[2:]]
        queries.append((shared / "media" / "obama-720p.jpg", "Obama"))
        for path, who in queries:
            m = g.match(finder.one_face(rgb(path), pick_central=True).descriptor, rule)[0]
            assert (m.outcome, m.name) == ("known", who), (path.name, m)
        for stranger in ("Nancy_Pelosi", "Sarah_Hughes"):  # never enrolled
            for p in lfw(shared, stranger)[:3]:
                m = g.match(finder.one_face(rgb(p), pick_central=True).descriptor, rule)[0]
                assert m.outcome != "known", (p.name, m)


def test_a_cohort_makes_a_face_in_a_crowded_place_need_to_lie_nearer() -> None:
    rng = np.random.default_rng(0)
    a = np.zeros(128, np.float32)
    crowded = a.copy()
    crowded[0] = 0.45  # as near A as a plain rule names
    lonely = a.copy()
    lonely[1] = 0.45  # as near A, where few background faces lie
    spread = rng.normal(0, 1.0 / np.sqrt(128), (40, 128)).astype(np.float32)
    crowd = crowded * 1.2 + rng.normal(0, 0.005, (10, 128)).astype(np.float32)  # strangers about the face
    cohort = Cohort(np.concatenate([spread, crowd]), k=5)
    plain, adjusted = Gallery([("A", a)]), Gallery([("A", a)], cohort=cohort)
    q = np.stack([crowded, lonely])
    assert [m.outcome for m in plain.match(q, RULE)] == ["known", "known"]
    d = adjusted.distances(q)[:, 0]
    assert d[0] > d[1] and d[0] > plain.distances(q)[0, 0]  # plainly equal; crowded: further
    assert adjusted.match(crowded, RULE)[0].outcome != "known"
    assert load_cohort("", 5) is None and load_cohort("/nonexistent/cohort.npz", 5) is None


def face(d: np.ndarray | None, x: int = 100, h: int = 120) -> Face:
    return Face(Box(x, 50, x + h - 1, 50 + h - 1, 1.0), (Label("gender", "male", 0.9),), identity=d)


def run_stage(stage: FaceStage, descriptors: list[np.ndarray], image: np.ndarray | None = None):
    im = image if image is not None else np.zeros((360, 640, 3), np.uint8)
    out = None
    for i, d in enumerate(descriptors):
        frame = Frame("cam", i, im, 100.0 + i / 10)
        stage.on_detections(Detections("cam", i, frame.captured_at, (face(d),)))
        out = stage.process(frame)
    return out


def test_a_track_is_named_once_settled_and_not_this_person_stops_the_match(
    shared: Path, finder: FaceFinder
) -> None:
    a = finder.one_face(rgb(shared / "media" / "obama-1080p.jpg")).descriptor
    q = finder.one_face(rgb(shared / "media" / "obama-720p.jpg")).descriptor
    counted: list[str] = []
    gallery = Gallery([("Obama", a)])
    stage = FaceStage("cam")
    stage.people = StageRecognizer(lambda: gallery, RULE, count=counted.append)
    out = run_stage(stage, [q] * 4)
    assert person_of(out.faces[0].labels) == "Obama" and counted == ["known"] * 4
    starts = [e for e in stage.tracker.drain_events()]  # (the events went out with the frames)
    assert not starts
    # "not this person": the same face kept as a negative for Obama vetoes him for this look
    vetoed = Gallery([("Obama", a)], negatives=[("Obama", q)])
    stage2 = FaceStage("cam")
    stage2.people = StageRecognizer(lambda: vetoed, RULE)
    out2 = run_stage(stage2, [q] * 4)
    labels = {lab.classifier: lab.label for lab in out2.faces[0].labels}
    assert labels[PERSON] == "unknown" and person_of(out2.faces[0].labels) is None


def test_small_faces_and_undescribed_faces_get_no_person_label() -> None:
    someone = Gallery([("A", np.ones(128, np.float32))])
    rec = StageRecognizer(lambda: someone, RULE, min_face_px=60)
    out = rec.label([face(np.zeros(128, np.float32), h=40), face(None)])
    assert all(lab.classifier != PERSON for f in out for lab in f.labels)
    out = StageRecognizer(lambda: someone, RULE).label([face(np.zeros(128, np.float32))])
    assert [lab.label for lab in out[0].labels if lab.classifier == PERSON] == ["unknown"]
    empty = StageRecognizer(lambda: Gallery(), RULE)  # (an empty library names nobody, not even unknown)
    assert empty.label([face(np.zeros(128, np.float32))])[0].labels == face(None).labels


def test_blur_hides_the_face_from_the_detector(shared: Path, finder: FaceFinder) -> None:
    im = rgb(shared / "media" / "obama-720p.jpg")
    (b,) = finder.boxes(im)
    out = blur_boxes(im, [(b.left, b.top, b.right, b.bottom)])
    assert finder.boxes(out) == [] and np.array_equal(im, rgb(shared / "media" / "obama-720p.jpg"))


def test_a_named_track_ends_as_a_record_with_its_identity_for_the_person_filter(tmp_path: Path) -> None:
    from streamer.config import load_config
    from streamer.history.looks import LookKeeper
    from streamer.history.service import History
    from streamer.metrics import Metrics
    from streamer.track.lifecycle import TrackEvent

    config = load_config(None, {"store": {"dir": str(tmp_path)}}, environ={})
    h = History(config, Metrics())
    box = Box(0, 0, 9, 9, 1.0)
    for track, who in ((1, "Alice"), (2, "unknown")):
        labels = (Label("gender", "female", 0.9), Label(PERSON, who, 0.9))
        for kind in ("start", "end"):
            e = TrackEvent(kind, track, 10.0 + track, box, labels, 2.0)
            h._on_event("cam", LookKeeper(), e, e.as_dict("cam"))
    records = [h.writer.q.get_nowait().record for _ in range(2)]
    assert [(r.track, r.identity) for r in records] == [(1, "Alice"), (2, None)]
    assert records[0].labels[PERSON] == {"label": "Alice", "p": 0.9}
    db = h.db
    conn = db.connect()
    db.migrate(conn)
    EventStore(db).write(conn, records)
    rows, _ = EventStore(db).list(conn, person="Alice")
    assert [r["track"] for r in rows] == [1]


def test_blur_unknown_keeps_known_people_and_blur_all_hides_everyone() -> None:
    from types import SimpleNamespace

    rng = np.random.default_rng(0)
    im = rng.integers(0, 255, (200, 400, 3), np.uint8)

    def track(x: int, who: str) -> SimpleNamespace:
        return SimpleNamespace(
            box=np.array([x, 50.0, x + 79, 129]), labels=lambda: (Label(PERSON, who, 0.9),)
        )

    alice, stranger = track(20, "Alice"), track(260, "unknown")
    out = StageRecognizer(lambda: Gallery(), RULE, privacy="blur_unknown").blur(im, [alice, stranger])
    assert np.array_equal(out[50:130, 20:100], im[50:130, 20:100])  # a known person stays
    assert not np.array_equal(out[50:130, 260:340], im[50:130, 260:340])  # a stranger is blurred
    assert out[50:130, 260:340].std() < im[50:130, 260:340].std() / 3
    out = StageRecognizer(lambda: Gallery(), RULE, privacy="blur_all").blur(im, [alice, stranger])
    assert not np.array_equal(out[50:130, 20:100], im[50:130, 20:100])
    assert StageRecognizer(lambda: Gallery(), RULE).blur(im, [alice, stranger]) is im  # off: untouched


def test_front_ends_sharing_a_store_never_reuse_each_others_cluster_ids(tmp_path: Path) -> None:
    """Two front ends (two ``Clusters`` on one store), each starting a cluster: the store numbers
    them, so the ids differ (both were 1 when each front end counted its own); each reads the
    other's; one named or forgotten by one front end is dropped by the other."""
    from streamer.people.clusters import Clusters, remove

    db = Database("", tmp_path)
    conn = db.connect()
    db.migrate(conn)
    a, b = Clusters(db, 0.45), Clusters(db, 0.45)
    a.load(conn)
    b.load(conn)
    rng = np.random.default_rng(0)
    x, y = rng.normal(0, 0.09, 128).astype(np.float32), rng.normal(0, 0.09, 128).astype(np.float32)
    a.add("cam", 1, x, 3)
    b.add("door", 1, y, 3)
    a.flush()
    b.flush()
    xs, ys = a.clusters[0].id, b.clusters[0].id  # (x's cluster, a's; y's, b's: in either order)
    ids = {xs, ys}
    assert len(ids) == 2 and all(i > 0 for i in ids)
    stored = {int(r[0]) for r in conn.execute("SELECT id FROM unknown_clusters")}
    assert stored == ids
    b.refresh(conn)
    assert b.add("door", 2, x + 0.001, 3) == xs  # (x's cluster, started by a)
    b.flush()
    remove(db, conn, xs)
    a.refresh(conn)
    assert [c.id for c in a.clusters] == [ys]
    a.close()
    b.close()
