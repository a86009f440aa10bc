"""The store's writer thread: records in through a bounded queue, written in batches, off the loop.

``put`` never waits: a full queue drops the record and counts it
(``streamer_event_sink_dropped_total{sink="store"}``). The thread encodes each record's snapshot
(JPEG) and writes up to ``batch`` records per transaction. A failing database (disk full, locked,
corrupt, PostgreSQL down) is counted per try (``streamer_event_store_errors_total``) and logged
once, when it starts failing, and once when it recovers; meanwhile the records wait (one batch in
the thread, the rest in the queue: once it is full, new records are dropped and counted) and the
write is retried with a growing pause, on a new connection. Retention runs here too, every
``retention_interval_s``. ``close`` writes what is queued (trying for up to ``timeout`` seconds)
before it returns.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from streamer.history.db import EventStore, Record
from streamer.history.looks import Look
from streamer.history.settings import StoreConfig
from streamer.metrics import Metrics

log = logging.getLogger(__name__)
BACKOFF_S = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0)


@dataclass
class Pending:
    record: Record
    look: Look | None = None


def jpeg(image: np.ndarray, quality: int) -> bytes:
    ok, buf = cv2.imencode(
        ".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality]
    )
    if not ok:
        raise ValueError("JPEG encoding failed")
    return buf.tobytes()


class EventWriter:
    def __init__(self, store: EventStore, metrics: Metrics, cfg: StoreConfig) -> None:
        self.store = store
        self.metrics = metrics
        self.cfg = cfg
        self.q: queue.Queue[Pending] = queue.Queue(cfg.queue)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._conn: Any = None
        self.failing = False
        self.last_error = ""
        self.written = 0
        self.dropped = 0
        self.ready = threading.Event()  # set once the database is open and migrated
        # set once the first try to open it is over, opened or not (or the writer stops): what
        # readers wait for before their first read, so a broken store does not keep them waiting
        self.tried = threading.Event()
        self._next_retention = 0.0
        self.deleted = (0, 0)  # (for age, for bytes) by the last retention

    # -- the event loop's side ------------------------------------------------------------------
    def put(self, item: Pending) -> bool:
        try:
            self.q.put_nowait(item)
            return True
        except queue.Full:
            self._drop(1)
            return False

    def _drop(self, n: int) -> None:
        self.dropped += n
        self.metrics.event_sink_dropped.labels("store").inc(n)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="event-writer", daemon=True)
        self._thread.start()

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued (for up to ``timeout`` s), then stop. Blocking: call it off the loop."""
        if self.failing:  # (already failing: a short last try, not a long wait at shutdown)
            timeout = min(timeout, 2.0)
        self._deadline = time.monotonic() + timeout
        self._stop.set()
        self.tried.set()
        if self._thread is not None:
            self._thread.join(timeout + 5.0)

    # -- the thread -------------------------------------------------------------------------------
    def _run(self) -> None:
        pending: list[Record] = []
        tries = 0
        while True:
            stopping = self._stop.is_set()
            if not pending or stopping:
                pending += self._take(len(pending), 0.0 if (pending or stopping) else 0.5)
            if pending:
                if self._write(pending[: self.cfg.batch]):
                    del pending[: self.cfg.batch]
                    tries = 0
                    continue
                tries += 1
                if stopping and time.monotonic() >= self._deadline:
                    self._lost(len(pending) + self.q.qsize())
                    break
                pause = BACKOFF_S[min(tries - 1, len(BACKOFF_S) - 1)]
                self._stop.wait(pause) if not stopping else time.sleep(min(pause, 0.5))
                continue
            if stopping:
                break
            self._maybe_retain()
        self._close_conn()

    def _take(self, have: int, wait: float) -> list[Record]:
        """Up to a batch of new records (encoded), waiting ``wait`` s for the first; beyond the
        queue's size in all, the oldest waiting are dropped (counted)."""
        out: list[Pending] = []
        try:
            out.append(self.q.get(timeout=wait) if wait > 0 else self.q.get_nowait())
            while len(out) < self.cfg.batch:
                out.append(self.q.get_nowait())
        except queue.Empty:
            pass
        over = have + len(out) - self.cfg.queue
        if over > 0:
            self._drop(over)
            out = out[over:]
        return [self._encode(p) for p in out]

    def _encode(self, p: Pending) -> Record:
        r, look = p.record, p.look
        if look is not None:
            try:
                r.face_jpeg = jpeg(look.face, self.cfg.jpeg_quality)
                r.thumb_jpeg = jpeg(look.thumb, self.cfg.jpeg_quality)
                r.box, r.snapshot_at, r.score = look.box, look.time, look.score
            except Exception:  # (a record without a snapshot is still worth keeping)
                log.exception("event snapshot could not be encoded")
        return r

    def _connection(self) -> Any:
        if self._conn is None:
            db = self.store.db
            conn = db.connect()
            try:
                before, now = db.migrate(conn)
            except BaseException:
                conn.close()
                raise
            if before != now:
                log.info("event store %s: schema migrated from version %d to %d", db.where, before, now)
            self._conn = conn
            if not self.ready.is_set():
                self._retain(conn)
            self.ready.set()
            self.tried.set()
        return self._conn

    def _close_conn(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    def _write(self, batch: list[Record]) -> bool:
        try:
            conn = self._connection()
            self.store.write(conn, batch)
        except Exception as e:
            self._failed(e)
            return False
        self.written += len(batch)
        self.metrics.events_written.inc(len(batch))
        self.metrics.event_snapshot_bytes.inc(sum(r.snapshot_bytes for r in batch))
        if self.failing:
            self.failing = False
            log.warning("event store %s: writing again (%d records written)", self.store.db.where, len(batch))
        return True

    def _failed(self, e: BaseException) -> None:
        self.tried.set()
        self.metrics.event_store_errors.inc()
        self.last_error = f"{type(e).__name__}: {e}"
        if not self.failing:
            self.failing = True
            log.error(
                "event store %s: cannot write (%s); records wait (up to %d) and the write is retried; "
                "video is not affected",
                self.store.db.where,
                self.last_error.splitlines()[0][:300],
                self.cfg.queue,
            )
        self._close_conn()

    def _lost(self, n: int) -> None:
        if n:
            self._drop(n)
            log.error(
                "event store %s: %d records not written at shutdown (%s)",
                self.store.db.where,
                n,
                self.last_error,
            )

    def _maybe_retain(self) -> None:
        if time.monotonic() < self._next_retention:
            return
        try:
            self._retain(self._connection())
        except Exception as e:
            self._failed(e)
            self._next_retention = time.monotonic() + BACKOFF_S[-1]

    def _retain(self, conn: Any) -> None:
        cfg = self.cfg
        self._next_retention = time.monotonic() + cfg.retention_interval_s
        oldest = time.time() - cfg.max_age_days * 86400.0
        self.deleted = self.store.retain(conn, oldest, int(cfg.max_snapshot_mb * 1024 * 1024))
        if any(self.deleted):
            log.info("event store: retention deleted %d records (age) and %d (snapshot bytes)", *self.deleted)
        self.metrics.event_snapshot_bytes.set(self.store.snapshot_total(conn))
