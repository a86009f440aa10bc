"""The event history's reads and writes, the same SQL on SQLite and PostgreSQL (schema.py).

One row per track in ``events``; its labels also in ``event_labels`` (to filter and count by
them); its snapshot JPEGs in ``snapshots`` (a list never reads them). A track that resumes (its
face came back and was recognised) ends again under the same stream, id and start: its row is
updated (ended later, looks added, the better snapshot kept), not doubled.
"""

from __future__ import annotations

import json
import math
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
        ts, eid = float(t), int(i)
    except ValueError as e:
        raise BadCursor("bad cursor (pass back the 'next' of the previous page)") from e
    if not (math.isfinite(ts) and 0 <= eid < 2**63):
        raise BadCursor("bad cursor (pass back the 'next' of the previous page)")
    return ts, eid


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
        hour = int(key[2] // 3600) * 3600
        bump = {f"{c}:{lab.get('label', '?')}": 1 for c, lab in r.labels.items()}
        if row is None:
            bump[""] = 1  # (one more track that hour)
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
            q = "SELECT classifier, label FROM event_labels WHERE event_id = ?"
            for c, lab in db.execute(conn, q, (eid,)).fetchall():
                bump[f"{c}:{lab}"] = bump.get(f"{c}:{lab}", 0) - 1
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
                "INSERT INTO event_labels (event_id, stream, started_at, classifier, label, p) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (eid, r.stream, key[2], name, str(lab.get("label", "?")), float(lab.get("p", 0.0))),
            )
        if better:
            db.execute(
                conn,
                "INSERT INTO snapshots (event_id, face, thumb) VALUES (?, ?, ?)",
                (eid, r.face_jpeg, r.thumb_jpeg),
            )
        self._bump(conn, [(r.stream, hour, name, n) for name, n in bump.items() if n])

    def _bump(self, conn: Any, rows: list[tuple[str, int, str, int]]) -> None:
        """Add to the per-hour counts (``n`` < 0: take away; a count down to 0 goes)."""
        for row in rows:
            self.db.execute(
                conn,
                "INSERT INTO event_hours (stream, hour, name, n) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (stream, hour, name) DO UPDATE SET n = event_hours.n + excluded.n",
                row,
            )
        if any(n < 0 for *_, n in rows):
            self.db.execute(conn, "DELETE FROM event_hours WHERE n <= 0")

    def _forget(self, conn: Any, where: str, params: list[Any]) -> int:
        """Delete the events ``where`` says (on ``events``) and take them off the per-hour counts;
        inside the caller's transaction. How many went."""
        db, hour = self.db, self.db.dialect.hour("started_at")
        gone = db.execute(
            conn, f"SELECT stream, {hour}, '', COUNT(*) FROM events WHERE {where} GROUP BY 1, 2", params
        ).fetchall()
        q = (
            f"SELECT stream, {hour}, classifier || ':' || label, COUNT(*) FROM event_labels "
            f"WHERE event_id IN (SELECT id FROM events WHERE {where}) GROUP BY 1, 2, 3"
        )
        gone += db.execute(conn, q, params).fetchall()
        self._bump(conn, [(s, int(h), name, -int(n)) for s, h, name, n in gone])
        return db.execute(conn, f"DELETE FROM events WHERE {where}", params).rowcount

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
        """Newest first (by start); (rows, the next page's cursor or None).

        With a label, the walk is over ``event_labels``' index in the same order (its rows carry
        the event's stream and start), so a page costs about ``limit`` index steps whatever the
        label's share; an event with that label under two classifiers shows once."""
        src = "event_labels l JOIN events e ON e.id = l.event_id" if label else "events e"
        t, i = ("l.started_at", "l.event_id") if label else ("e.started_at", "e.id")
        s = "l" if label else "e"
        where, params = self._filters(stream, since, until, s)
        if person:
            where.append("e.identity = ?")
            params.append(person)
        if label and ":" in label:
            c, lab = label.split(":", 1)
            where += ["l.classifier = ?", "l.label = ?"]
            params += [c, lab]
        elif label:
            where.append("l.label = ?")
            params.append(label)
        after = decode_cursor(cursor) if cursor else None
        cols = ", ".join("e." + c.strip() for c in COLUMNS.split(","))
        rows: list[dict[str, Any]] = []
        seen: set[int] = set()
        while len(rows) <= limit:
            w, p = list(where), list(params)
            if after is not None:
                w.append(f"({t} < ? OR ({t} = ? AND {i} < ?))")
                p += [after[0], after[0], after[1]]
            q = f"SELECT {cols} FROM {src}" + (" WHERE " + " AND ".join(w) if w else "")
            want = limit + 1 - len(rows)
            q += f" ORDER BY {t} DESC, {i} DESC LIMIT ?"
            got = [_row(r) for r in self.db.execute(conn, q, [*p, want]).fetchall()]
            for r in got:
                if r["id"] not in seen:
                    seen.add(r["id"])
                    rows.append(r)
            if len(got) < want:
                break
            after = (got[-1]["started_at"], got[-1]["id"])
        nxt = encode_cursor(rows[limit - 1]) if len(rows) > limit else None
        return rows[:limit], nxt

    @staticmethod
    def _filters(
        stream: str | None, since: float | None, until: float | None, s: str = "e"
    ) -> tuple[list[str], list[Any]]:
        where: list[str] = []
        params: list[Any] = []
        if stream:
            where.append(f"{s}.stream = ?")
            params.append(stream)
        if since is not None:
            where.append(f"{s}.started_at >= ?")
            params.append(since)
        if until is not None:
            where.append(f"{s}.started_at < ?")
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
            n = self._forget(conn, "id = ?", [eid])
        return n > 0

    def counts(
        self, conn: Any, stream: str | None, since: float | None, until: float | None
    ) -> list[dict[str, Any]]:
        """Per hour (by start; whole hours: those that start in [since, until)): the tracks, and
        the tracks per classifier:label, from the per-hour counts kept as records come and go."""
        where, params = [], []
        if stream:
            where.append("stream = ?")
            params.append(stream)
        if since is not None:
            where.append("hour >= ?")
            params.append(int(since // 3600) * 3600)
        if until is not None:
            where.append("hour < ?")
            params.append(until)
        q = "SELECT hour, name, SUM(n) FROM event_hours"
        q += (" WHERE " + " AND ".join(where) if where else "") + " GROUP BY hour, name"
        hours: dict[int, dict[str, Any]] = {}
        for h, name, n in self.db.execute(conn, q, params).fetchall():
            d = hours.setdefault(int(h), {"hour": int(h), "tracks": 0, "labels": {}})
            if name:
                d["labels"][name] = int(n)
            else:
                d["tracks"] = int(n)
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
            by_age = self._forget(conn, "started_at < ?", [oldest])
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
                    by_bytes += self._forget(conn, f"id IN ({', '.join('?' * len(part))})", part)
        return max(0, by_age), by_bytes
