"""Unknown people, grouped: each track that ended as ``unknown`` joins the cluster whose tracks its
mean descriptor lies nearest on average (average linkage over the cluster's newest ``KEPT`` tracks),
when that average is within ``people.cluster_distance`` and at least half of those tracks lie within
it too; else it starts one. A cluster's running mean drifts as different faces join it, so two
similar people end up in one; comparing with the tracks themselves keeps them apart. Tracks with
too few looks or too small a face are left out: their descriptors lie near everyone's.

Two tracks of one stream that the detector found on the same frames (at least ``APART`` of them)
are two people, however alike their descriptors: a track never joins a cluster holding one it was
seen with (cannot-link). In a scene of several people this keeps relatives apart where the
descriptors alone do not. The detection times are kept in memory for a cluster's newest ``KEPT``
tracks (at most 1024 a track, 8 bytes each; not in the store: a cluster read back from it has none).

Streams share the clusters, and they outlive restarts (tables ``unknown_clusters`` and
``unknown_tracks``). Naming a cluster enrolls its tracks' descriptors under the name and removes it.

``Clusters.add`` runs in a render thread; the database writes go to one thread of their own. The
database numbers the clusters, so front ends sharing one (PostgreSQL) never reuse each other's ids:
a new cluster has a provisional negative id until its row is written. ``refresh`` takes in what
other front ends wrote (new clusters, grown ones, named or forgotten ones).
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from streamer.history.schema import Database
from streamer.people.library import from_bytes, to_bytes

log = logging.getLogger(__name__)
KEPT = 20  # track descriptors kept per cluster
APART = 2  # frames two tracks were both found on that make them two people


@dataclass
class Cluster:
    id: int  # the store's (negative: not written yet)
    centroid: np.ndarray  # (the mean of every track that joined: kept in the store)
    sightings: int
    tracks: list[np.ndarray] = field(default_factory=list)  # the newest KEPT tracks' descriptors
    # the newest KEPT tracks' streams and detection times (sorted; in memory only)
    seen: list[tuple[str, np.ndarray]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.tracks:
            self.tracks = [self.centroid.copy()]


def times(hits: frozenset[float]) -> np.ndarray:
    return np.sort(np.fromiter(hits, np.float64, len(hits)))


def seen_with(c: Cluster, stream: str, at: np.ndarray) -> bool:
    """Whether a track of ``stream`` found at times ``at`` was seen with one of ``c``'s tracks."""
    return len(at) > 0 and any(
        s == stream and len(np.intersect1d(at, h, assume_unique=True)) >= APART for s, h in c.seen
    )


def assign(
    clusters: list[Cluster],
    d: np.ndarray,
    limit: float,
    stream: str = "",
    hits: frozenset[float] = frozenset(),
) -> Cluster | None:
    """The cluster ``d`` joins (its tracks and mean updated), or None: it starts one. It joins the
    cluster whose tracks lie nearest on average, if that is within ``limit`` and at least half of
    them lie within ``limit``, and none of them was seen with it (``stream``, ``hits``)."""
    best, near, at = None, limit, times(hits)
    for c in clusters:
        if seen_with(c, stream, at):
            continue
        dist = np.linalg.norm(np.stack(c.tracks) - d[None], axis=1)
        avg = float(dist.mean())
        if avg <= near and 2 * int((dist <= limit).sum()) >= len(dist):
            best, near = c, avg
    if best is not None:
        best.centroid = (best.centroid * best.sightings + d) / (best.sightings + 1)
        best.sightings += 1
        best.tracks = [*best.tracks, d.copy()][-KEPT:]
        best.seen = [*best.seen, (stream, at)][-KEPT:]
    return best


class Clusters:
    def __init__(self, db: Database | None, limit: float, min_looks: int = 2, min_face_px: float = 0) -> None:
        self.db = db
        self.limit = limit
        self.min_looks = min_looks
        self.min_face_px = min_face_px
        self.clusters: list[Cluster] = []
        self._next = 1
        self.loaded = db is None  # (until the stored clusters are read, tracks are not grouped)
        self._lock = threading.Lock()
        self._io = ThreadPoolExecutor(1, thread_name_prefix="people-clusters")

    def load(self, conn: Any) -> None:
        """Read the stored clusters (again: ``refresh``). A stored cluster that grew elsewhere takes
        the store's mean and tracks; one gone from the store (named, forgotten) is dropped; those
        not written yet are kept."""
        assert self.db is not None
        rows = self.db.execute(conn, "SELECT id, centroid, sightings FROM unknown_clusters").fetchall()
        with self._lock:
            known = {c.id: c.sightings for c in self.clusters}
        stale = [int(i) for i, _, n in rows if int(i) not in known or int(n) > known[int(i)]]
        kept: dict[int, list[np.ndarray]] = {}
        for k in range(0, len(stale), 500):  # (the stored tracks of new and grown clusters only)
            part = stale[k : k + 500]
            for cid, d in self.db.execute(
                conn,
                "SELECT cluster_id, descriptor FROM unknown_tracks WHERE cluster_id IN "
                f"({', '.join('?' * len(part))}) ORDER BY id",
                tuple(part),
            ).fetchall():
                kept.setdefault(int(cid), []).append(from_bytes(d))
        with self._lock:
            mine = {c.id: c for c in self.clusters}
            stored = []
            for i, cen, n in rows:
                c = mine.get(int(i))
                if c is None or int(n) > c.sightings:  # (what this one saw of its tracks stays)
                    seen = c.seen if c is not None else []
                    c = Cluster(int(i), from_bytes(cen), int(n), kept.get(int(i), [])[-KEPT:], seen)
                stored.append(c)
            self.clusters = stored + [c for c in self.clusters if c.id < 0]
            self.loaded = True

    refresh = load

    def add(
        self,
        stream: str,
        track: int,
        d: np.ndarray,
        looks: int,
        face_px: float = 1e9,
        hits: frozenset[float] = frozenset(),
    ) -> int | None:
        """An unknown track ended: the id of the cluster it joined or started (None: left out, too
        few looks or too small a face). ``hits``: the times the detector found it."""
        if looks < self.min_looks or face_px < self.min_face_px or not self.loaded:
            return None
        now = time.time()
        with self._lock:
            c = assign(self.clusters, d, self.limit, stream, hits)
            new = c is None
            if c is None:  # (stored: the database numbers it; a provisional id until then)
                cid = self._next if self.db is None else -self._next
                c = Cluster(cid, d.copy(), 1, seen=[(stream, times(hits))])
                self._next += 1
                self.clusters.append(c)
            cid = c.id
        if self.db is not None:
            self._io.submit(self._write, c, new, stream, track, d, now)
        return cid

    def _write(self, c: Cluster, new: bool, stream: str, track: int, d: np.ndarray, now: float) -> None:
        db = self.db
        assert db is not None
        with self._lock:  # (the newest mean: writes run in order, so a new cluster's row comes first)
            cid, centroid, n = c.id, to_bytes(c.centroid), c.sightings
        try:
            conn = db.local()
            with db.tx(conn):
                if new:
                    q = (
                        "INSERT INTO unknown_clusters (centroid, sightings, first_at, last_at) "
                        "VALUES (?, ?, ?, ?)"
                    )
                    params = (centroid, n, now, now)
                    if db.dialect.name == "postgresql":
                        cid = int(db.execute(conn, q + " RETURNING id", params).fetchone()[0])
                    else:
                        cid = int(db.execute(conn, q, params).lastrowid)
                    with self._lock:
                        c.id = cid
                elif (
                    cid < 0
                    or not db.execute(
                        conn,
                        "UPDATE unknown_clusters SET centroid = ?, sightings = ?, last_at = ? WHERE id = ?",
                        (centroid, n, now, cid),
                    ).rowcount
                ):  # (named or forgotten meanwhile, here or by another front end)
                    self.forget(cid)
                    return
                db.execute(
                    conn,
                    "INSERT INTO unknown_tracks (cluster_id, stream, track, at, descriptor) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (cid, stream, int(track), now, to_bytes(d)),
                )
                db.execute(  # (the newest KEPT tracks of a cluster are enough to name it)
                    conn,
                    "DELETE FROM unknown_tracks WHERE cluster_id = ? AND id NOT IN "
                    "(SELECT id FROM unknown_tracks WHERE cluster_id = ? ORDER BY id DESC LIMIT ?)",
                    (cid, cid, KEPT),
                )
        except Exception as e:  # (the video goes on; the cluster stays in memory)
            db.drop_local()
            log.warning("unknown clusters: cannot write cluster %d: %s", cid, e)

    def flush(self) -> None:
        """Wait for the writes queued so far."""
        self._io.submit(lambda: None).result()

    def forget(self, cid: int) -> None:
        with self._lock:
            self.clusters = [c for c in self.clusters if c.id != cid]

    def close(self) -> None:
        self._io.shutdown(wait=True)


def listing(db: Database, conn: Any) -> list[dict[str, Any]]:
    """The clusters, most sightings first, each with its newest track's event (for a snapshot)."""
    rows = db.execute(
        conn,
        "SELECT id, sightings, first_at, last_at FROM unknown_clusters ORDER BY sightings DESC, id",
    ).fetchall()
    out = []
    for cid, n, first, last in rows:
        ev = db.execute(
            conn,
            "SELECT e.id FROM unknown_tracks t JOIN events e ON e.stream = t.stream AND e.track = t.track "
            "WHERE t.cluster_id = ? AND e.snapshot_bytes > 0 ORDER BY e.started_at DESC LIMIT 1",
            (cid,),
        ).fetchone()
        out.append(
            {
                "id": int(cid),
                "name": f"unknown {cid}",
                "sightings": int(n),
                "first_at": first,
                "last_at": last,
                "event_id": int(ev[0]) if ev else None,
            }
        )
    return out


def members(db: Database, conn: Any, cid: int) -> list[np.ndarray]:
    rows = db.execute(conn, "SELECT descriptor FROM unknown_tracks WHERE cluster_id = ?", (cid,)).fetchall()
    return [from_bytes(r[0]) for r in rows]


def remove(db: Database, conn: Any, cid: int) -> bool:
    with db.tx(conn):
        return db.execute(conn, "DELETE FROM unknown_clusters WHERE id = ?", (cid,)).rowcount > 0
