"""Privacy (issue #33): with ``people.privacy = "blur_all"`` the live service's output frames (what
MJPEG encodes and WebRTC sends) hide every tracked face: a detector run on the encoded output frame
finds no face where the track is, though it finds one there in the source frame."""

from __future__ import annotations

import cv2
import numpy as np

from streamer.outputs.mjpeg import encode_jpeg
from streamer.people.faces import FaceFinder
from streamer.web.keys import PIPELINE
from tests.conftest import CLIP, wait_for


def _near(a, b) -> bool:
    return a.iou(b) > 0.3


async def test_blur_all_hides_tracked_faces_in_the_output(make_app) -> None:
    client = await make_app(
        sources=[{"id": "clip", "file": str(CLIP), "loop": True}], people={"privacy": "blur_all"}
    )
    stream = client.server.app[PIPELINE].streams["clip"]
    assert stream.stage.people is not None and stream.stage.people.privacy == "blur_all"
    await wait_for(lambda: len(stream.stage.faces) > 0, 90, "a first face shown (a confirmed track)")
    finder = FaceFinder()
    sub = stream.hub.subscribe()
    checked = 0
    try:
        for _ in range(400):
            item = await sub.next()
            if item is None or item.detections is None or not item.detections.faces:
                continue
            out = cv2.imdecode(np.frombuffer(encode_jpeg(item.image, 80), np.uint8), cv2.IMREAD_COLOR)
            found_out = finder.boxes(cv2.cvtColor(out, cv2.COLOR_BGR2RGB))
            found_src = finder.boxes(item.frame.image)
            for f in item.detections.faces:
                if any(_near(f.box, b) for b in found_src):  # (a face the detector sees in the source)
                    assert not any(_near(f.box, b) for b in found_out), "a tracked face shows in the output"
                    checked += 1
            if checked >= 3:
                break
    finally:
        sub.close()
    assert checked >= 3
