"""WebRTC peer connections: offers checked before aiortc sees them, creation, and cleanup.

A peer that does not connect (ICE/DTLS) within ``connect_timeout_s`` is closed, and one client
address may hold at most ``max_pending_per_client`` peers that are not yet connected: a client
that sends offers and never follows up cannot hold every peer slot.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable

from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription

from streamer.memory import trim_soon
from streamer.metrics import Metrics
from streamer.server_config import IceServer

log = logging.getLogger(__name__)

MAX_SDP_BYTES = 64 * 1024
# media sections an offer may carry, per endpoint: a viewer receives one video; a camera sends one
# video and maybe one audio (ignored). Counted on the text before aiortc builds anything.
VIEWER_MEDIA = {"video": 1}
CAMERA_MEDIA = {"video": 1, "audio": 1}


class BadOffer(ValueError):
    pass


class TooManyPeers(RuntimeError):
    pass


def load_json(body: bytes) -> object:
    """Parse a JSON body; ValueError with a reason for bad text or nesting too deep."""
    try:
        return json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"body is not JSON: {e}") from e
    except RecursionError as e:
        raise ValueError("body is JSON nested too deeply") from e


def count_media(sdp: str) -> dict[str, int]:
    """How many ``m=`` sections of each kind the SDP text has."""
    counts: dict[str, int] = {}
    for line in sdp.splitlines():
        if line.startswith("m="):
            kind = line[2:].split(" ", 1)[0].strip() or "?"
            counts[kind] = counts.get(kind, 0) + 1
    return counts


def parse_offer(body: bytes, allowed: dict[str, int] | None = None) -> RTCSessionDescription:
    """Validate a JSON ``{"sdp": ..., "type": "offer"}`` body; BadOffer says what is wrong."""
    allowed = VIEWER_MEDIA if allowed is None else allowed
    try:
        data = load_json(body)
    except ValueError as e:
        raise BadOffer(str(e)) from e
    if not isinstance(data, dict):
        raise BadOffer("body must be a JSON object with 'sdp' and 'type'")
    sdp, kind = data.get("sdp"), data.get("type")
    if kind != "offer":
        raise BadOffer("'type' must be 'offer'")
    if not isinstance(sdp, str) or not sdp.startswith("v=0"):
        raise BadOffer("'sdp' must be an SDP text starting with 'v=0'")
    if len(sdp.encode()) > MAX_SDP_BYTES:
        raise BadOffer(f"'sdp' is larger than {MAX_SDP_BYTES} bytes")
    media = count_media(sdp)
    if "video" not in media:
        raise BadOffer("the offer has no video section")
    for k, n in media.items():
        if n > allowed.get(k, 0):
            want = " and ".join(f"{v} {m}" for m, v in allowed.items())
            raise BadOffer(f"the offer has {n} {k} section(s); this endpoint takes at most {want}")
    return RTCSessionDescription(sdp=sdp, type="offer")


def offer_error(e: BaseException) -> str:
    """A reason for an offer aiortc refused, never empty."""
    text = str(e).strip()
    if isinstance(e, (KeyError, IndexError)) or not text:
        return f"malformed SDP ({type(e).__name__}{': ' + text if text else ''})"
    return text


class Peers:
    def __init__(
        self,
        ice_servers: list[IceServer],
        metrics: Metrics,
        max_peers: int = 16,
        connect_timeout_s: float = 15.0,
        max_pending_per_client: int = 4,
    ) -> None:
        self.rtc_config = RTCConfiguration(
            iceServers=[
                RTCIceServer(urls=s.urls, username=s.username, credential=s.credential) for s in ice_servers
            ]
        )
        self.metrics = metrics
        self.max_peers = max_peers
        self.connect_timeout_s = connect_timeout_s
        self.max_pending_per_client = max_pending_per_client
        self.pcs: set[RTCPeerConnection] = set()
        self._client: dict[RTCPeerConnection, str] = {}
        self._timers: dict[RTCPeerConnection, asyncio.Task[None]] = {}

    def pending(self, client: str) -> int:
        """Peers of ``client`` that have not connected yet."""
        return sum(1 for pc, c in self._client.items() if c == client and pc.connectionState != "connected")

    def create(
        self, on_close: Callable[[], Awaitable[None]] | None = None, client: str = "?"
    ) -> RTCPeerConnection:
        if len(self.pcs) >= self.max_peers:
            raise TooManyPeers(f"too many WebRTC connections (limit {self.max_peers})")
        if self.pending(client) >= self.max_pending_per_client:
            raise TooManyPeers(
                f"too many WebRTC connections still connecting from this address "
                f"(limit {self.max_pending_per_client}; each gets {self.connect_timeout_s:g}s)"
            )
        pc = RTCPeerConnection(self.rtc_config)
        self.pcs.add(pc)
        self._client[pc] = client
        self.metrics.peers.set(len(self.pcs))
        closed = False

        async def cleanup() -> None:
            nonlocal closed
            if closed:
                return
            closed = True
            self.pcs.discard(pc)
            self._client.pop(pc, None)
            timer = self._timers.pop(pc, None)
            if timer is not None and timer is not asyncio.current_task():
                timer.cancel()
            self.metrics.peers.set(len(self.pcs))
            for sender in pc.getSenders():  # (closing the peer stops its senders, not their tracks)
                if sender.track is not None:
                    sender.track.stop()  # an annotated track lets go of its stream's frames
            await pc.close()
            if on_close is not None:
                await on_close()
            await trim_soon()

        async def deadline() -> None:
            await asyncio.sleep(self.connect_timeout_s)
            if pc.connectionState != "connected":
                log.info("peer %x: not connected after %.0fs; closing", id(pc), self.connect_timeout_s)
                self.metrics.errors.labels("peer_connect_timeout").inc()
                await cleanup()

        @pc.on("connectionstatechange")
        async def _state() -> None:
            log.info("peer %x: %s", id(pc), pc.connectionState)
            if pc.connectionState in ("failed", "closed"):
                await cleanup()

        self._timers[pc] = asyncio.get_running_loop().create_task(
            deadline(), name=f"peer-deadline-{id(pc):x}"
        )
        pc._streamer_cleanup = cleanup  # type: ignore[attr-defined]
        return pc

    async def close(self, pc: RTCPeerConnection) -> None:
        await pc._streamer_cleanup()  # type: ignore[attr-defined]

    async def close_all(self) -> None:
        await asyncio.gather(*(self.close(pc) for pc in list(self.pcs)), return_exceptions=True)
