"""Grouping unknown tracks (streamer/people/clusters.py): average linkage over a cluster's tracks,
tracks left out, a cluster's tracks read back from the store."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from streamer.history.schema import Database
from streamer.people.clusters import Clusters


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
