"""The event store on a real SQLite file: schema migrations, records and their queries, retention
(oldest first), the writer thread's batching, and its faults (corrupt file, full disk, locked
database, a full queue): counted, logged once, nothing blocks, what waited is written after."""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from streamer.history.db import BadCursor, EventStore, Record
from streamer.history.looks import Look
from streamer.history.schema import DB_FILE, MIGRATIONS, VERSION, Database, NewerSchema
from streamer.history.settings import StoreConfig
from streamer.history.writer import EventWriter, Pending
from streamer.metrics import Metrics


def rec(track: int, start: float, label: str = "male", stream: str = "cam", dur: float = 5.0) -> Record:
    return Record(stream, track, start, start + dur, dur, {"gender": {"label": label, "p": 0.9}}, looks=3)


def look(score: float = 1.0, seed: int = 0) -> Look:
    rng = np.random.default_rng(seed)
    face = rng.integers(0, 255, (96, 80, 3), np.uint8)
    thumb = rng.integers(0, 255, (72, 128, 3), np.uint8)
    return Look(score, face, thumb, (10, 20, 60, 80), time.time())


def writer(tmp_path: Path, metrics: Metrics, db: Database | None = None, **cfg: object) -> EventWriter:
    db = db or Database("", tmp_path)
    return EventWriter(EventStore(db), metrics, StoreConfig(dir=str(tmp_path), **cfg))


def value(m: Metrics, name: str, **labels: str) -> float:
    return m.registry.get_sample_value(name, labels) or 0.0


def wait(pred, what: str, timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.02)


def direct_counts(conn, stream: str | None = None) -> list[dict]:
    """GET /events/counts's answer computed from the records themselves (the kept counts must agree)."""
    w = " WHERE stream = ?" if stream else ""
    p = (stream,) if stream else ()
    hours: dict[int, dict] = {}
    q = f"SELECT CAST(started_at / 3600 AS INTEGER) * 3600, COUNT(*) FROM events{w} GROUP BY 1"
    for h, n in conn.execute(q, p):
        hours[h] = {"hour": h, "tracks": n, "labels": {}}
    q = (
        "SELECT CAST(started_at / 3600 AS INTEGER) * 3600, classifier || ':' || label, COUNT(*) "
        f"FROM event_labels{w} GROUP BY 1, 2"
    )
    for h, name, n in conn.execute(q, p):
        hours[h]["labels"][name] = n
    return [hours[h] for h in sorted(hours)]


def test_migrations_from_empty_then_reopen_and_from_an_older_version(tmp_path: Path) -> None:
    db = Database("", tmp_path)
    conn = db.connect()
    assert db.migrate(conn) == (0, VERSION)
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"events", "event_labels", "snapshots", "schema_version"} <= tables
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
    conn = Database("", tmp_path).connect()  # re-opened: nothing to do, the data kept
    EventStore(db).write(conn, [rec(1, 1000.0)])
    assert Database("", tmp_path).migrate(conn) == (VERSION, VERSION)
    assert EventStore(db).count(conn) == 1

    old = Database("", tmp_path / "old")  # a database made by the first version only
    c = old.connect()
    c.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    for q in MIGRATIONS[0](old.dialect):
        c.execute(q)
    c.execute("INSERT INTO schema_version VALUES (1)")
    for i in range(6):  # records written by the first version (its event_labels, its columns)
        c.execute(
            "INSERT INTO events (stream, track, started_at, ended_at, duration_s, labels) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            ("cam", i, 3000.0 * i, 3000.0 * i + 5, 5.0, '{"gender": {"label": "male", "p": 0.9}}'),
        )
        c.execute("INSERT INTO event_labels VALUES (?, 'cam', ?, 'gender', 'male', 0.9)", (i + 1, 3000.0 * i))
    assert old.migrate(c) == (1, VERSION)
    counts = EventStore(old).counts(c, "cam", None, None)  # (v3 filled its counts from the records)
    assert counts == direct_counts(c, "cam") and sum(h["tracks"] for h in counts) == 6
    idx = {r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    assert "events_identity" in idx

    c.execute("INSERT INTO schema_version VALUES (?)", (VERSION + 1,))  # made by newer code
    with pytest.raises(NewerSchema):
        old.migrate(c)


def test_records_list_newest_first_by_cursor_filter_count_and_delete(tmp_path: Path) -> None:
    db = Database("", tmp_path)
    conn = db.connect()
    db.migrate(conn)
    store = EventStore(db)
    t0 = 1_699_999_200.0 + 3000  # 10 minutes before an hour boundary
    store.write(conn, [rec(i, t0 + 60 * i, "male" if i % 3 else "female") for i in range(12)])
    store.write(conn, [rec(1, t0, stream="door")])

    seen, cursor = [], None
    while True:
        rows, cursor = store.list(conn, stream="cam", limit=5, cursor=cursor)
        seen += [r["track"] for r in rows]
        if cursor is None:
            break
    assert seen == list(range(11, -1, -1))  # newest first, each once, across pages

    rows, _ = store.list(conn, label="female")
    assert sorted(r["track"] for r in rows) == [0, 3, 6, 9]
    rows, _ = store.list(conn, stream="cam", label="gender:female")
    assert [r["track"] for r in rows] == [9, 6, 3, 0]
    assert store.list(conn, stream="cam", label="beard:female")[0] == []
    rows, _ = store.list(conn, stream="cam", since=t0 + 120, until=t0 + 300)
    assert [r["track"] for r in rows] == [4, 3, 2]
    with pytest.raises(BadCursor):
        store.list(conn, cursor="nonsense")

    hours = store.counts(conn, "cam", None, None)
    assert sum(h["tracks"] for h in hours) == 12
    assert sum(h["labels"].get("gender:female", 0) for h in hours) == 4
    assert all(h["hour"] % 3600 == 0 for h in hours) and len(hours) == 2  # 11 minutes across an hour

    assert hours == direct_counts(conn, "cam") and store.counts(conn, None, None, None) == direct_counts(conn)
    eid = rows[0]["id"]
    assert store.get(conn, eid)["track"] == 4
    assert store.delete(conn, eid) and store.get(conn, eid) is None and not store.delete(conn, eid)
    assert conn.execute("SELECT COUNT(*) FROM event_labels WHERE event_id = ?", (eid,)).fetchone()[0] == 0
    assert store.counts(conn, "cam", None, None) == direct_counts(conn, "cam")  # (the deleted one is off)
    assert (
        store.counts(conn, "cam", t0 + 600, None) == direct_counts(conn, "cam")[1:]
    )  # whole hours from since


def test_a_resumed_track_updates_its_record_and_keeps_the_better_snapshot(tmp_path: Path) -> None:
    db = Database("", tmp_path)
    conn = db.connect()
    db.migrate(conn)
    store = EventStore(db)
    first = rec(7, 5000.0, dur=4.0)
    first.face_jpeg, first.thumb_jpeg, first.score = b"A" * 100, b"a" * 50, 10.0
    store.write(conn, [first])
    again = rec(7, 5000.0, "female", dur=30.0)  # the same person, back: the same start
    again.face_jpeg, again.thumb_jpeg, again.score = b"B" * 80, b"b" * 40, 5.0  # a worse look
    store.write(conn, [again])
    rows, _ = store.list(conn)
    assert len(rows) == 1
    r = rows[0]
    assert r["duration_s"] == 30.0 and r["looks"] == 6 and r["labels"]["gender"]["label"] == "female"
    assert store.snapshot(conn, r["id"], "face") == b"A" * 100
    better = rec(7, 5000.0, dur=40.0)
    better.face_jpeg, better.thumb_jpeg, better.score = b"C" * 60, b"c" * 30, 50.0
    store.write(conn, [better])
    assert store.snapshot(conn, r["id"], "face") == b"C" * 60
    assert store.snapshot_total(conn) == 90
    assert store.counts(conn, None, None, None) == direct_counts(conn)  # one track, its newest label


def test_retention_deletes_the_oldest_first(tmp_path: Path) -> None:
    db = Database("", tmp_path)
    conn = db.connect()
    db.migrate(conn)
    store = EventStore(db)
    now = float(round(time.time()))
    records = []
    for i in range(20):  # shuffled start times: retention goes by start, not by id
        r = rec(i, now - 1000 + ((i * 7) % 20) * 10)
        r.face_jpeg, r.thumb_jpeg = b"x" * 700, b"y" * 300
        records.append(r)
    old = rec(99, now - 10 * 86400)
    store.write(conn, [*records, old])
    by_age, by_bytes = store.retain(conn, oldest=now - 86400, max_bytes=12_000)
    assert by_age == 1
    assert by_bytes == 8 and store.snapshot_total(conn) == 12_000
    kept = sorted(r["started_at"] for r in store.list(conn, limit=100)[0])
    assert kept == sorted(r.started_at for r in records)[8:]  # the 8 oldest went
    assert store.counts(conn, None, None, None) == direct_counts(conn)


def test_writer_batches_encodes_snapshots_and_writes_the_queue_on_close(tmp_path: Path) -> None:
    m = Metrics()
    w = writer(tmp_path, m, batch=7)
    w.start()
    for i in range(50):
        assert w.put(Pending(rec(i, 1000.0 + i), look(seed=i) if i % 2 else None))
    w.close()
    assert w.written == 50 and w.dropped == 0
    assert value(m, "streamer_events_written_total") == 50
    conn = Database("", tmp_path).connect()
    store = EventStore(Database("", tmp_path))
    row = store.list(conn, limit=1)[0][0]
    assert row["track"] == 49 and row["snapshot"] and row["box"] == [10, 20, 60, 80]
    face = store.snapshot(conn, row["id"], "face")
    assert face[:3] == b"\xff\xd8\xff"  # a JPEG
    assert value(m, "streamer_event_snapshot_bytes") == store.snapshot_total(conn) > 0


def test_a_corrupt_database_is_counted_logged_once_and_what_waited_is_written_once_fixed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    path = tmp_path / DB_FILE
    path.write_bytes(b"this is not a database, it is garbage" * 300)
    m = Metrics()
    w = writer(tmp_path, m)
    w.start()
    for i in range(5):
        w.put(Pending(rec(i, 2000.0 + i)))
    wait(lambda: value(m, "streamer_event_store_errors_total") >= 2, "a retried failing write")
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "cannot write" in errors[0].getMessage(), [r.getMessage() for r in errors]
    assert w.written == 0 and w.failing
    path.unlink()  # the operator moves the broken file away
    wait(lambda: w.written == 5, "the waiting records written", timeout=60)
    w.close()
    assert w.dropped == 0 and "writing again" in caplog.text
    assert EventStore(Database("", tmp_path)).count(Database("", tmp_path).connect()) == 5


class FullDisk(Database):
    """The real SQLite engine with a cap on the file's pages: writes past it fail as on a full
    disk (SQLITE_FULL, "database or disk is full")."""

    pages = 40

    def connect(self):
        conn = super().connect()
        conn.execute(f"PRAGMA max_page_count = {self.pages}")
        return conn


def test_a_full_disk_never_blocks_put_and_drops_are_counted_beyond_the_queue(tmp_path: Path) -> None:
    m = Metrics()
    db = FullDisk("", tmp_path)
    w = writer(tmp_path, m, db=db, queue=20, batch=5)
    w.start()
    t0 = time.perf_counter()
    big = [Pending(rec(i, 3000.0 + i), look(seed=i)) for i in range(200)]
    accepted = sum(w.put(p) for p in big)
    assert time.perf_counter() - t0 < 1.0  # (generous: 200 puts; the point is that none waits on I/O)
    wait(lambda: value(m, "streamer_event_store_errors_total") >= 1, "the full disk to show")
    written = w.written
    assert written < 200 and w.failing
    wait(lambda: w.q.qsize() == 0 or w.dropped > 0, "the writer to take what waited")
    # every record is written, waiting, or counted as dropped: none silently lost
    assert accepted + (200 - accepted) == 200 and w.dropped >= 200 - accepted
    db.pages = 100_000  # space again
    wait(lambda: not w.failing, "the writer to recover", timeout=60)
    w.close()
    assert w.written + w.dropped == 200, (w.written, w.dropped)
    assert value(m, "streamer_event_sink_dropped_total", sink="store") == w.dropped


def test_a_locked_database_delays_only_the_writer(tmp_path: Path) -> None:
    m = Metrics()
    w = writer(tmp_path, m)
    w.start()
    w.put(Pending(rec(0, 100.0)))
    wait(lambda: w.written == 1, "the first record")
    other = sqlite3.connect(tmp_path / DB_FILE, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN EXCLUSIVE")  # another process holds the database
    released = threading.Timer(1.0, lambda: other.execute("COMMIT"))
    released.start()
    for i in range(1, 4):
        assert w.put(Pending(rec(i, 100.0 + i)))  # returns at once
    wait(lambda: w.written == 4, "the records, once the lock is gone", timeout=60)
    released.join()
    w.close()
    assert w.dropped == 0


def test_a_label_under_two_classifiers_lists_each_event_once_across_pages(tmp_path: Path) -> None:
    db = Database("", tmp_path)
    conn = db.connect()
    db.migrate(conn)
    store = EventStore(db)
    records = []
    for i in range(7):
        r = rec(i, 100.0 + i)
        r.labels = {
            "gender": {"label": "?", "p": 0.5},
            "beard": {"label": "?" if i % 2 else "beard", "p": 0.5},
        }
        records.append(r)
    store.write(conn, records)
    seen, cursor = [], None
    while True:
        rows, cursor = store.list(conn, label="?", limit=2, cursor=cursor)
        seen += [r["track"] for r in rows]
        if cursor is None:
            break
    assert seen == [6, 5, 4, 3, 2, 1, 0]
    assert [r["track"] for r in store.list(conn, label="beard:?", stream="cam")[0]] == [5, 3, 1]
    hours = store.counts(conn, None, None, None)
    assert hours[0]["tracks"] == 7 and hours[0]["labels"] == {"gender:?": 7, "beard:?": 3, "beard:beard": 4}


def test_the_writer_enforces_retention_in_the_background(tmp_path: Path) -> None:
    m = Metrics()
    w = writer(tmp_path, m, max_snapshot_mb=0.05, retention_interval_s=0.1)  # ~52 KB of snapshots
    w.start()
    now = time.time()
    for i in range(30):
        w.put(Pending(rec(i, now - 3000 + i * 60), look(seed=i)))
    wait(lambda: w.written == 30, "the records written")
    store = EventStore(Database("", tmp_path))
    conn = Database("", tmp_path).connect()
    wait(lambda: 0 < store.snapshot_total(conn) <= 0.05 * 2**20, "retention to run")
    wait(lambda: value(m, "streamer_event_snapshot_bytes") == store.snapshot_total(conn), "the gauge exact")
    w.close()
    tracks = sorted(r["track"] for r in store.list(conn, limit=100)[0])
    assert tracks == list(range(30 - len(tracks), 30)) and len(tracks) < 30  # the newest kept
