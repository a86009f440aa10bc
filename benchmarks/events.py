"""The event history's costs, on synthetic events (a real SQLite file, or PostgreSQL with --db):

1. ``GET /events`` through the real handlers (aiohttp, reader threads) with N events stored
   (default 100,000): p50/p95 per query shape (first page, by stream, by label, a time range, a
   page deep behind a cursor, counts per hour). Goal: p95 <= 50 ms.
2. Whether 8 streams' events for 24 h fit the default retention: the snapshot bytes per event
   measured on faces of the demo clip (the detector finds them; the store's crop, thumbnail and
   JPEG quality), the row bytes measured on the N-event database, at stated rates.
3. Whether writing delays the event loop: p99 of a 5 ms ticker's lateness while events with
   snapshots (real JPEG encoding, real writes) stream through the history, against none.

    python -m benchmarks events [--events 100000] [--quick] [--db postgresql://...] [--out DIR]

Writes events-<machine>.json and .md into benchmarks/results (or --out DIR); prints the Markdown.
"""

from __future__ import annotations

import asyncio
import platform
import statistics
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import cv2
import numpy as np

from benchmarks.report import output_args, parser, run_record, save
from streamer.config import DEMO_VIDEO, load_config
from streamer.history.db import EventStore, Record
from streamer.history.looks import Look, face_crop, score_look, thumbnail
from streamer.history.schema import DB_FILE, Database
from streamer.history.service import History
from streamer.history.writer import jpeg
from streamer.metrics import Metrics

GOAL_P95_MS = 50.0
STREAMS = 8
# tracks (people) per stream per hour, averaged over 24 h: "typical" an office or shop entrance;
# "busy" a street camera that sees someone new every 6 s all day and night
RATES = {"typical": 120, "busy": 600}
LABELS = [("gender", ("male", "female", "?")), ("beard", ("beard", "shaved", "?"))]


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, round(q / 100 * (len(s) - 1)))]


def demo_looks(n: int = 8) -> list[Look]:
    """Best-look candidates from the demo clip: the detector's faces, cut as the store cuts them."""
    from streamer.detect import make_detector

    cap = cv2.VideoCapture(str(DEMO_VIDEO))
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    det = make_detector("mmod")
    looks = []
    for k in range(n):
        cap.set(cv2.CAP_PROP_POS_FRAMES, int((k + 0.5) * total / n))
        ok, bgr = cap.read()
        if not ok:
            continue
        rgb = np.ascontiguousarray(bgr[:, :, ::-1])
        for b in det.detect([rgb], 1)[0]:
            box = (b.left, b.top, b.right, b.bottom)
            looks.append(
                Look(score_look(rgb, box), face_crop(rgb, box, 160), thumbnail(rgb, box, 256), box, 0.0)
            )
    return looks


def synth(i: int, n: int, t0: float, span: float, rng: np.random.Generator) -> Record:
    labels = {c: {"label": str(rng.choice(v)), "p": round(float(rng.uniform(0.5, 1)), 3)} for c, v in LABELS}
    start = t0 + (i / n) * span
    d = float(rng.exponential(8.0)) + 0.5
    return Record(
        f"cam{i % STREAMS}", i, round(start, 3), round(start + d, 3), round(d, 3), labels, int(d * 3)
    )


def fill(db: Database, n: int, snapshot: bytes) -> float:
    """n events over the last 24 h; returns seconds taken."""
    store = EventStore(db)
    conn = db.connect()
    db.migrate(conn)
    rng = np.random.default_rng(0)
    t0 = time.time() - 86400.0
    t = time.perf_counter()
    batch = []
    for i in range(n):
        r = synth(i, n, t0, 86400.0, rng)
        r.face_jpeg, r.thumb_jpeg, r.score = snapshot, snapshot, 1.0
        batch.append(r)
        if len(batch) == 2000:
            store.write(conn, batch)
            batch = []
    if batch:
        store.write(conn, batch)
    conn.close()
    return time.perf_counter() - t


async def query_latency(history: History, n_requests: int) -> dict[str, dict[str, float]]:
    from aiohttp import web
    from aiohttp.test_utils import TestClient, TestServer

    from streamer.web.events_api import add_event_routes
    from streamer.web.keys import METRICS, PIPELINE

    app = web.Application()
    app[PIPELINE] = SimpleNamespace(history=history)  # type: ignore[assignment]
    app[METRICS] = history.metrics
    add_event_routes(app)
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    now = time.time()
    r = await client.get("/events?limit=50")
    cursor = (await r.json())["next"]
    for _ in range(49):  # 50 pages in: the 2,500th newest (or the last page of a small store)
        r = await client.get(f"/events?limit=50&cursor={cursor}")
        nxt = (await r.json())["next"]
        if nxt is None:
            break
        cursor = nxt
    shapes = {
        "first page (50)": "/events?limit=50",
        "stream=cam3": "/events?stream=cam3&limit=50",
        "label=female": "/events?label=female&limit=50",
        "stream+label gender:male": "/events?stream=cam5&label=gender:male&limit=50",
        "since/until (1 h)": f"/events?since={now - 7200}&until={now - 3600}&limit=50",
        "page 51 (cursor)": f"/events?limit=50&cursor={cursor}",
        "counts, 24 h, one stream": "/events/counts?stream=cam1",
        "counts, 24 h, all": "/events/counts",
    }
    out = {}
    for name, path in shapes.items():
        times = []
        for _ in range(n_requests):
            t = time.perf_counter()
            r = await client.get(path)
            await r.read()
            times.append((time.perf_counter() - t) * 1000)
            assert r.status == 200, (path, r.status)
        out[name] = {"p50_ms": round(pct(times, 50), 2), "p95_ms": round(pct(times, 95), 2)}
    await client.close()
    return out


async def loop_delay(
    store_dir: Path | None, looks: list[Look], seconds: float, rate: float
) -> dict[str, float]:
    """p50/p99 lateness of a 5 ms ticker while ``rate`` tracks a second end (with snapshots)."""
    overrides: dict[str, Any] = {"store": {"dir": str(store_dir)} if store_dir else {"enabled": False}}
    history = History(load_config(None, overrides, environ={}), Metrics())
    history.start()
    hub = SimpleNamespace(sinks=[])
    fake = SimpleNamespace(id="bench", events=hub, stage=SimpleNamespace(looks=None))
    history.attach(fake)
    if fake.stage.looks is not None:  # each track's best look: one of the demo clip's faces
        fake.stage.looks.take = lambda track: (looks[track % len(looks)], 5)
    sink = hub.sinks[0]
    from streamer.track.tracker import TrackEvent
    from streamer.types import Box, Label

    lateness: list[float] = []
    stop = time.perf_counter() + seconds

    async def ticker() -> None:
        while time.perf_counter() < stop:
            t = time.perf_counter()
            await asyncio.sleep(0.005)
            lateness.append((time.perf_counter() - t - 0.005) * 1000)

    async def producer() -> None:
        i = 0
        box = Box(0, 0, 99, 99, 1.0)
        labels = (Label("gender", "male", 0.9),)
        while time.perf_counter() < stop:
            now = time.time()
            for kind in ("start", "end"):
                sink(TrackEvent(kind, i, now, box, labels, 3.0), {"stream": "bench", "track": i})
            i += 1
            await asyncio.sleep(1.0 / rate)

    await asyncio.gather(ticker(), producer())
    await history.close()  # (writes what is queued)
    return {
        "p50_ms": round(pct(lateness, 50), 3),
        "p99_ms": round(pct(lateness, 99), 3),
        "ticks": len(lateness),
        "records_written": history.writer.written if history.writer else 0,
    }


def main(argv: list[str] | None = None) -> int:
    ap = parser("events", __doc__)
    output_args(ap, "events")
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--requests", type=int, default=100, help="per query shape")
    ap.add_argument("--seconds", type=float, default=10.0, help="per loop-delay run")
    ap.add_argument("--rate", type=float, default=50.0, help="tracks ending per second in the loop-delay run")
    ap.add_argument("--repeats", type=int, default=3, help="loop-delay runs of each kind, alternated")
    ap.add_argument("--quick", action="store_true", help="10,000 events, 30 requests, 4 s runs, 1 repeat")
    ap.add_argument("--db", default="", help="postgresql://... instead of a temp SQLite file")
    a = ap.parse_args(argv)
    if a.quick:
        a.events, a.requests, a.seconds, a.repeats = min(a.events, 10_000), 30, 4.0, 1
    work = Path(tempfile.mkdtemp(prefix="streamer-events-bench-"))
    cfg = load_config(None, {}, environ={}).store

    looks = demo_looks()
    faces = [len(jpeg(lk.face, cfg.jpeg_quality)) for lk in looks]
    thumbs = [len(jpeg(lk.thumb, cfg.jpeg_quality)) for lk in looks]
    snap = statistics.mean(faces) + statistics.mean(thumbs)

    db = Database(a.db, work / "q")
    fill_s = fill(db, a.events, b"\xff" * 64)  # (small blobs: the list never reads them)
    row_bytes = (db.path.stat().st_size + _wal(db.path)) / a.events - 128 if db.path else None
    history = History(
        load_config(None, {"store": {"dir": str(work / "q"), "url": a.db}}, environ={}), Metrics()
    )
    queries = asyncio.run(query_latency(history, a.requests))
    asyncio.run(history.close())

    per_event = snap + (row_bytes or 600)
    fit = {}
    for name, per_hour in RATES.items():
        per_day = STREAMS * per_hour * 24
        fit[name] = {
            "tracks_per_stream_hour": per_hour,
            "events_per_day": per_day,
            "snapshot_mb_per_day": round(per_day * snap / 2**20, 1),
            "db_mb_per_day": round(per_day * per_event / 2**20, 1),
            "days_kept_by_bytes": round(cfg.max_snapshot_mb * 2**20 / (per_day * snap), 1),
            "fits_24h": per_day * snap <= cfg.max_snapshot_mb * 2**20,
        }
    runs: dict[str, list[dict[str, float]]] = {"without store": [], "with store": []}
    for k in range(a.repeats):  # alternated: the machine's other load falls on both alike
        runs["without store"].append(asyncio.run(loop_delay(None, looks, a.seconds, a.rate)))
        runs["with store"].append(asyncio.run(loop_delay(work / f"w{k}", looks, a.seconds, a.rate)))
    delays = {
        name: {
            "p50_ms": round(statistics.median(r["p50_ms"] for r in rs), 3),
            "p99_ms": round(statistics.median(r["p99_ms"] for r in rs), 3),
            "p99_ms_runs": [r["p99_ms"] for r in rs],
            "records_written": sum(r["records_written"] for r in rs),
        }
        for name, rs in runs.items()
    }
    worst = max(v["p95_ms"] for k, v in queries.items() if not k.startswith("counts"))
    result = {
        "events": a.events,
        "database": db.dialect.name,
        "machine": {"cpus": __import__("os").cpu_count(), "platform": platform.platform()},
        "fill_s": round(fill_s, 1),
        "queries": queries,
        "list_p95_worst_ms": worst,
        "goal_p95_ms": GOAL_P95_MS,
        "meets_goal": worst <= GOAL_P95_MS,
        "snapshot_bytes": {
            "face": round(statistics.mean(faces)),
            "thumb": round(statistics.mean(thumbs)),
            "faces_measured": len(faces),
        },
        "row_bytes": round(row_bytes) if row_bytes else None,
        "retention": {
            "max_snapshot_mb": cfg.max_snapshot_mb,
            "max_age_days": cfg.max_age_days,
            "streams": STREAMS,
            "rates": fit,
        },
        "loop_delay": {"tracks_per_s": a.rate, "seconds": a.seconds, **delays},
    }
    save(a, "events", {**run_record("events", argv), **result}, markdown(result))
    return 0


def _wal(path: Path) -> int:
    w = path.with_name(DB_FILE + "-wal")
    return w.stat().st_size if w.exists() else 0


def markdown(r: dict[str, Any]) -> str:
    lines = [
        f"# Event store: {r['events']:,} events on {r['database']} ({r['machine']['cpus']} CPUs)",
        "",
        f"Filled in {r['fill_s']} s. `GET /events` through the real handlers "
        f"(goal p95 <= {r['goal_p95_ms']:.0f} ms):",
        "",
        "| query | p50 ms | p95 ms |",
        "|---|---|---|",
        *(f"| {k} | {v['p50_ms']} | {v['p95_ms']} |" for k, v in r["queries"].items()),
        "",
        f"Worst list p95: {r['list_p95_worst_ms']} ms: {'meets' if r['meets_goal'] else 'MISSES'} the goal.",
        "",
        f"Snapshot per event (demo clip faces, {r['snapshot_bytes']['faces_measured']} measured): "
        f"face {r['snapshot_bytes']['face']} B + thumbnail {r['snapshot_bytes']['thumb']} B; "
        f"row and indexes ~{r['row_bytes']} B.",
        "",
        f"Default retention: {r['retention']['max_snapshot_mb']:.0f} MiB of snapshots, "
        f"{r['retention']['max_age_days']:.0f} days; {r['retention']['streams']} streams:",
        "",
        "| rate | tracks/stream/h | events/day | snapshots MiB/day | days kept | 24 h fit |",
        "|---|---|---|---|---|---|",
        *(
            f"| {k} | {v['tracks_per_stream_hour']} | {v['events_per_day']:,} | {v['snapshot_mb_per_day']} | "
            f"{v['days_kept_by_bytes']} | {'yes' if v['fits_24h'] else 'NO'} |"
            for k, v in r["retention"]["rates"].items()
        ),
        "",
        f"Event loop lateness of a 5 ms ticker, {r['loop_delay']['tracks_per_s']:.0f} tracks ending a second "
        f"with snapshots, {r['loop_delay']['seconds']:.0f} s a run (medians of alternated runs):",
        "",
        "| | p50 ms | p99 ms | p99 per run | records written |",
        "|---|---|---|---|---|",
        *(
            f"| {k} | {v['p50_ms']} | {v['p99_ms']} | {v['p99_ms_runs']} | {v['records_written']} |"
            for k, v in r["loop_delay"].items()
            if isinstance(v, dict)
        ),
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
