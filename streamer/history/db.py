"""The event history's reads and writes, the same SQL on SQLite and PostgreSQL (schema.py).

One row per track in ``events``; its labels also in ``event_labels`` (to filter and count by
them); its snapshot JPEGs in ``snapshots`` (a list never reads them). A track that resumes (its
face came back and was recognised) ends again under the same stream, id and start: its row is
updated (ended later, looks added, the better snapshot kept), not doubled.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from streamer.history.schema import Database

COLUMNS = (
    "id, stream, track, started_at, ended_at, duration_s, labels, looks, identity, box, "
    "snapshot_at, snapshot_bytes"
)


class BadCursor(ValueError):
    pass


@dataclass
class Record:
    stream: str
    track: int
    started_at: float
    ended_at: float
    duration_s: float
    labels: dict[str, dict[str, Any]]  # classifier -> {"label", "p"}
    looks: int = 0
    identity: str | None = None
    box: tuple[int, int, int, int] | None = None
    snapshot_at: float | None = None
    score: float = 0.0
    face_jpeg: bytes | None = None
    thumb_jpeg: bytes | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def snapshot_bytes(self) -> int:
        return len(self.face_jpeg or b"") + len(self.thumb_jpeg or b"")


def _row(r: tuple) -> dict[str, Any]:
    d = dict(zip([c.strip() for c in COLUMNS.split(",")], r, strict=True))
    d["labels"] = json.loads(d["labels"])
    d["box"] = json.loads(d["box"]) if d["box"] else None
    d["snapshot"] = bool(d.pop("snapshot_bytes"))
    return d


def encode_cursor(row: dict[str, Any]) -> str:
    return f"{row['started_at']!r}_{row['id']}"


def decode_cursor(cursor: str) -> tuple[float, int]:
    try:
        t, i = cursor.split("_", 1)
        return float(t), int(i)
    except ValueError as e:
        raise BadCursor("bad cursor (pass back the 'next' of the previous page)") from e


class EventStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- writes (the writer thread) ------------------------------------------------------------
    def write(self, conn: Any, records: list[Record]) -> None:
        """All of ``records`` in one transaction."""
        db = self.db
        with db.tx(conn):
            for r in records:
                self._write_one(conn, r)

    def _write_one(self, conn: Any, r: Record) -> None:
        db = self.db
        labels = json.dumps(r.labels, separators=(",", ":"))
        box = json.dumps(list(r.box)) if r.box else None
        key = (r.stream, r.track, round(r.started_at, 3))
        row = db.execute(
            conn,
            "SELECT id, snapshot_score FROM events WHERE stream = ? AND track = ? AND started_at = ?",
            key,
        ).fetchone()
        better = r.snapshot_bytes > 0
        if row is None:
            q = (
                "INSERT INTO events (stream, track, started_at, ended_at, duration_s, labels, looks, "
                "identity, box, snapshot_at, snapshot_score, snapshot_bytes) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            )
            params = (
                *key,
                r.ended_at,
                r.duration_s,
                labels,
                r.looks,
                r.identity,
                box,
                r.snapshot_at,
                r.score,
                r.snapshot_bytes,
            )
            if db.dialect.name == "postgresql":
                eid = db.execute(conn, q + " RETURNING id", params).fetchone()[0]
            else:
                eid = db.execute(conn, q, params).lastrowid
        else:
            eid, old_score = row
            better = better and r.score > float(old_score)
            db.execute(
                conn,
                "UPDATE events SET ended_at = ?, duration_s = ?, labels = ?, looks = looks + ?, "
                "identity = COALESCE(?, identity) WHERE id = ?",
                (r.ended_at, r.duration_s, labels, r.looks, r.identity, eid),
            )
            db.execute(conn, "DELETE FROM event_labels WHERE event_id = ?", (eid,))
            if better:
                db.execute(conn, "DELETE FROM snapshots WHERE event_id = ?", (eid,))
                db.execute(
                    conn,
                    "UPDATE events SET box = ?, snapshot_at = ?, snapshot_score = ?, snapshot_bytes = ? "
                    "WHERE id = ?",
                    (box, r.snapshot_at, r.score, r.snapshot_bytes, eid),
                )
        for name, lab in r.labels.items():
            db.execute(
                conn,
                "INSERT INTO event_labels (event_id, classifier, label, p) VALUES (?, ?, ?, ?)",
                (eid, name, str(lab.get("label", "?")), float(lab.get("p", 0.0))),
            )
        if better:
            db.execute(
                conn,
                "INSERT INTO snapshots (event_id, face, thumb) VALUES (?, ?, ?)",
                (eid, r.face_jpeg, r.thumb_jpeg),
            )

    # -- reads (any thread, its own connection) --------------------------------------------------
    def list(
        self,
        conn: Any,
        stream: str | None = None,
        label: str | None = None,
        person: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Newest first (by start); (rows, the next page's cursor or None)."""
        where, params = self._filters(stream, since, until)
        if person:
            where.append("e.identity = ?")
            params.append(person)
        if label:
            if ":" in label:
                c, lab = label.split(":", 1)
                where.append("e.id IN (SELECT event_id FROM event_labels WHERE classifier = ? AND label = ?)")
                params += [c, lab]
            else:
                where.append("e.id IN (SELECT event_id FROM event_labels WHERE label = ?)")
                params.append(label)
        if cursor:
            t, i = decode_cursor(cursor)
            where.append("(e.started_at < ? OR (e.started_at = ? AND e.id < ?))")
            params += [t, t, i]
        cols = ", ".join("e." + c.strip() for c in COLUMNS.split(","))
        q = f"SELECT {cols} FROM events e"
        if where:
            q += " WHERE " + " AND ".join(where)
        q += " ORDER BY e.started_at DESC, e.id DESC LIMIT ?"
        rows = [_row(r) for r in self.db.execute(conn, q, [*params, limit + 1]).fetchall()]
        nxt = encode_cursor(rows[limit - 1]) if len(rows) > limit else None
        return rows[:limit], nxt

    @staticmethod
    def _filters(stream: str | None, since: float | None, until: float | None) -> tuple[list[str], list[Any]]:
        where: list[str] = []
        params: list[Any] = []
        if stream:
            where.append("e.stream = ?")
            params.append(stream)
        if since is not None:
            where.append("e.started_at >= ?")
            params.append(since)
        if until is not None:
            where.append("e.started_at < ?")
            params.append(until)
        return where, params

    def get(self, conn: Any, eid: int) -> dict[str, Any] | None:
        r = self.db.execute(conn, f"SELECT {COLUMNS} FROM events WHERE id = ?", (eid,)).fetchone()
        return _row(r) if r else None

    def snapshot(self, conn: Any, eid: int, which: str) -> bytes | None:
        col = {"face": "face", "thumb": "thumb"}[which]
        r = self.db.execute(conn, f"SELECT {col} FROM snapshots WHERE event_id = ?", (eid,)).fetchone()
        return bytes(r[0]) if r and r[0] is not None else None

    def delete(self, conn: Any, eid: int) -> bool:
        with self.db.tx(conn):
            n = self.db.execute(conn, "DELETE FROM events WHERE id = ?", (eid,)).rowcount
        return n > 0

    def counts(
        self, conn: Any, stream: str | None, since: float | None, until: float | None
    ) -> list[dict[str, Any]]:
        """Per hour (by start): the tracks, and the tracks per classifier:label."""
        where, params = self._filters(stream, since, until)
        w = (" WHERE " + " AND ".join(where)) if where else ""
        hour = self.db.dialect.hour("e.started_at")
        hours: dict[int, dict[str, Any]] = {}
        q = f"SELECT {hour} AS h, COUNT(*) FROM events e{w} GROUP BY h ORDER BY h"
        for h, n in self.db.execute(conn, q, params).fetchall():
            hours[int(h)] = {"hour": int(h), "tracks": int(n), "labels": {}}
        q = (
            f"SELECT {hour} AS h, l.classifier, l.label, COUNT(*) FROM events e "
            f"JOIN event_labels l ON l.event_id = e.id{w} GROUP BY h, l.classifier, l.label"
        )
        for h, c, lab, n in self.db.execute(conn, q, params).fetchall():
            hours[int(h)]["labels"][f"{c}:{lab}"] = int(n)
        return [hours[h] for h in sorted(hours)]

    # -- retention (the writer thread) -----------------------------------------------------------
    def snapshot_total(self, conn: Any) -> int:
        return int(self.db.execute(conn, "SELECT COALESCE(SUM(snapshot_bytes), 0) FROM events").fetchone()[0])

    def count(self, conn: Any) -> int:
        return int(self.db.execute(conn, "SELECT COUNT(*) FROM events").fetchone()[0])

    def retain(self, conn: Any, oldest: float, max_bytes: int, chunk: int = 500) -> tuple[int, int]:
        """Delete records started before ``oldest``, then the oldest ones until the snapshots
        take at most ``max_bytes``: (deleted for age, deleted for bytes)."""
        db = self.db
        with db.tx(conn):
            by_age = db.execute(conn, "DELETE FROM events WHERE started_at < ?", (oldest,)).rowcount
        by_bytes = 0
        excess = self.snapshot_total(conn) - max_bytes
        while excess > 0:
            rows = db.execute(
                conn,
                "SELECT id, snapshot_bytes FROM events ORDER BY started_at, id LIMIT ?",
                (chunk,),
            ).fetchall()
            if not rows:
                break
            ids = []
            for eid, n in rows:
                if excess <= 0:
                    break
                ids.append(eid)
                excess -= int(n)
            with db.tx(conn):
                for i in range(0, len(ids), 200):
                    part = ids[i : i + 200]
                    q = f"DELETE FROM events WHERE id IN ({', '.join('?' * len(part))})"
                    by_bytes += db.execute(conn, q, part).rowcount
        return max(0, by_age), by_bytes
