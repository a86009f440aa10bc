"""HTTP connections under a flood: a cap, deadlines, and the file limit raised.

A client that opens connections and never sends a request, sends half of one, or never reads
what it asked for must not use up the service's file descriptors: then nothing, not even
``/healthz``, can be accepted. So:

- the process's file limit (RLIMIT_NOFILE) is raised to its hard limit at start-up;
- at most ``max_connections`` connections are open (lowered to fit the file limit, leaving
  ``RESERVED_FDS`` for everything else); at the cap a new connection closes the oldest one with
  no request in progress, or is itself closed if every one is in a request (the long ones, MJPEG
  and event streams, have caps of their own);
- a connection must send a complete request within ``header_timeout_s`` of connecting or of
  sending its first byte, and one with no request in progress is closed after
  ``keepalive_timeout_s``.

Each close is counted in ``streamer_http_connections_closed_total{reason}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import resource
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from streamer.metrics import Metrics
from streamer.server_config import ServerConfig

log = logging.getLogger(__name__)
RESERVED_FDS = 256  # models, workers, cameras, peers, and a burst of accepts before they are counted
SWEEP_S = 0.5


@dataclass(frozen=True)
class Limits:
    max_connections: int = 1024
    header_timeout_s: float = 10.0
    keepalive_timeout_s: float = 15.0

    @classmethod
    def of(cls, server: ServerConfig) -> Limits:
        return cls(server.max_connections, server.header_timeout_s, server.keepalive_timeout_s)


def raise_file_limit() -> int:
    """Soft RLIMIT_NOFILE raised to the hard limit; the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 1 << 20
    if soft != resource.RLIM_INFINITY and soft < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
            log.info("file limit (RLIMIT_NOFILE) raised from %d to %d", soft, want)
            soft = want
        except (ValueError, OSError) as e:
            log.warning("could not raise the file limit from %d to %d: %s", soft, want, e)
    return int(soft) if soft != resource.RLIM_INFINITY else 1 << 20


def connection_cap(wanted: int, nofile: int) -> int:
    cap = max(16, min(wanted, nofile - RESERVED_FDS))
    if cap < wanted:
        log.warning(
            "server.max_connections %d lowered to %d: the file limit is %d (%d kept for the rest)",
            wanted,
            cap,
            nofile,
            RESERVED_FDS,
        )
    return cap


class Connections:
    """The open connections in arrival order, which of them are in a request, and their deadlines."""

    def __init__(self, limits: Limits, metrics: Metrics, cap: int | None = None) -> None:
        self.limits = limits
        self.metrics = metrics
        self.cap = limits.max_connections if cap is None else cap
        self.open: OrderedDict[GuardedHandler, None] = OrderedDict()
        self._sweeper: asyncio.Task[None] | None = None
        self._warned = 0.0

    def opened(self, h: GuardedHandler) -> None:
        self.open[h] = None
        self._gauge()
        if len(self.open) > self.cap:
            # the oldest connection with no request in progress gives way; the busy ones are few
            victim = next((c for c in self.open if not c.busy and c is not h), None)
            self.close(h if victim is None else victim, "refused" if victim is None else "evicted")
            now = time.monotonic()
            if now - self._warned > 10:
                self._warned = now
                log.warning("%d connections open (server.max_connections): closing idle ones", self.cap)

    def lost(self, h: GuardedHandler) -> None:
        if self.open.pop(h, 0) is None:
            self._gauge()

    def close(self, h: GuardedHandler, reason: str) -> None:
        self.open.pop(h, None)
        self._gauge()
        self.metrics.http_closed.labels(reason).inc()
        if h.transport is not None:
            h.transport.abort()

    def sweep(self, now: float) -> None:
        for h in list(self.open):
            if not h.busy and now > h.deadline:
                self.close(h, "header_timeout" if h.partial or not h.requests else "idle")

    def _gauge(self) -> None:
        self.metrics.http_connections.set(len(self.open))

    def start(self) -> None:
        async def sweeper() -> None:
            loop = asyncio.get_running_loop()
            while True:
                await asyncio.sleep(SWEEP_S)
                self.sweep(loop.time())

        if self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().create_task(sweeper(), name="connection-sweeper")

    def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None


class GuardedHandler(RequestHandler):
    """aiohttp's protocol, plus what ``Connections`` needs: in a request or not, and a deadline."""

    def __init__(self, manager: web.Server, guard: Connections, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self.guard = guard
        self.busy = False
        self.partial = False  # bytes of a request arrived, the request is not complete yet
        self.requests = 0
        self.deadline = self._loop.time() + guard.limits.header_timeout_s

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.guard.opened(self)

    def connection_lost(self, exc: BaseException | None) -> None:
        self.guard.lost(self)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if not self.busy and not self.partial:
            self.partial = True
            self.deadline = min(self.deadline, self._loop.time() + self.guard.limits.header_timeout_s)
        super().data_received(data)

    def begin(self) -> None:
        self.busy, self.partial = True, False
        self.requests += 1

    def end(self) -> None:
        self.busy = False
        self.deadline = self._loop.time() + self.guard.limits.keepalive_timeout_s


@web.middleware
async def track_requests(request: web.Request, handler):
    """Marks the connection as in a request while the handler runs (streaming answers included)."""
    proto = request.protocol
    if not isinstance(proto, GuardedHandler):
        return await handler(request)
    proto.begin()
    try:
        return await handler(request)
    finally:
        proto.end()


class GuardedServer(web.Server):
    def __init__(self, *args: Any, guard: Connections, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.guard = guard

    def __call__(self) -> RequestHandler:
        return GuardedHandler(self, self.guard, loop=self._loop, **self._kwargs)


class GuardedRunner(web.AppRunner):
    """An AppRunner whose connections are ``GuardedHandler``s watched by ``connections``."""

    def __init__(self, app: web.Application, connections: Connections, **kwargs: Any) -> None:
        lim = connections.limits
        # aiohttp's own idle timeout stays as a backstop behind the sweeper's
        kwargs.setdefault("keepalive_timeout", lim.keepalive_timeout_s + lim.header_timeout_s)
        super().__init__(app, **kwargs)
        self.connections = connections

    async def _make_server(self) -> web.Server:
        s = await super()._make_server()
        self.connections.start()
        return GuardedServer(
            s.request_handler,
            request_factory=s.request_factory,
            handler_cancellation=s.handler_cancellation,
            loop=s._loop,
            guard=self.connections,
            **s._kwargs,
        )

    async def shutdown(self) -> None:
        self.connections.stop()
        await super().shutdown()


class ListenError(Exception):
    """The service cannot listen where it is told to (the port taken, the address not this machine's)."""


async def _serve(app: web.Application, host: str, port: int, conns: Connections, shutdown_s: float) -> None:
    runner = GuardedRunner(app, conns, handle_signals=True, shutdown_timeout=shutdown_s)
    await runner.setup()
    try:
        try:
            await web.TCPSite(runner, host, port).start()
        except OSError as e:
            why = os.strerror(e.errno).lower() if e.errno else str(e)
            raise ListenError(f"cannot listen on {host}:{port}: {why}") from None
        print(f"streamer: serving on http://{host}:{port}", flush=True)
        await asyncio.Event().wait()  # until SIGINT/SIGTERM (GracefulExit) or cancelled
    finally:
        await runner.cleanup()


def run(app: web.Application, host: str, port: int, limits: Limits, metrics: Metrics) -> None:
    """Like ``web.run_app``, with the connection guard and the file limit raised; says where it
    serves once it listens there. Raises ListenError if it cannot listen there."""
    conns = Connections(limits, metrics, connection_cap(limits.max_connections, raise_file_limit()))
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    main = loop.create_task(_serve(app, host, port, conns, 5.0))
    try:
        loop.run_until_complete(main)
    except (web.GracefulExit, KeyboardInterrupt):
        pass
    finally:
        try:
            if not main.done():
                main.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    loop.run_until_complete(main)
        finally:
            tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for t in tasks:
                t.cancel()
            loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
