"""Bad input gets a clear error and a metric, and the other streams keep flowing."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from streamer.web.keys import PIPELINE
from tests.conftest import CLIP, SHARED, metric, wait_for
from tests.support.cli import streamer_cli

pytestmark = pytest.mark.slow


async def test_broken_sources_and_hostile_requests_leave_good_stream_running(
    make_app, tmp_path: Path
) -> None:
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(os.urandom(200_000))
    client = await make_app(
        sources=[
            {"id": "good", "file": str(CLIP), "loop": True},
            {"id": "corrupt", "file": str(corrupt)},
            {"id": "nowhere", "url": "rtsp://127.0.0.1:9/nothing"},  # port 9 (discard): refused
        ],
        source_defaults={"reconnect_initial_s": 0.2, "reconnect_max_s": 0.5, "open_timeout_s": 2.0},
    )
    app = client.server.app
    streams = app[PIPELINE].streams
    await wait_for(lambda: streams["good"].source.state.up, 30, "the good stream")
    await wait_for(
        lambda: (
            streams["corrupt"].source.state.error is not None
            and streams["nowhere"].source.state.error is not None
        ),
        30,
        "errors on the broken sources",
    )
    listed = {s["id"]: s for s in (await (await client.get("/streams")).json())["streams"]}
    assert listed["corrupt"]["up"] is False and "open" in listed["corrupt"]["error"]
    assert listed["nowhere"]["up"] is False and "127.0.0.1:9" in listed["nowhere"]["error"]
    await wait_for(
        lambda: metric(app, "streamer_source_reconnects_total", stream="nowhere") >= 2,
        30,
        "retries of the unreachable camera",
    )
    assert metric(app, "streamer_errors_total", kind="source") >= 3

    bad_requests = [
        ("/offer", b"not json", "not JSON"),
        ("/offer", json.dumps({"type": "offer", "sdp": "hello"}).encode(), "SDP"),
        ("/offer", json.dumps({"type": "answer", "sdp": "v=0"}).encode(), "'type'"),
        (
            "/offer",
            json.dumps({"type": "offer", "sdp": "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n"}).encode(),
            "cannot use this offer",
        ),
        (
            "/streams/good/offer",
            json.dumps({"type": "offer", "sdp": "v=0\r\nm=audio 9\r\n"}).encode(),
            "video",
        ),
        ("/offer", b"x" * 300_000, "too large"),
        ("/streams", json.dumps({"url": "file:///etc/passwd"}).encode(), "not allowed"),
        ("/streams", json.dumps({"url": "/dev/video0"}).encode(), "required"),
        ("/streams", json.dumps({"url": "rtsp://cam/x", "id": "../../x"}).encode(), "id"),
        ("/streams", json.dumps({"url": "rtsp://cam/x", "file": "/etc/passwd"}).encode(), "unknown keys"),
        ("/streams", json.dumps({"url": "rtsp://cam/x", "id": "good"}).encode(), "exists"),
    ]
    for path, body, expected in bad_requests:
        r = await client.post(path, data=body, headers={"Content-Type": "application/json"})
        text = await r.text()
        assert 400 <= r.status < 500, (path, body[:60], r.status, text)
        assert expected in json.loads(text)["error"], (path, text)
    assert metric(app, "streamer_errors_total", kind="bad_offer") >= 5
    assert metric(app, "streamer_errors_total", kind="bad_source") >= 3
    assert metric(app, "streamer_errors_total", kind="request_too_large") == 1
    assert (await client.get("/streams/nope/mjpeg")).status == 404

    # the good stream never stopped
    before = metric(app, "streamer_frames_out_total", stream="good")
    await wait_for(
        lambda: metric(app, "streamer_frames_out_total", stream="good") > before + 15,
        10,
        "the good stream to keep flowing",
    )
    assert (await client.get("/healthz")).status == 200


def test_detect_prints_boxes_and_rejects_non_images(tmp_path: Path) -> None:
    not_image = tmp_path / "notes.jpg"
    not_image.write_text("this is not a picture")
    img = SHARED / "media" / "obama-480p.jpg"
    r, ref = streamer_cli(
        ["detect", str(img), str(not_image), str(tmp_path / "missing.png")],
        ["detect", "--detector", "dlib", str(img)],
    )
    assert ref.returncode == 0
    assert json.loads(ref.stdout)["faces"][0] == json.loads(r.stdout.splitlines()[0])["faces"][0] | {
        "confidence": json.loads(ref.stdout)["faces"][0]["confidence"]
    }  # the port (default) and dlib draw the same rectangle
    assert r.returncode == 1
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 1
    out = json.loads(lines[0])
    assert (out["path"], out["width"], out["height"]) == (str(img), 853, 480)
    (face,) = out["faces"]
    assert set(face) == {"left", "top", "right", "bottom", "confidence"}
    assert 370 < face["left"] < face["right"] < 520 and face["confidence"] > 0.5
    assert "notes.jpg: not a readable image" in r.stderr and "missing.png: no such file" in r.stderr
    assert "Traceback" not in r.stderr


def test_annotate_writes_video_and_detections(tmp_path: Path) -> None:
    out, dets = tmp_path / "out.mp4", tmp_path / "dets.jsonl"
    not_video = tmp_path / "not-a-video.mp4"
    not_video.write_text("this is not a video")
    r, missing, no_folder, no_video, no_image, broken, still = streamer_cli(
        [
            "annotate",
            str(CLIP),
            "--output",
            str(out),
            "--detections",
            str(dets),
            "--every",
            "10",
            "--max-frames",
            "31",
        ],
        ["annotate", str(tmp_path / "nope.mp4"), "--output", str(tmp_path / "nope-out.mp4")],
        # (before: both ran to the end, said how many frames they annotated, exit 0, and wrote nothing)
        ["annotate", str(CLIP), "--output", str(tmp_path / "no" / "out.mp4"), "--max-frames", "3"],
        ["annotate", str(CLIP), "--output", str(tmp_path / "out.xyz"), "--max-frames", "3"],
        ["annotate", str(SHARED / "media" / "obama-480p.jpg"), "--output", str(tmp_path / "photo.xyz")],
        ["annotate", str(not_video), "--output", str(tmp_path / "broken-out.mp4")],
        # (before: --realtime on a photo played no frame, wrote nothing and exit 0)
        [
            "annotate",
            str(SHARED / "media" / "obama-480p.jpg"),
            "--output",
            str(tmp_path / "p.png"),
            "--realtime",
        ],
    )
    assert r.returncode == 0, r.stderr
    # its own log lines and nothing else (no TensorFlow start-up notices, no retracing warnings)
    assert all(re.match(r"[\d-]+ [\d:,]+ [A-Z]+ streamer[.:]", x) for x in r.stderr.splitlines()), r.stderr
    rows = [json.loads(x) for x in dets.read_text().splitlines()]
    assert [x["frame"] for x in rows] == list(range(31))
    assert any(x["faces"] for x in rows)
    # no --config: the shipped classifiers, as for `streamer serve`
    assert any(set(f["labels"]) == {"gender", "beard"} for x in rows for f in x["faces"])
    # --every 10: tracks start only on frames that went to the detector (every 10th, and the one
    # after a scene cut), and carry their id
    detections = int(re.search(r"(\d+) detections", r.stderr).group(1))  # type: ignore[union-attr]
    assert 4 <= detections <= 4 + 3
    seen: set[int] = set()
    starts = 0
    for k in range(31):
        ids = {f["track"] for f in rows[k]["faces"]}
        assert all(isinstance(i, int) for i in ids)
        starts += bool(ids - seen)
        seen |= ids
    assert 1 <= starts <= detections
    import cv2

    cap = cv2.VideoCapture(str(out))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 31
    assert missing.returncode == 1 and "no such file" in missing.stderr
    assert no_folder.returncode == 1 and f"out.mp4: no such folder {tmp_path / 'no'}" in no_folder.stderr
    assert "annotated" not in no_folder.stderr  # (said before anything loads)
    assert no_video.returncode == 1 and "out.xyz: no video written (use .mp4 or .avi)" in no_video.stderr
    assert no_image.returncode == 1 and "photo.xyz: no image written (use .jpg or .png)" in no_image.stderr
    assert "Traceback" not in no_folder.stderr + no_video.stderr + no_image.stderr
    # said once, in its own words: no FFmpeg line ("[mov,mp4,m4a,... @ 0x...] moov atom not found")
    assert broken.returncode == 1
    assert broken.stderr == f"streamer annotate: {not_video}: not a readable video\n", broken.stderr
    assert still.returncode == 0 and "annotated as a still" in still.stderr
    assert cv2.imread(str(tmp_path / "p.png")).shape == (480, 853, 3)
