"""The face library's reads and writes (tables: people/schema.py), the same SQL on SQLite and
PostgreSQL. Calls take the caller's connection (a reader thread's, History.read)."""

from __future__ import annotations

import time
from typing import Any

import cv2
import numpy as np

from streamer.history.schema import Database
from streamer.people.match import Backend, Cohort, Gallery

MAX_NAME = 100


def check_name(name: str) -> str:
    """A person's name: 1-100 printable characters, trimmed; ValueError otherwise."""
    n = name.strip()
    if not n or len(n) > MAX_NAME or not n.isprintable() or n.lower() in ("unknown", "?"):
        raise ValueError("a name is 1-100 printable characters, not 'unknown' or '?'")
    return n


def to_bytes(d: np.ndarray) -> bytes:
    return np.asarray(d, "<f4").reshape(128).tobytes()


def from_bytes(b: bytes) -> np.ndarray:
    return np.frombuffer(bytes(b), "<f4").astype(np.float32)


def jpeg(rgb: np.ndarray | None, quality: int = 85) -> bytes | None:
    if rgb is None or rgb.size == 0:
        return None
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    return buf.tobytes() if ok else None


class Library:
    def __init__(self, db: Database) -> None:
        self.db = db

    def _q(self, conn: Any, q: str, params: tuple | list = ()) -> Any:
        return self.db.execute(conn, q, params)

    def _insert(self, conn: Any, q: str, params: tuple) -> int:
        if self.db.dialect.name == "postgresql":
            return int(self._q(conn, q + " RETURNING id", params).fetchone()[0])
        return int(self._q(conn, q, params).lastrowid)

    def _person(self, conn: Any, name: str, create: bool) -> int | None:
        row = self._q(conn, "SELECT id FROM people WHERE name = ?", (name,)).fetchone()
        if row is not None or not create:
            return int(row[0]) if row else None
        return self._insert(conn, "INSERT INTO people (name, created_at) VALUES (?, ?)", (name, time.time()))

    # -- writes ----------------------------------------------------------------------------------
    def add_faces(
        self,
        conn: Any,
        name: str,
        faces: list[tuple[np.ndarray, bytes | None]],
        source: str,
        event_id: int | None = None,
        negative: bool = False,
    ) -> list[int]:
        """Enroll descriptors (with their JPEG crops) under ``name`` (created if new): their ids."""
        name = check_name(name)
        with self.db.tx(conn):
            pid = self._person(conn, name, True)
            return [
                self._insert(
                    conn,
                    "INSERT INTO person_faces (person_id, negative, descriptor, crop, source, event_id, "
                    "created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (pid, int(negative), to_bytes(d), crop, source, event_id, time.time()),
                )
                for d, crop in faces
            ]

    def remove_face(self, conn: Any, name: str, face_id: int) -> bool:
        with self.db.tx(conn):
            n = self._q(
                conn,
                "DELETE FROM person_faces WHERE id = ? AND person_id IN "
                "(SELECT id FROM people WHERE name = ?)",
                (face_id, name),
            ).rowcount
        return n > 0

    def remove_person(self, conn: Any, name: str) -> bool:
        with self.db.tx(conn):
            n = self._q(conn, "DELETE FROM people WHERE name = ?", (name,)).rowcount
        return n > 0

    # -- reads -----------------------------------------------------------------------------------
    def people(self, conn: Any) -> list[dict[str, Any]]:
        rows = self._q(
            conn,
            "SELECT p.id, p.name, p.created_at, f.id, f.negative, f.source, f.event_id, f.created_at "
            "FROM people p LEFT JOIN person_faces f ON f.person_id = p.id ORDER BY p.name, f.id",
        ).fetchall()
        out: dict[int, dict[str, Any]] = {}
        for pid, name, created, fid, neg, source, eid, fcreated in rows:
            p = out.setdefault(pid, {"name": name, "created_at": created, "faces": [], "negatives": []})
            if fid is not None:
                face = {"id": int(fid), "source": source, "event_id": eid, "created_at": fcreated}
                (p["negatives"] if neg else p["faces"]).append(face)
        return list(out.values())

    def person(self, conn: Any, name: str) -> dict[str, Any] | None:
        return next((p for p in self.people(conn) if p["name"] == name), None)

    def crop(self, conn: Any, name: str, face_id: int) -> bytes | None:
        r = self._q(
            conn,
            "SELECT f.crop FROM person_faces f JOIN people p ON p.id = f.person_id "
            "WHERE f.id = ? AND p.name = ?",
            (face_id, name),
        ).fetchone()
        return bytes(r[0]) if r and r[0] is not None else None

    def gallery(self, conn: Any, cohort: Cohort | None = None, backend: Backend | None = None) -> Gallery:
        rows = self._q(
            conn,
            "SELECT p.name, f.negative, f.descriptor FROM person_faces f JOIN people p ON p.id = f.person_id",
        ).fetchall()
        pos = [(n, from_bytes(d)) for n, neg, d in rows if not neg]
        neg = [(n, from_bytes(d)) for n, neg, d in rows if neg]
        return Gallery(pos, neg, cohort, backend)

    def signature(self, conn: Any) -> tuple:
        """Changes whenever a face is enrolled or removed (here or by another process): a cheap
        check before reading the whole gallery again."""
        return tuple(self._q(conn, "SELECT COUNT(*), MAX(id), SUM(id) FROM person_faces").fetchone())
