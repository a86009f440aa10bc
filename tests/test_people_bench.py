"""The face library's benchmarks (issue #33): identification split by photos enrolled, and unknown
clusters by PLDA's set-against-set score against the service's rule."""

from __future__ import annotations

import numpy as np

from benchmarks.people_backend import Plda
from benchmarks.people_clusters import grouping, plda_clusters, regroup_clusters, rule_clusters
from benchmarks.people_lfw import score
from streamer.people.match import MatchRule


def test_identification_is_split_by_how_many_photos_of_the_person_are_enrolled() -> None:
    q1 = np.array([0.3, 0.3, 0.7, 0.3])  # the third lies beyond the rule: not named
    q2 = np.full(4, 1.0)
    hit = np.array([True, False, True, True])  # the second names the wrong person
    k = np.array([1, 1, 2, 3])
    s = np.array([0.9])
    sc = score([(q1, q2, hit, s, s, k, 20)], MatchRule(0.5, 0.55, 0.1))
    assert sc["named_correctly"] == 0.5
    assert sc["by_enrolled"] == {
        1: {"queries": 2, "named_correctly": 0.5},
        2: {"queries": 1, "named_correctly": 0.0},
        3: {"queries": 1, "named_correctly": 1.0},
    }


def test_the_rule_fit_lowers_the_threshold_for_a_larger_library_where_strangers_lie_nearer() -> None:
    from benchmarks.people_rule import fit

    q1 = np.linspace(0.3, 0.55, 200)  # enrolled people's queries, their own person nearest
    hit, k = np.ones(200, bool), np.ones(200, int)
    inf_q, inf_s = np.full(200, np.inf), np.full(1000, np.inf)  # (no second person near)
    by_size = {  # the nearest of more people lies nearer to a stranger
        n: [(q1, inf_q, hit, np.linspace(low, low + 1, 1000), inf_s, k, n)]
        for n, low in ((20, 0.5), (640, 0.4))
    }
    rule, _ = fit(by_size, 0.01)
    for ts in by_size.values():
        assert score(ts, rule)["strangers_named"] <= 0.01
    assert rule.per_doubling > 0 and rule.known_for(640) < rule.known_for(20) == rule.known
    # the small library keeps a threshold its own strangers allow, not the large one's
    assert score(by_size[20], rule)["named_correctly"] > score(by_size[640], rule)["named_correctly"]


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


def test_regroup_without_changes_groups_as_the_service_rule() -> None:
    rng = np.random.default_rng(2)
    centres = rng.normal(0, 0.05, (4, 128))
    x = np.concatenate([c + rng.normal(0, 0.02, (5, 128)) for c in centres])[rng.permutation(20)]
    hits = [frozenset({float(k % 3), float(k % 3) + 0.1}) for k in range(20)]
    assert regroup_clusters(x, 0.4, hits) == rule_clusters(x, 0.4, hits)
    assert len(set(rule_clusters(x, 0.4, hits))) > 1


def test_regroup_merges_clusters_that_a_later_track_joins_but_not_those_seen_together() -> None:
    a = np.zeros(128)
    far = a.copy()
    far[0] = 0.45  # beyond 0.40 of the first: a cluster of its own when it comes
    mid = a.copy()
    mid[0] = 0.225  # between the two: joins the first; the two clusters now lie 0.34 apart
    x = np.stack([a, far, mid])
    assert regroup_clusters(x, 0.40, None) == [0, 1, 0]
    assert regroup_clusters(x, 0.40, None, merge=0.42) == [0, 0, 0]
    together = [frozenset({1.0, 2.0}), frozenset({1.0, 2.0}), frozenset({9.0})]
    assert regroup_clusters(x, 0.40, together, merge=0.42) == [0, 1, 0]


def test_cohort_offsets_make_faces_in_a_crowded_place_lie_further_apart() -> None:
    a = np.zeros(128)
    b = a.copy()
    b[0] = 0.35
    x = np.stack([a, b])
    assert regroup_clusters(x, 0.40, None) == [0, 0]
    assert regroup_clusters(x, 0.40, None, off=np.array([-0.2, -0.2])) == [0, 1]  # 0.55 apart
    assert regroup_clusters(x, 0.40, None, off=np.array([0.2, 0.2])) == [0, 0]


def test_the_variants_on_one_distance_matrix_group_as_the_service_rule_when_unchanged() -> None:
    """``people_cluster_variants.online`` with one limit and no merging is the service's rule, and
    a per-pair limit at that value everywhere changes nothing."""
    from benchmarks.people_cluster_variants import online

    rng = np.random.default_rng(3)
    centres = rng.normal(0, 0.05, (4, 128))
    x = np.concatenate([c + rng.normal(0, 0.02, (5, 128)) for c in centres])[rng.permutation(20)]
    hits = [frozenset({float(k % 3), float(k % 3) + 0.1}) for k in range(20)]
    at = [np.array(sorted(h)) for h in hits]
    dist = np.linalg.norm(x[:, None] - x[None], axis=2)
    want = rule_clusters(x, 0.4, hits)
    assert online(dist, at, 0.4) == want == online(dist, at, np.full(dist.shape, 0.4))


def test_linkage_chains_single_but_not_complete_and_never_tracks_seen_together() -> None:
    from benchmarks.people_cluster_variants import agglomerative

    x = np.zeros((3, 128))
    x[1, 0], x[2, 0] = 0.3, 0.6  # a chain: neighbours 0.3 apart, the ends 0.6
    dist = np.linalg.norm(x[:, None] - x[None], axis=2)
    none = [np.zeros(0)] * 3
    assert agglomerative(dist, none, 0.4, "single") == [0, 0, 0]
    assert len(set(agglomerative(dist, none, 0.4, "complete"))) == 2
    together = [np.array([1.0, 2.0]), np.array([1.0, 2.0]), np.zeros(0)]
    assert agglomerative(dist, together, 0.4, "single")[:2] in ([0, 1], [1, 0])


def test_a_tracks_looks_count_by_how_frontal_and_big_they_are_and_one_look_is_its_descriptor() -> None:
    from benchmarks.people_cluster_variants import set_distance, weighted

    d = np.zeros((3, 128))
    d[1, 0], d[2, 0] = 1.0, 5.0  # the third look a profile: left out
    h, front = np.array([100.0, 50.0, 100.0]), np.array([1.0, 0.5, 0.1])
    assert np.isclose(weighted(d, h, front, 0.5)[0], 25 / 125)  # (weights 100 and 25)
    assert np.isclose(weighted(d, h, np.full(3, 0.1), 0.5)[0], (5 + 50) / 25)  # (none frontal: all)
    a, b = d[:1], d[1:2]
    assert set_distance(a, b, "avg") == set_distance(a, b, "k3") == 1.0


def test_the_looks_kept_for_the_benchmark_are_those_the_recognizer_averages(monkeypatch) -> None:
    """``LooksRecorder`` hands the clusters what the service's recognizer does, and keeps, in the
    same order, each track's looks: their frontal ones' mean is the descriptor handed over."""
    from types import SimpleNamespace

    import streamer.people.recognize as recognize
    from benchmarks.people_cluster_variants import LooksRecorder
    from streamer.people.match import Gallery

    fronts = iter([1.0, 0.9, 0.1, 0.8])  # (track 1, track 2, track 1, track 2)
    monkeypatch.setattr(recognize, "frontalness", lambda image, box: next(fronts))
    got = []
    rec = LooksRecorder(lambda: Gallery(), MatchRule(), on_unknown=lambda *a: got.append(a), min_frontal=0.5)
    image = np.zeros((200, 200, 3), np.uint8)
    rng = np.random.default_rng(4)
    one = SimpleNamespace(id=1, identities=[], box=(10, 10, 90, 110), last_hit=0.0)
    two = SimpleNamespace(id=2, identities=[], box=(100, 10, 160, 70), last_hit=0.0)
    for k in range(2):
        for tr in (one, two):
            tr.identities = [*tr.identities, rng.normal(0, 0.1, 128).astype(np.float32)]
            tr.last_hit = float(k)
        rec.observe([one, two], [], image)
    end = [SimpleNamespace(kind="end", merged_into=None, track=t, labels=()) for t in (2, 1)]
    rec.observe([], end, image)
    assert [g[0] for g in got] == [2, 1] and len(rec.looks) == 2
    for (_, d, n, _, _), (ds, _h, fs) in zip(got, rec.looks, strict=True):
        assert len(ds) == 2 and np.allclose(ds[fs >= 0.5].mean(0), d, atol=1e-6) and n == (fs >= 0.5).sum()
    assert list(rec.looks[0][1]) == [60.0, 60.0] and list(rec.looks[1][2]) == [1.0, 0.1]


def saved_tracks(path, ids: list[int]) -> None:
    """A clip's unknown tracks as ``people-clip --clusters-only --tracks`` saves them, numbered
    ``ids``: two tracks of A (at one place, before and after a cut), B beside A, and C, whom no
    label names, later elsewhere."""
    a, b, c = np.zeros(128), np.zeros(128), np.zeros(128)
    b[0], c[1] = 0.9, 0.9
    a2 = a.copy()
    a2[2] = 0.1
    d = np.stack([a, b, a2, c])
    spans = [(1.0, 100, 100), (1.0, 300, 100), (5.0, 102, 98), (8.0, 300, 300)]
    hit_track, hit, hit_box = [], [], []
    for t, (start, x, y) in zip(ids, spans, strict=True):
        for k in range(10):  # (a detection every 0.1 s for a second, a 60-px face)
            hit_track.append(t)
            hit.append(start + 0.1 * k)
            hit_box.append([x - 30, y - 30, x + 30, y + 30])
    np.savez(
        path,
        ids=np.array(ids),
        d=d,
        looks=np.full(4, 5),
        h=np.full(4, 60.0),
        frames=np.full(4, 25),
        hit_track=np.array(hit_track),
        hit=np.array(hit),
        hit_box=np.array(hit_box, np.float64),
    )


def test_labels_find_people_by_time_and_place_whatever_the_tracker_numbered_their_tracks(tmp_path) -> None:
    import json
    from types import SimpleNamespace

    from benchmarks.people_clusters import clip

    anchors = {"A": [[1.5, 100, 100], [5.45, 103, 97]], "B": [[1.52, 301, 99]]}
    (tmp_path / "dinner.json").write_text(json.dumps(anchors))
    x, groups = people()
    m, cohort = Plda(x, groups, shrink=0.0), SimpleNamespace(offset=lambda d: np.zeros(len(d)))
    got = []
    for run, ids in (("a", [1, 2, 3, 4]), ("b", [7, 3, 9, 2])):  # (a tracker change renumbers them)
        (tmp_path / run).mkdir()
        saved_tracks(tmp_path / run / "dinner.npz", ids)
        got.append(clip(tmp_path / run / "dinner.npz", m, 0.0, (0.4,), cohort, tmp_path))
    assert got[0]["rule 0.4"] == got[1]["rule 0.4"]
    assert got[0]["rule 0.4"] == {"clusters": 3, "mixing": 0, "share": {"A": 1.0, "B": 1.0}}
    assert got[0]["unlabelled"] == [4] and got[1]["unlabelled"] == [2]  # (C: counted, reported)


def test_a_track_two_peoples_anchors_match_is_an_error_and_an_anchor_no_track_matches_is_listed(
    tmp_path,
) -> None:
    import pytest

    from benchmarks.people_labels import LabelError, labels_of, load

    saved_tracks(tmp_path / "t.npz", [1, 2, 3, 4])
    z = np.load(tmp_path / "t.npz")
    (tmp_path / "l.json").write_text('{"A": [[1.5, 100, 100], [3.0, 100, 100]], "B": [[8.5, 300, 300]]}')
    found = labels_of(tmp_path / "l.json", z)
    assert found.truth == {1: "A", 4: "B"} and found.unlabelled == [2, 3]
    assert found.unmatched == [("A", [3.0, 100.0, 100.0])]  # (between the two tracks: no detection near)
    (tmp_path / "l.json").write_text('{"A": [[1.5, 100, 100]], "B": [[1.6, 110, 95]]}')
    with pytest.raises(LabelError, match="two people"):
        labels_of(tmp_path / "l.json", z)
    (tmp_path / "l.json").write_text('{"A": [1, 3]}')  # (track ids: not labels any more)
    with pytest.raises(LabelError, match="anchors"):
        load(tmp_path / "l.json")
    np.savez(tmp_path / "old.npz", **{k: z[k] for k in z.files if k != "hit_box"})  # (saved without boxes)
    with pytest.raises(LabelError, match="no boxes"):
        labels_of(tmp_path / "l.json", np.load(tmp_path / "old.npz"))
