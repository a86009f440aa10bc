"""The benchmark code itself, on a tiny run, so it cannot rot: well-formed JSON with every field."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from benchmarks.webrtc_latency import read_stamp, stamp


def test_frame_stamp_round_trip() -> None:
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (360, 640, 3), dtype=np.uint8)
    for n in (0, 1, 29, 1234, 4095):
        assert read_stamp(stamp(img, n)) == n
    # survives mild noise, as after a video codec
    noisy = np.clip(stamp(img, 777).astype(int) + rng.integers(-40, 40, img.shape), 0, 255).astype(np.uint8)
    assert read_stamp(noisy) == 777


@pytest.mark.slow
def test_tiny_full_run_writes_well_formed_results(tmp_path: Path, shared: Path) -> None:
    from benchmarks.__main__ import main

    rc = main(
        [
            "--quick",
            "--seconds",
            "1",
            "--warmup",
            "0",
            "--max-streams",
            "1",
            "--stage-frames",
            "1",
            "--out",
            str(tmp_path),
            "--name",
            "tiny",
        ]
    )
    data = json.loads((tmp_path / "tiny.json").read_text())
    assert rc == 0, data["errors"]
    m = data["machine"]
    for k in ("cpu", "cores", "gpu", "libraries", "git_commit", "keras_backend"):
        assert k in m
    assert m["cores"] >= 1 and "numpy" in m["libraries"]
    sc = data["scenarios"]
    assert set(sc) == {"classifier", "stages", "baseline", "webrtc", "sweeps"}

    b = sc["baseline"]
    for side in (b["baseline"], b["service"]):
        for k in ("input_fps", "output_fps", "drop_rate", "detections_per_s", "latency_s", "frames_measured"):
            assert k in side
        assert set(side["latency_s"]) == {"p50", "p95", "p99"}
    assert b["service"]["output_fps"] > 0 and b["baseline"]["output_fps"] > 0
    assert b["output_fps_ratio"] > 0
    # the service runs the port by default: the tutorial's own loop (dlib-bin) is measured beside it
    assert b["detector"] == "mmod" and b["tutorial"]["detector"] == "dlib"
    assert b["tutorial"]["output_fps"] > 0 and b["tutorial_output_fps_ratio"] > 0

    st = sc["stages"]
    assert set(st["ms_per_frame"]) == {"decode", "detect", "classify", "overlay", "encode"}
    assert abs(sum(st["share"].values()) - 1.0) < 0.01

    sw = sc["sweeps"]
    assert [r["streams"] for r in sw["streams"]] == [1]
    assert {r["max_batch"] for r in sw["max_batch"]} == {1, 4}
    assert [r["resolution"] for r in sw["resolution"]] == ["240p"]
    dets = {r["detector"]: r for r in sw["detector"]}
    assert "output_fps" in dets["dlib"] and set(dets) == {"dlib", "mmod"}
    assert "max_realtime_streams" in sw

    w = sc["webrtc"]
    assert w["received_fps"] > 0 and w["decoded_share"] > 0.9
    assert set(w["e2e_latency_s"]) == {"p50", "p95", "p99"} and w["frames_measured"] > 0

    c = sc["classifier"]
    assert {r["batch"] for r in c["rows"]} == {1, 8, 32, 128}
    assert all(r["faces_per_s"] > 0 for r in c["rows"])

    md = (tmp_path / "tiny.md").read_text()
    assert "## Headline" in md and "| figure |" in md
    assert sorted(data["plots"]) == ["tiny-latency-cdf.png", "tiny-stages.png", "tiny-streams.png"]
    for p in data["plots"]:
        assert (tmp_path / p).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_tracking_scenario_writes_every_figure(tmp_path: Path) -> None:
    from benchmarks.tracking import main

    out = tmp_path / "tracking.json"
    assert main(["--frames", "12", "--every", "1,6", "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["frames"] == 12 and [r["every"] for r in data["runs"]] == [1, 6]
    for r in data["runs"]:
        assert 0.0 <= r["recall_vs_every_frame"] <= 1.0 and 0.0 <= r["mean_iou_vs_truth"] <= 1.0
        assert r["ids_per_person"] >= 1.0 and r["faces_classified"] <= r["faces_detected"]
    assert data["runs"][0]["recall_vs_every_frame"] > 0.9  # detection on every frame shows what it found
    assert set(data["tracker_ms_per_frame_by_faces"]) == {"1", "8", "32"}
