"""Grouping unknown tracks (streamer/people/clusters.py): average linkage over a cluster's tracks,
tracks left out, a cluster's tracks read back from the store, tracks seen together kept apart."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np

from streamer.history.schema import Database
from streamer.people.clusters import Clusters
from streamer.people.match import Gallery, MatchRule


def _near(centre: np.ndarray, rng: np.random.Generator, spread: float) -> np.ndarray:
    """A track's mean descriptor: ``centre`` moved by exactly ``spread`` in a random direction."""
    e = rng.normal(size=centre.shape)
    return (centre + spread * e / np.linalg.norm(e)).astype(np.float32)


def test_two_similar_people_stay_apart_though_one_lies_near_the_others_mean() -> None:
    """Two people 0.40 apart, each track 0.17 from its person (tracks of one person ~0.24 apart, of
    the two ~0.47): the mean of six of the first's tracks lies within 0.45 of the second's tracks
    (a rule comparing with the cluster's mean merges them, and the mean then drifts between the
    two); compared with the cluster's tracks themselves, the second starts a cluster of their own."""
    rng = np.random.default_rng(3)
    a = rng.normal(0, 0.09, 128)
    step = rng.normal(size=128)
    b = a + 0.40 * step / np.linalg.norm(step)
    first = [_near(a, rng, 0.17) for _ in range(6)]
    second = [_near(b, rng, 0.17) for _ in range(6)]
    assert np.linalg.norm(np.mean(first, axis=0) - second[0]) <= 0.45  # (the old rule's merge)
    clusters = Clusters(None, 0.45)
    got_a = {clusters.add("cam", i, d, 3) for i, d in enumerate(first)}
    got_b = {clusters.add("cam", 10 + i, d, 3) for i, d in enumerate(second)}
    assert len(got_a) == 1 and len(got_b) == 1 and got_a != got_b
    assert sorted(c.sightings for c in clusters.clusters) == [6, 6]


def test_tracks_with_few_looks_or_small_faces_are_left_out() -> None:
    clusters = Clusters(None, 0.45, min_looks=3, min_face_px=50)
    d = np.full(128, 0.05, np.float32)
    assert clusters.add("cam", 1, d, 2, 80.0) is None  # (too few looks)
    assert clusters.add("cam", 2, d, 3, 40.0) is None  # (too small)
    assert clusters.add("cam", 3, d, 3, 80.0) is not None and len(clusters.clusters) == 1


def test_a_cluster_read_from_the_store_brings_its_tracks(tmp_path: Path) -> None:
    """Another front end (or a restart) reads a cluster's tracks, not only its mean: a track near
    the mean but far from most of the tracks does not join it there either."""
    db = Database("", tmp_path)
    conn = db.connect()
    db.migrate(conn)
    writer, reader = Clusters(db, 0.45), Clusters(db, 0.45)
    writer.load(conn)
    rng = np.random.default_rng(5)
    a = rng.normal(0, 0.09, 128)
    step = rng.normal(size=128)
    b = a + 0.40 * step / np.linalg.norm(step)
    for i in range(6):
        writer.add("cam", i, _near(a, rng, 0.17), 3)
    writer.flush()
    reader.load(conn)
    (stored,) = reader.clusters
    assert len(stored.tracks) == 6 and stored.sightings == 6
    cid = stored.id
    assert reader.add("door", 1, _near(a, rng, 0.17), 3) == cid
    assert reader.add("door", 2, _near(b, rng, 0.17), 3) != cid
    writer.close()
    reader.close()


def test_only_frontal_looks_count_for_the_clusters(monkeypatch) -> None:
    """A track's profile looks are left out of its mean and its count of looks (a profile's
    descriptor lies near other people's); a track with no frontal look counts none."""
    import streamer.people.recognize as recognize

    fronts = iter([1.0, 0.1, 0.1, 0.2, 0.9])  # (the looks in turn: track 1, track 2, 1, 2, 1)
    monkeypatch.setattr(recognize, "frontalness", lambda image, box: next(fronts))
    got = []
    rec = recognize.StageRecognizer(
        lambda: Gallery(), MatchRule(), on_unknown=lambda *a: got.append(a), min_frontal=0.5
    )
    image = np.zeros((200, 200, 3), np.uint8)
    a, side = np.full(128, 0.1, np.float32), np.full(128, 0.9, np.float32)
    one = SimpleNamespace(id=1, identities=[], box=(10, 10, 90, 110), last_hit=0.0)
    two = SimpleNamespace(id=2, identities=[], box=(100, 10, 160, 70), last_hit=0.0)
    for k, (d1, d2) in enumerate(((a, side), (side.copy(), side.copy()), (a.copy(), None))):
        one.identities = [*one.identities, d1]  # (each look its own array)
        one.last_hit = float(k)
        if d2 is not None:
            two.identities = [*two.identities, d2]
            two.last_hit = float(k)
        rec.observe([one, two], [], image)
    end = [SimpleNamespace(kind="end", merged_into=None, track=t, labels=()) for t in (1, 2)]
    rec.observe([], end, image)
    (t1, d1, n1, px1, hits1), (t2, _, n2, px2, hits2) = got
    assert (t1, n1, px1) == (1, 2, 100.0) and np.allclose(d1, a)  # (the profile look left out)
    assert (t2, n2, px2) == (2, 0, 60.0)  # (no frontal look: Clusters leaves it out)
    assert hits1 == {0.0, 1.0, 2.0} and hits2 == {0.0, 1.0}  # (the times the detector found each)


def test_two_tracks_seen_together_are_two_people() -> None:
    """Two people whose descriptors lie as near as one person's (a parent and a child, say): tracks
    found on the same frames of one stream never share a cluster, however near; the same
    descriptors seen at other times, or on another stream, join as before."""
    rng = np.random.default_rng(7)
    a = rng.normal(0, 0.09, 128)
    together = frozenset(float(t) for t in range(10))
    clusters = Clusters(None, 0.45)
    first = clusters.add("cam", 1, _near(a, rng, 0.1), 3, hits=together)
    second = clusters.add("cam", 2, _near(a, rng, 0.1), 3, hits=together)
    assert second != first
    later = frozenset(float(t) for t in range(20, 30))
    assert clusters.add("door", 3, _near(a, rng, 0.1), 3, hits=together) in (first, second)
    assert clusters.add("cam", 4, _near(a, rng, 0.1), 3, hits=later) in (first, second)
    assert len(clusters.clusters) == 2
    # (without the detection times, the first two would have shared a cluster)
    plain = Clusters(None, 0.45)
    assert plain.add("cam", 1, _near(a, rng, 0.1), 3) == plain.add("cam", 2, _near(a, rng, 0.1), 3)


def test_what_a_front_end_saw_stays_when_its_cluster_grows_elsewhere(tmp_path: Path) -> None:
    """A cluster another front end grew is read back from the store (its tracks, its mean); the
    detection times this front end kept for it stay, so a track seen with its first track is still
    kept out."""
    db = Database("", tmp_path)
    conn = db.connect()
    db.migrate(conn)
    here, there = Clusters(db, 0.45), Clusters(db, 0.45)
    here.load(conn)
    rng = np.random.default_rng(11)
    a = rng.normal(0, 0.09, 128)
    together = frozenset(float(t) for t in range(5))
    here.add("cam", 1, _near(a, rng, 0.1), 3, hits=together)
    here.flush()
    cid = here.clusters[0].id  # (the store's)
    there.load(conn)
    assert there.add("door", 2, _near(a, rng, 0.1), 3) == cid
    there.flush()
    here.refresh(conn)
    (grown,) = here.clusters
    assert grown.sightings == 2 and len(grown.tracks) == 2  # (read back from the store)
    assert here.add("cam", 3, _near(a, rng, 0.1), 3, hits=together) != cid
    here.close()
    there.close()
