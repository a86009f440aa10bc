"""The face library on a real PostgreSQL server (migration 4, people, faces, negatives, clusters):
the same SQL as on SQLite."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import numpy as np
import pytest

from streamer.history.schema import VERSION, Database
from streamer.people.clusters import Clusters, listing, members, remove
from streamer.people.library import Library
from tests.support.event_servers import Postgres, postgres_server

pytestmark = pytest.mark.system


@pytest.fixture(scope="module")
def pg() -> Iterator[Postgres]:
    yield from postgres_server()


def test_library_and_clusters_on_postgresql(pg: Postgres) -> None:
    db = Database(pg.new_database(f"t_{uuid.uuid4().hex[:10]}"))
    conn = db.connect()
    assert db.migrate(conn) == (0, VERSION)
    lib = Library(db)
    a, b = np.zeros(128, np.float32), np.ones(128, np.float32) * 0.05
    (fa,) = lib.add_faces(conn, "Alice", [(a, b"jpeg")], "upload")
    lib.add_faces(conn, "Alice", [(b, None)], "event", event_id=7, negative=True)
    lib.add_faces(conn, "Bob", [(b, None)], "file")
    people = lib.people(conn)
    assert [(p["name"], len(p["faces"]), len(p["negatives"])) for p in people] == [
        ("Alice", 1, 1),
        ("Bob", 1, 0),
    ]
    assert lib.crop(conn, "Alice", fa) == b"jpeg"
    g = lib.gallery(conn)
    assert g.names == ["Alice", "Bob"] and np.isinf(g.distances(b)[0][0])  # (Alice vetoed near her negative)
    assert lib.remove_face(conn, "Alice", fa) and lib.remove_person(conn, "Bob")
    clusters = Clusters(db, 0.45)
    assert clusters.add("cam", 9, a, 3) is None  # (not before the stored clusters are read)
    clusters.load(conn)
    first = clusters.add("cam", 1, a, 3)
    assert first < 0 and clusters.add("cam", 2, a + 0.001, 3) == first  # (provisional until stored)
    clusters.add("cam", 3, np.ones(128, np.float32), 3)
    clusters.flush()
    assert [c.id for c in clusters.clusters] == [1, 2]  # (numbered by the store)
    rows = listing(db, conn)
    assert [(r["id"], r["sightings"]) for r in rows] == [(1, 2), (2, 1)]
    assert len(members(db, conn, 1)) == 2 and remove(db, conn, 1)
    again = Clusters(db, 0.45)
    again.load(conn)
    assert [c.id for c in again.clusters] == [2]
    clusters.close()
    again.close()
