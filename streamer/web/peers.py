"""WebRTC peer connections: creation with the configured ICE servers, and cleanup."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable

from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription

from streamer.config import IceServer
from streamer.memory import trim_soon
from streamer.metrics import Metrics

log = logging.getLogger(__name__)

MAX_SDP_BYTES = 64 * 1024


class BadOffer(ValueError):
    pass


class TooManyPeers(RuntimeError):
    pass


def parse_offer(body: bytes) -> RTCSessionDescription:
    """Validate a JSON ``{"sdp": ..., "type": "offer"}`` body; BadOffer says what is wrong."""
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise BadOffer(f"body is not JSON: {e}") from e
    if not isinstance(data, dict):
        raise BadOffer("body must be a JSON object with 'sdp' and 'type'")
    sdp, kind = data.get("sdp"), data.get("type")
    if kind != "offer":
        raise BadOffer("'type' must be 'offer'")
    if not isinstance(sdp, str) or not sdp.startswith("v=0"):
        raise BadOffer("'sdp' must be an SDP text starting with 'v=0'")
    if len(sdp.encode()) > MAX_SDP_BYTES:
        raise BadOffer(f"'sdp' is larger than {MAX_SDP_BYTES} bytes")
    if "m=video" not in sdp:
        raise BadOffer("the offer has no video section")
    return RTCSessionDescription(sdp=sdp, type="offer")


class Peers:
    def __init__(self, ice_servers: list[IceServer], metrics: Metrics, max_peers: int = 16) -> None:
        self.rtc_config = RTCConfiguration(
            iceServers=[
                RTCIceServer(urls=s.urls, username=s.username, credential=s.credential) for s in ice_servers
            ]
        )
        self.metrics = metrics
        self.max_peers = max_peers
        self.pcs: set[RTCPeerConnection] = set()

    def create(self, on_close: Callable[[], Awaitable[None]] | None = None) -> RTCPeerConnection:
        if len(self.pcs) >= self.max_peers:
            raise TooManyPeers(f"too many WebRTC connections (limit {self.max_peers})")
        pc = RTCPeerConnection(self.rtc_config)
        self.pcs.add(pc)
        self.metrics.peers.set(len(self.pcs))
        closed = False

        async def cleanup() -> None:
            nonlocal closed
            if closed:
                return
            closed = True
            self.pcs.discard(pc)
            self.metrics.peers.set(len(self.pcs))
            await pc.close()
            if on_close is not None:
                await on_close()
            await trim_soon()

        @pc.on("connectionstatechange")
        async def _state() -> None:
            log.info("peer %x: %s", id(pc), pc.connectionState)
            if pc.connectionState in ("failed", "closed"):
                await cleanup()

        pc._streamer_cleanup = cleanup  # type: ignore[attr-defined]
        return pc

    async def close(self, pc: RTCPeerConnection) -> None:
        await pc._streamer_cleanup()  # type: ignore[attr-defined]

    async def close_all(self) -> None:
        await asyncio.gather(*(self.close(pc) for pc in list(self.pcs)), return_exceptions=True)
