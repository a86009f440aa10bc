"""Where the event history lives: SQLite (the default, a file under ``store.dir``) or PostgreSQL
(``store.url``), its connections, and its schema with numbered migrations.

The schema version is a table (``schema_version``); opening a database applies the migrations it
lacks, in one transaction each, under a lock (SQLite: ``BEGIN IMMEDIATE``; PostgreSQL: an advisory
lock, so that front ends starting together do not race). A database newer than this code refuses
to open rather than be written wrongly.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

DB_FILE = "events.db"
PG_LOCK = 0x73747265  # advisory lock id for migrations ("stre")


class NewerSchema(RuntimeError):
    pass


def _v1(d: Dialect) -> list[str]:
    f, b = d.float, d.blob
    return [
        f"""CREATE TABLE events (
            id {d.serial},
            stream TEXT NOT NULL,
            track BIGINT NOT NULL,
            started_at {f} NOT NULL,
            ended_at {f} NOT NULL,
            duration_s {f} NOT NULL,
            labels TEXT NOT NULL,
            looks BIGINT NOT NULL DEFAULT 0,
            identity TEXT,
            box TEXT,
            snapshot_at {f},
            snapshot_score {f} NOT NULL DEFAULT 0,
            snapshot_bytes BIGINT NOT NULL DEFAULT 0,
            UNIQUE (stream, track, started_at))""",
        "CREATE INDEX events_started ON events (started_at, id)",
        "CREATE INDEX events_stream_started ON events (stream, started_at, id)",
        # (stream and start copied from the event: a label filter walks an index in the list's order)
        f"""CREATE TABLE event_labels (
            event_id BIGINT NOT NULL REFERENCES events (id) ON DELETE CASCADE,
            stream TEXT NOT NULL,
            started_at {f} NOT NULL,
            classifier TEXT NOT NULL,
            label TEXT NOT NULL,
            p {f} NOT NULL)""",
        "CREATE INDEX event_labels_label ON event_labels (label, started_at, event_id)",
        "CREATE INDEX event_labels_name ON event_labels (classifier, label, started_at, event_id)",
        "CREATE INDEX event_labels_stream ON event_labels (stream, label, started_at, event_id)",
        "CREATE INDEX event_labels_stream_name ON event_labels "
        "(stream, classifier, label, started_at, event_id)",
        "CREATE INDEX event_labels_event ON event_labels (event_id)",
        f"""CREATE TABLE snapshots (
            event_id BIGINT PRIMARY KEY REFERENCES events (id) ON DELETE CASCADE,
            face {b},
            thumb {b})""",
    ]


def _v2(d: Dialect) -> list[str]:
    # who: filled by a later face library; GET /events?person= filters on it
    return ["CREATE INDEX events_identity ON events (identity, started_at)"]


def _v3(d: Dialect) -> list[str]:
    # tracks and labels per stream per hour, kept as records come and go (GET /events/counts reads
    # a few hundred rows instead of aggregating every record); filled from what is there
    return [
        """CREATE TABLE event_hours (
            stream TEXT NOT NULL,
            hour BIGINT NOT NULL,
            name TEXT NOT NULL,
            n BIGINT NOT NULL,
            PRIMARY KEY (stream, hour, name))""",
        "CREATE INDEX event_hours_hour ON event_hours (hour)",
        f"INSERT INTO event_hours (stream, hour, name, n) SELECT stream, {d.hour('started_at')}, '', "
        "COUNT(*) FROM events GROUP BY 1, 2",
        f"INSERT INTO event_hours (stream, hour, name, n) SELECT stream, {d.hour('started_at')}, "
        "classifier || ':' || label, COUNT(*) FROM event_labels GROUP BY 1, 2, 3",
    ]


def _v4(d: Dialect) -> list[str]:
    from streamer.people.schema import library_tables

    return library_tables(d)  # the face library (issue #33): people, their faces, unknown clusters


def _v5(d: Dialect) -> list[str]:
    # unknown clusters are numbered by the database now (front ends sharing it): PostgreSQL's
    # sequence starts past the ids written before (SQLite's AUTOINCREMENT already does)
    if d.name != "postgresql":
        return []
    return [
        "SELECT setval(pg_get_serial_sequence('unknown_clusters', 'id'), "
        "COALESCE((SELECT MAX(id) FROM unknown_clusters), 0) + 1, false)"
    ]


MIGRATIONS = [_v1, _v2, _v3, _v4, _v5]  # version n is MIGRATIONS[n - 1]
VERSION = len(MIGRATIONS)


class Dialect:
    name = "sqlite"
    serial = "INTEGER PRIMARY KEY AUTOINCREMENT"
    float = "REAL"
    blob = "BLOB"

    def sql(self, q: str) -> str:
        return q

    def hour(self, col: str) -> str:
        return f"(CAST({col} / 3600 AS INTEGER) * 3600)"


class PgDialect(Dialect):
    name = "postgresql"
    serial = "BIGSERIAL PRIMARY KEY"
    float = "DOUBLE PRECISION"
    blob = "BYTEA"

    def sql(self, q: str) -> str:
        return q.replace("?", "%s")

    def hour(self, col: str) -> str:
        return f"(FLOOR({col} / 3600) * 3600)"


class Database:
    """Opens connections (one per thread that uses it) and migrates the schema."""

    def __init__(self, url: str = "", directory: str | Path = "data") -> None:
        self.url = url
        self.path = None if url else Path(directory) / DB_FILE
        self.dialect: Dialect = PgDialect() if url else Dialect()
        self._local = threading.local()

    @property
    def where(self) -> str:
        """For logs: the file, or the PostgreSQL host and database (no credentials)."""
        if self.path is not None:
            return str(self.path)
        from urllib.parse import urlsplit

        p = urlsplit(self.url)
        return f"postgresql://{p.hostname or ''}{':' + str(p.port) if p.port else ''}{p.path}"

    def connect(self) -> Any:
        """A new connection in autocommit mode (transactions are explicit: ``tx``)."""
        if self.path is None:
            import psycopg

            return psycopg.connect(self.url, autocommit=True, connect_timeout=5)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=5.0, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        return conn

    def local(self) -> Any:
        """This thread's connection (opened on first use, or again after ``drop_local``)."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self.connect()
        return conn

    def drop_local(self) -> None:
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    @contextlib.contextmanager
    def tx(self, conn: Any) -> Iterator[Any]:
        """One transaction: committed if the block returns, rolled back if it raises."""
        if self.path is None:
            with conn.transaction():
                yield conn
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def execute(self, conn: Any, q: str, params: tuple | list = ()) -> Any:
        return conn.execute(self.dialect.sql(q), params)

    def version(self, conn: Any) -> int:
        self.execute(conn, "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        row = self.execute(conn, "SELECT MAX(version) FROM schema_version").fetchone()
        return int(row[0] or 0)

    def migrate(self, conn: Any) -> tuple[int, int]:
        """Apply the migrations this database lacks: (version before, version now). Each step,
        and the first look at the version, is a transaction under the migration lock."""
        before: int | None = None
        while True:
            with self.tx(conn):
                if self.dialect.name == "postgresql":
                    self.execute(conn, "SELECT pg_advisory_xact_lock(?)", (PG_LOCK,))
                now = self.version(conn)  # (another front end may have migrated meanwhile)
                before = now if before is None else before
                if now > VERSION:
                    raise NewerSchema(
                        f"{self.where}: schema version {now} is newer than this code's {VERSION}"
                    )
                if now == VERSION:
                    return before, now
                for q in MIGRATIONS[now](self.dialect):
                    self.execute(conn, q)
                self.execute(conn, "INSERT INTO schema_version (version) VALUES (?)", (now + 1,))
