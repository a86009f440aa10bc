"""A WebRTC camera in its own process: sends the test clip to a streamer /offer until killed.

    python -m tests.support.webrtc_peer http://127.0.0.1:PORT/offer CLIP
    python -m tests.support.webrtc_peer http://127.0.0.1:PORT/streams/ID/offer --watch
Prints "CONNECTED <stream id>" once the service has answered. With --watch it only receives.
"""

from __future__ import annotations

import asyncio
import json
import sys
import urllib.request
from pathlib import Path

from aiortc import RTCPeerConnection, RTCSessionDescription

from tests.support.media import read_frames
from tests.test_webrtc import ClipTrack


async def main(url: str, clip: str) -> None:
    pc = RTCPeerConnection()
    if clip == "--watch":
        pc.addTransceiver("video", direction="recvonly")
    else:
        pc.addTrack(ClipTrack(read_frames(Path(clip), 30)))
    await pc.setLocalDescription(await pc.createOffer())
    body = json.dumps({"sdp": pc.localDescription.sdp, "type": "offer"}).encode()
    req = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    answer = await asyncio.get_running_loop().run_in_executor(
        None, lambda: json.loads(urllib.request.urlopen(req, timeout=30).read())
    )
    await pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], answer["type"]))
    print("CONNECTED", answer["stream"], flush=True)
    await asyncio.Event().wait()  # until killed


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
