"""Track events POSTed as JSON to a URL (``webhook.url``), one request per event, in order.

A bounded queue (``webhook.queue``; a full one drops and counts:
``streamer_event_sink_dropped_total{sink="webhook"}``) feeds one task. A request that fails (an
error, a timeout, a status of 400 or more) is tried ``webhook.retries`` more times with a growing
pause, then given up (``streamer_event_sink_errors_total{sink="webhook"}`` counts every failed
try). Failing is logged once, and once again when it works; the headers are never logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import aiohttp

from streamer.history.settings import WebhookConfig
from streamer.metrics import Metrics
from streamer.redact import redact_url as redact

log = logging.getLogger(__name__)


class WebhookSink:
    name = "webhook"

    def __init__(self, cfg: WebhookConfig, metrics: Metrics) -> None:
        self.cfg = cfg
        self.metrics = metrics
        self.kinds = set(cfg.kinds)
        self.q: asyncio.Queue[dict[str, object]] | None = None
        self._task: asyncio.Task[None] | None = None
        self._failing = False
        self.delivered = 0
        self.given_up = 0

    def start(self) -> None:
        self.q = asyncio.Queue(self.cfg.queue)
        self._task = asyncio.create_task(self._run(), name="webhook")

    def publish(self, stream: str, kind: str, data: dict[str, object]) -> None:
        if kind not in self.kinds or self.q is None:
            return
        try:
            self.q.put_nowait({"kind": kind, **data})
        except asyncio.QueueFull:
            self.metrics.event_sink_dropped.labels(self.name).inc()

    async def _run(self) -> None:
        assert self.q is not None
        timeout = aiohttp.ClientTimeout(total=self.cfg.timeout_s)
        async with aiohttp.ClientSession(timeout=timeout, headers=self.cfg.headers) as session:
            while True:
                body = await self.q.get()
                try:
                    await self._send(session, body)
                finally:
                    self.q.task_done()

    async def _send(self, session: aiohttp.ClientSession, body: dict[str, object]) -> None:
        for attempt in range(self.cfg.retries + 1):
            try:
                async with session.post(self.cfg.url, json=body) as r:
                    if r.status < 400:
                        self.delivered += 1
                        if self._failing:
                            self._failing = False
                            log.warning("webhook %s: delivering again", redact(self.cfg.url))
                        return
                    why = f"HTTP {r.status}"
            except (aiohttp.ClientError, TimeoutError) as e:
                why = f"{type(e).__name__}: {e}"[:200]
            self.metrics.event_sink_errors.labels(self.name).inc()
            if not self._failing:
                self._failing = True
                log.error("webhook %s: %s; retrying, then giving up on the event", redact(self.cfg.url), why)
            if attempt < self.cfg.retries:
                await asyncio.sleep(min(10.0, 0.2 * 2**attempt))
        self.given_up += 1

    async def close(self, timeout: float = 5.0) -> None:
        """Deliver what is queued (for up to ``timeout`` s), then stop."""
        if self._task is None or self.q is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.q.join(), timeout)
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
