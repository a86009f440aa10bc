"""Track events POSTed to a webhook: a real local aiohttp server receives them as JSON, in order; a
failing one is retried (bounded) and then given up, counted and logged once; a full queue
drops and counts; the headers (a secret) are never logged."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from streamer.history.settings import WebhookConfig
from streamer.history.webhook import WebhookSink
from streamer.metrics import Metrics
from tests.conftest import free_port, wait_for
from tests.test_events_store import value

SECRET = "Bearer hook-Secret-0123456789"


async def receiver(fail_first: int = 0, status: int = 500, delay: float = 0.0):
    got: list[dict] = []
    tries = {"n": 0}

    async def hook(request: web.Request) -> web.Response:
        tries["n"] += 1
        assert request.headers.get("Authorization") == SECRET
        if delay:
            await asyncio.sleep(delay)
        if tries["n"] <= fail_first:
            return web.Response(status=status)
        got.append(await request.json())
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", hook)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    return server, got, tries


def sink(url: str, m: Metrics, **cfg: object) -> WebhookSink:
    base = {"url": url, "kinds": ["start", "update", "end"], "headers": {"Authorization": SECRET}}
    return WebhookSink(WebhookConfig(**{**base, **cfg}), m)


async def test_events_arrive_as_json_in_order_and_a_failure_is_retried(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    server, got, tries = await receiver(fail_first=2)
    m = Metrics()
    s = sink(str(server.make_url("/hook")), m, retries=3)
    s.start()
    try:
        for i, kind in enumerate(("start", "update", "end")):
            s.publish("door", kind, {"stream": "door", "track": 5, "n": i})
        await wait_for(lambda: len(got) == 3, 20, "three deliveries")
        assert [(g["kind"], g["n"]) for g in got] == [("start", 0), ("update", 1), ("end", 2)]
        assert tries["n"] == 5 and value(m, "streamer_event_sink_errors_total", sink="webhook") == 2
        assert s.given_up == 0 and s.delivered == 3
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(errors) == 1 and "HTTP 500" in errors[0].getMessage()
        assert "delivering again" in caplog.text and SECRET not in caplog.text
    finally:
        await s.close()
        await server.close()


async def test_a_dead_endpoint_is_given_up_after_the_retries_and_a_full_queue_counts_drops(
    caplog: pytest.LogCaptureFixture,
) -> None:
    m = Metrics()
    s = sink(f"http://127.0.0.1:{free_port()}/hook", m, retries=2, queue=3, timeout_s=2.0)
    s.start()
    try:
        t0 = time.perf_counter()
        for i in range(10):
            s.publish("door", "start", {"track": i})  # never waits
        assert time.perf_counter() - t0 < 0.5
        assert value(m, "streamer_event_sink_dropped_total", sink="webhook") >= 6  # 3 queued, maybe 1 taken
        await wait_for(lambda: s.given_up >= 1, 20, "an event given up")
        assert value(m, "streamer_event_sink_errors_total", sink="webhook") >= 3  # first try + 2 retries
        assert sum(r.levelno >= logging.ERROR for r in caplog.records) == 1
    finally:
        await s.close(timeout=0.1)


async def test_only_the_configured_kinds_are_sent_and_close_delivers_the_queue() -> None:
    server, got, _ = await receiver(delay=0.05)
    m = Metrics()
    s = sink(str(server.make_url("/hook")), m, kinds=["end"])
    s.start()
    for i in range(5):
        s.publish("door", "start", {"track": i})
        s.publish("door", "end", {"track": i})
    await s.close(timeout=10)
    assert [g["track"] for g in got] == [0, 1, 2, 3, 4] and {g["kind"] for g in got} == {"end"}
    await server.close()
