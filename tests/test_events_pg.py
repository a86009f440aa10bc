"""The event store on a real PostgreSQL server (a private instance on a loopback port): the same
migrations, records, queries and retention as on SQLite; two front ends sharing one history;
the service's API on it (store.url); a server that is down counted, never blocking."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator

import pytest

from streamer.history.db import EventStore
from streamer.history.schema import VERSION, Database
from streamer.history.settings import StoreConfig
from streamer.history.writer import EventWriter, Pending
from streamer.metrics import Metrics
from tests.conftest import free_port
from tests.support.event_servers import Postgres, postgres_server
from tests.test_events_store import look, rec, value, wait

pytestmark = pytest.mark.system


@pytest.fixture(scope="module")
def pg() -> Iterator[Postgres]:
    yield from postgres_server()


@pytest.fixture
def url(pg: Postgres) -> str:
    return pg.new_database(f"t_{uuid.uuid4().hex[:10]}")


def pg_writer(url: str, metrics: Metrics, **cfg: object) -> EventWriter:
    return EventWriter(EventStore(Database(url)), metrics, StoreConfig(url=url, **cfg))


def test_migrations_from_empty_concurrently_and_reopen(url: str) -> None:
    results: list[tuple[int, int]] = []
    errors: list[BaseException] = []

    def front_end() -> None:  # several front ends starting at once on one empty database
        try:
            db = Database(url)
            with db.connect() as conn:
                results.append(db.migrate(conn))
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=front_end) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert all(now == VERSION for _, now in results)
    db = Database(url)
    with db.connect() as conn:
        rows = conn.execute("SELECT version FROM schema_version ORDER BY version").fetchall()
        assert [r[0] for r in rows] == list(range(1, VERSION + 1))  # each migration applied once
        assert db.migrate(conn) == (VERSION, VERSION)
        kinds = dict(
            conn.execute(
                "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'events'"
            ).fetchall()
        )
        assert kinds["started_at"] == "double precision"  # (not float4: milliseconds since 1970 fit)


def test_records_queries_upsert_and_retention(url: str) -> None:
    m = Metrics()
    w = pg_writer(url, m, batch=4)
    w.start()
    t0 = 1_699_999_200.0 + 3000
    for i in range(12):
        w.put(Pending(rec(i, t0 + 60 * i, "male" if i % 3 else "female"), look(seed=i)))
    w.close()
    assert w.written == 12 and value(m, "streamer_events_written_total") == 12
    db = Database(url)
    store = EventStore(db)
    with db.connect() as conn:
        seen, cursor = [], None
        while True:
            rows, cursor = store.list(conn, limit=5, cursor=cursor)
            seen += [r["track"] for r in rows]
            if cursor is None:
                break
        assert seen == list(range(11, -1, -1))
        assert [r["track"] for r in store.list(conn, label="gender:female")[0]] == [9, 6, 3, 0]
        hours = store.counts(conn, "cam", None, None)
        assert [h["tracks"] for h in hours] == [10, 2] and all(h["hour"] % 3600 == 0 for h in hours)
        eid = store.list(conn, limit=1)[0][0]["id"]
        jpeg = store.snapshot(conn, eid, "face")
        assert jpeg is not None and jpeg[:3] == b"\xff\xd8\xff"
        assert store.snapshot_total(conn) == value(m, "streamer_event_snapshot_bytes") > 0

        again = rec(11, t0 + 660, "female", dur=99.0)  # the track resumed and ended again
        store.write(conn, [again])
        assert store.count(conn) == 12 and store.get(conn, eid)["duration_s"] == 99.0
        assert store.snapshot(conn, eid, "face") == jpeg  # (no better look came with it)

        per = store.snapshot_total(conn) // 12
        by_age, by_bytes = store.retain(conn, oldest=t0 + 60, max_bytes=per * 6 + per // 2)
        assert by_age == 1 and by_bytes >= 5
        left = sorted(r["track"] for r in store.list(conn)[0])
        assert left == list(range(12 - len(left), 12))  # the oldest went first
        assert store.delete(conn, eid) and store.get(conn, eid) is None
        assert conn.execute("SELECT COUNT(*) FROM snapshots WHERE event_id = %s", (eid,)).fetchone()[0] == 0


def test_two_front_ends_share_one_history(url: str) -> None:
    writers = [pg_writer(url, Metrics()) for _ in range(2)]
    for w in writers:
        w.start()
    for i in range(10):
        for n, w in enumerate(writers):
            w.put(Pending(rec(i, 100.0 + i, stream=f"front{n}")))
    for w in writers:
        w.close()
    db = Database(url)
    with db.connect() as conn:
        rows, _ = EventStore(db).list(conn, limit=100)
    assert {r["stream"] for r in rows} == {"front0", "front1"} and len(rows) == 20


def test_a_server_that_is_down_is_counted_and_never_blocks(caplog: pytest.LogCaptureFixture) -> None:
    m = Metrics()
    url = f"postgresql://streamer:s3cretpw@127.0.0.1:{free_port()}/none"  # nothing listens there
    w = pg_writer(url, m)
    w.start()
    t0 = time.perf_counter()
    for i in range(5):
        assert w.put(Pending(rec(i, 10.0 + i)))
    assert time.perf_counter() - t0 < 1.0
    wait(lambda: value(m, "streamer_event_store_errors_total") >= 2, "retried connection failures")
    w.close(timeout=1.0)
    assert w.written == 0 and w.dropped == 5  # given up at shutdown: counted, and said once
    assert "s3cretpw" not in caplog.text
    assert sum("cannot write" in r.getMessage() for r in caplog.records) == 1


async def test_the_api_reads_the_history_from_postgresql(make_app, url: str) -> None:
    client = await make_app(store={"url": url})
    from streamer.web.keys import PIPELINE

    history = client.server.app[PIPELINE].history
    await client.get("/events")  # (the writer connects and migrates in its thread)
    w = history.writer
    for i in range(3):
        w.put(Pending(rec(i, time.time() - 100 + i, stream="door"), look(seed=i)))
    wait(lambda: w.written == 3, "the records written")
    r = await client.get("/events?stream=door&limit=2")
    body = await r.json()
    assert r.status == 200 and [e["track"] for e in body["events"]] == [2, 1] and body["next"]
    r = await client.get(f"/events?stream=door&cursor={body['next']}")
    assert [e["track"] for e in (await r.json())["events"]] == [0]
    r = await client.get(body["events"][0]["snapshot_url"])
    assert r.status == 200 and (await r.read())[:3] == b"\xff\xd8\xff"
    counts = await (await client.get("/events/counts?stream=door")).json()
    assert sum(h["tracks"] for h in counts["hours"]) == 3


def test_a_server_that_restarts_is_written_to_again_on_a_new_connection(
    caplog: pytest.LogCaptureFixture,
) -> None:
    pg = Postgres()
    pg.start()  # (its own server: this one is stopped mid-test)
    try:
        url = pg.new_database("restarts")
        m = Metrics()
        w = pg_writer(url, m)
        w.start()
        w.put(Pending(rec(0, 10.0)))
        wait(lambda: w.written == 1, "the first record")
        pg.halt()
        for i in range(1, 6):
            assert w.put(Pending(rec(i, 10.0 + i)))
        wait(lambda: value(m, "streamer_event_store_errors_total") >= 1, "the failure noticed")
        pg.run()
        wait(lambda: w.written == 6, "the waiting records written after the restart", timeout=60)
        w.close()
        assert w.dropped == 0 and sum("cannot write" in r.getMessage() for r in caplog.records) == 1
        db = Database(url)
        with db.connect() as conn:
            assert EventStore(db).count(conn) == 6
    finally:
        pg.stop()
