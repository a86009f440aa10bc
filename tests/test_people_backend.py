"""The face library's learned back-end (PLDA, ``streamer.people.match.Backend``, issue #33): it
weighs how a person's photos vary against how people differ, and a bad file stops the service."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from streamer.config import load_config
from streamer.history.service import History
from streamer.metrics import Metrics
from streamer.people.match import Backend, Gallery, MatchRule, load_backend
from streamer.people.service import People
from streamer.people.settings import PeopleConfig


def backend(within: np.ndarray, between: float = 0.002, scale: float = 0.003) -> Backend:
    """A back-end for within-person variances ``within`` (per axis) and between-person ``between``."""
    t = np.diag(within**-0.5)  # (whitens the within-person covariance)
    return Backend(np.zeros(128), t, between / within, scale)


def test_a_face_off_along_how_a_persons_photos_vary_lies_nearer_than_one_off_across_people() -> None:
    within = np.full(128, 0.0005)
    within[0] = 0.01  # one person's photos vary most along axis 0
    a = np.zeros(128, np.float32)
    along, across = a.copy(), a.copy()
    along[0], across[1] = 0.3, 0.3  # equally far from A's face
    q = np.stack([along, across])
    plain = Gallery([("A", a), ("B", a + 0.5)]).distances(q)
    assert plain[0, 0] == pytest.approx(plain[1, 0])
    learned = Gallery([("A", a), ("B", a + 0.5)], backend=backend(within)).distances(q)
    assert learned[0, 0] < learned[1, 0]
    assert np.argmin(learned, axis=1).tolist() == [0, 0]


def test_more_enrolled_faces_of_a_person_make_a_face_at_their_mean_surer() -> None:
    be = backend(np.full(128, 0.002))
    rng = np.random.default_rng(0)
    a = rng.normal(0, 0.05, 128).astype(np.float32)
    faces = [a + rng.normal(0, 0.04, 128).astype(np.float32) for _ in range(3)]
    one = Gallery([("A", faces[0])], backend=be).distances(a)[0, 0]
    three = Gallery([("A", f) for f in faces], backend=be).distances(a)[0, 0]
    plain_one = Gallery([("A", faces[0])]).distances(a)[0, 0]
    plain_three = Gallery([("A", f) for f in faces]).distances(a)[0, 0]
    assert three - plain_three < one - plain_one  # (the back-end's part: the person's faces together)


def test_a_negative_still_vetoes_a_person_with_the_backend() -> None:
    a = np.zeros(128, np.float32)
    near = a.copy()
    near[0] = 0.3
    veto = near.copy()
    veto[1] = 0.05
    g = Gallery([("A", a)], negatives=[("A", veto)], backend=backend(np.full(128, 0.002)))
    assert not np.isfinite(g.distances(near)[0, 0])
    assert g.match(a, MatchRule(0.5, 0.55))[0].name == "A"


def test_the_shipped_backend_loads_and_an_empty_path_means_none() -> None:
    be = load_backend(PeopleConfig().backend)
    assert be is not None and be.t.shape[1] == 128 and be.scale > 0
    assert load_backend("") is None


def test_a_missing_or_corrupt_backend_is_a_clear_error_at_start(tmp_path: Path) -> None:
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a numpy file")
    nan = tmp_path / "nan.npz"
    np.savez(nan, mu=np.zeros(128), t=np.full((4, 128), np.nan), b=np.ones(4), scale=0.003)
    for path in (tmp_path / "missing.npz", bad, nan):
        with pytest.raises(ValueError, match=r"people\.backend"):
            load_backend(str(path))
    config = load_config(None, {"store": {"dir": str(tmp_path)}, "people": {"backend": str(bad)}}, environ={})
    with pytest.raises(ValueError, match=r"people\.backend"):
        People(config, Metrics(), History(config, Metrics()))
