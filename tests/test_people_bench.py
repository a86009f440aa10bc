"""The face library's benchmarks (issue #33): identification split by photos enrolled, and unknown
clusters by PLDA's set-against-set score against the service's rule."""

from __future__ import annotations

import numpy as np

from benchmarks.people_backend import Plda
from benchmarks.people_clusters import grouping, plda_clusters, rule_clusters
from benchmarks.people_lfw import score
from streamer.people.match import MatchRule


def test_identification_is_split_by_how_many_photos_of_the_person_are_enrolled() -> None:
    q1 = np.array([0.3, 0.3, 0.7, 0.3])  # the third lies beyond the rule: not named
    q2 = np.full(4, 1.0)
    hit = np.array([True, False, True, True])  # the second names the wrong person
    k = np.array([1, 1, 2, 3])
    s = np.array([0.9])
    sc = score([(q1, q2, hit, s, s, k)], MatchRule(0.5, 0.55, 0.1))
    assert sc["named_correctly"] == 0.5
    assert sc["by_enrolled"] == {
        1: {"queries": 2, "named_correctly": 0.5},
        2: {"queries": 1, "named_correctly": 0.0},
        3: {"queries": 1, "named_correctly": 1.0},
    }


def people(n: int = 300, photos: int = 4, seed: int = 0) -> tuple[np.ndarray, list[list[int]]]:
    """Descriptors of ``n`` people whose photos vary most along axis 0 (as one person's photos vary
    with light or pose), people differing along every axis."""
    rng = np.random.default_rng(seed)
    within = np.full(128, 0.01)
    within[0] = 0.3
    x, groups = [], []
    for _ in range(n):
        c = rng.normal(0, 0.04, 128)
        groups.append(list(range(len(x), len(x) + photos)))
        x += [c + rng.normal(0, within) for _ in range(photos)]
    return np.array(x), groups


def test_plda_joins_two_tracks_of_one_person_that_the_distance_rule_splits() -> None:
    x, groups = people()
    m = Plda(x, groups, shrink=0.0)
    rng = np.random.default_rng(1)
    a = rng.normal(0, 0.04, 128)
    a2 = a.copy()
    a2[0] += 0.5  # the same person, along how their photos vary: 0.5 apart
    b = rng.normal(0, 0.04, 128)  # another person (about 0.64 away)
    tracks = np.stack([a, a2, b])
    assert rule_clusters(tracks, 0.40) == [0, 1, 2]
    assert plda_clusters(m, tracks, 0.0) == [0, 0, 1]
    assert grouping(["A", "A", "B"], plda_clusters(m, tracks, 0.0)) == {
        "clusters": 2,
        "mixing": 0,
        "share": {"A": 1.0, "B": 1.0},
    }


def test_plda_clusters_keep_tracks_seen_together_apart() -> None:
    x, groups = people()
    m = Plda(x, groups, shrink=0.0)
    a = np.random.default_rng(1).normal(0, 0.04, 128)
    tracks = np.stack([a, a + 0.001, a - 0.001])
    together = [frozenset({1.0, 1.1, 1.2}), frozenset({1.1, 1.2}), frozenset({5.0})]
    assert plda_clusters(m, tracks, 0.0) == [0, 0, 0]
    assert plda_clusters(m, tracks, 0.0, together) == [0, 1, 0]
