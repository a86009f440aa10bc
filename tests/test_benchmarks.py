"""The benchmark code itself, on a tiny run, so it cannot rot: well-formed JSON with every field."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np
import pytest

from benchmarks.scoring import score_looped
from benchmarks.service.webrtc import read_stamp, stamp
from streamer.types import Box


def test_one_entry_point_lists_every_scenario_and_each_gives_its_options(capsys) -> None:
    from benchmarks.__main__ import SCENARIOS, main

    assert main(["--help"]) == 0
    listed = capsys.readouterr().out
    for name in (
        "service",
        "detector",
        "tracking",
        "small-faces",
        "live-clip",
        "triton",
        "reidentify",
        "proposals",
    ):
        assert f"  {name} " in listed
    assert main(["no-such-scenario"]) == 2
    for name in SCENARIOS:
        with pytest.raises(SystemExit) as done:
            main([name, "--help"])
        assert done.value.code == 0
        assert f"usage: python -m benchmarks {name}" in capsys.readouterr().out


def test_a_results_folder_that_cannot_be_written_or_an_input_not_there_stops_a_scenario_at_once(
    tmp_path: Path, capsys
) -> None:
    """(before: a scenario measured for minutes, then failed to save)"""
    from benchmarks.__main__ import SCENARIOS, main

    blocked = tmp_path / "a-file"
    blocked.write_text("")
    for name in SCENARIOS:
        with pytest.raises(SystemExit) as done:
            main([name, "--out", str(blocked / "results")])
        assert done.value.code == 2, name
        assert f"argument --out: {blocked / 'results'}: cannot make the folder" in capsys.readouterr().err, (
            name
        )
    # an input that is not there: said before anything runs (before: a traceback, some minutes in)
    missing = str(tmp_path / "missing.mp4")
    for argv in (
        ["live-clip", "--video", missing],
        ["tracking", "--video", missing],
        ["service", "--video", missing],
        ["people-clip", "--clip", missing],
        ["people-named", "--clip", missing, "--labels", missing],
    ):
        with pytest.raises(SystemExit) as done:
            main([*argv, "--out", str(tmp_path / "out")])
        assert done.value.code == 2, argv
        assert f"{missing}: no such file" in capsys.readouterr().err, argv
    made = tmp_path / "new" / "results"
    from benchmarks.report import results_dir

    assert results_dir(str(made)) == made and made.is_dir()


def test_frame_stamp_round_trip() -> None:
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (360, 640, 3), dtype=np.uint8)
    for n in (0, 1, 29, 1234, 4095):
        assert read_stamp(stamp(img, n)) == n
    # survives mild noise, as after a video codec
    noisy = np.clip(stamp(img, 777).astype(int) + rng.integers(-40, 40, img.shape), 0, 255).astype(np.uint8)
    assert read_stamp(noisy) == 777


def _row(left: int, right: int) -> Box:
    """A box 10 px tall from column ``left`` to ``right`` (inclusive): IoUs are ratios of widths."""
    return Box(left, 0, right, 9, 1.0)


def test_box_accuracy_matches_one_to_one_by_total_overlap() -> None:
    t1, t2 = _row(0, 99), _row(40, 139)
    # d1 overlaps t2 best (90/110) but t1 enough (70/130); d2 overlaps only t2 well (80/100, t1: 40/140).
    # Matching each box to its best (greedy) would give d1 -> t2 and leave t1 unfound.
    d1, d2 = _row(30, 129), _row(60, 139)
    truth = [[t1, t2], [t1, t2], [t1]]
    # clip of 3 frames played in a loop: frame 4 shows clip frame 1, frame 5 clip frame 2
    s = score_looped([(0, [d1, d2]), (4, [d1]), (5, [d1, d2]), (6, [])], truth).as_dict()
    # frame 0: both found (70/130 + 80/100); frame 4 (clip 1): one box for two faces, t2 found (90/110);
    # frame 5 (clip 2): t1 by d1 (70/130), d2 an extra box; frame 6 (clip 0): nothing drawn
    assert s["true_faces_scored"] == 7 and s["frames_scored"] == 4
    assert s["box_recall"] == pytest.approx(4 / 7, abs=1e-4)
    assert s["box_mean_iou"] == pytest.approx((70 / 130 + 80 / 100 + 90 / 110 + 70 / 130) / 7, abs=1e-4)
    assert s["frames_all_boxed"] == pytest.approx(2 / 4)
    # a box under IoU 0.5 is a miss and adds nothing to the mean IoU
    weak = score_looped([(0, [_row(0, 49)])], [[t1]]).as_dict()  # IoU 50/100 counts, 49 px would not
    assert weak["box_recall"] == 1.0 and weak["box_mean_iou"] == pytest.approx(0.5)
    miss = score_looped([(0, [_row(0, 48)])], [[t1]]).as_dict()
    assert miss["box_recall"] == 0.0 and miss["box_mean_iou"] == 0.0


@pytest.mark.slow
@pytest.mark.timeout(600)  # every scenario, dlib's loop too: 80-100 s on 2 cores, minutes when loaded
def test_tiny_full_run_writes_well_formed_results(tmp_path: Path, shared: Path) -> None:
    from benchmarks.__main__ import main

    rc = main(
        [
            "service",
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
    one = sw["streams"][0]
    # boxes drawn on the moving-camera clip, scored against its true boxes
    assert one["frames_scored"] > 0 and one["true_faces_scored"] > one["frames_scored"]
    assert 0.0 <= one["box_recall"] <= 1.0 and 0.0 <= one["box_mean_iou"] <= one["box_recall"]
    assert one["detection_age_s"]["p50"] is not None and one["output_vs_input"] > 0
    assert sw["streams_every_frame_detection"]["box_recall"] > 0.9  # the detector finds the true faces
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
    from benchmarks.__main__ import main

    args = ["tracking", "--frames", "12", "--every", "1,6", "--phases", "--out", str(tmp_path), "--name", "t"]
    assert main(args) == 0
    data = json.loads((tmp_path / "t.json").read_text())
    assert "| every |" in (tmp_path / "t.md").read_text()
    assert data["frames"] == 12 and [r["every"] for r in data["runs"]] == [1, 6]
    for r in data["runs"]:
        assert 0.0 <= r["recall_vs_every_frame"] <= 1.0 and 0.0 <= r["mean_iou_vs_truth"] <= 1.0
        assert r["ids_per_person"] >= 1.0 and r["faces_classified"] <= r["faces_detected"]
    assert data["runs"][0]["recall_vs_every_frame"] > 0.9  # detection on every frame shows what it found
    assert set(data["tracker_ms_per_frame_by_faces"]) == {"1", "8", "32"}
    assert set(data["revealed_ms_per_frame"]) == {"clip", "1080p"}
    # the detector's work: a whole frame each frame at every 1st; at every 6th a sixth, and the
    # looks between rounds at the picture the pan brings in (config.toml's detect_between)
    r1, r6 = data["runs"]
    assert r1["detector_frames_per_frame"] == 1.0 and r1["looks_between_rounds"] == 0
    assert r6["looks_between_rounds"] >= 1 and set(r6["regions_between_rounds"]) <= {"revealed", "confirm"}
    assert 1 / 6 < r6["detector_frames_per_frame"] < 1.0
    one, six = (r["over_phases"] for r in data["runs"])
    assert one["phases"] == 1 and one["recall_vs_truth_mean"] == data["runs"][0]["recall_vs_truth"]
    assert six["phases"] == 6  # the clip started at each of frames 0-5; phase 0 is the run above
    assert six["recall_vs_truth_min"] <= data["runs"][1]["recall_vs_truth"]
    assert six["recall_vs_truth_min"] <= six["recall_vs_truth_mean"] <= 1.0


def test_live_clip_scores_recall_ghosts_and_the_wait_after_each_cut() -> None:
    from benchmarks.live_clip import DEMO, cuts, frames
    from benchmarks.scoring import score_against_reference
    from streamer.types import Box

    assert cuts(frames(DEMO)) == [20, 82, 211]  # the demo's three scene cuts, as the tracker tells them
    a, b = Box(10, 10, 59, 59, 1.0), Box(200, 10, 249, 59, 1.0)
    ref = [[a], [a], [b], [b], [b]]  # a cut at frame 2: another face elsewhere

    def line(n: int, *boxes: Box) -> dict:
        return {"frame": n, "faces": [dict(x.as_dict(), track=1, labels={}) for x in boxes]}

    lines = [line(0, a), line(1, a), line(2, a), line(3), line(4, b)]  # the old box carried over the cut
    r = score_against_reference(lines, ref, [2])
    assert r["recall_vs_every_frame"] == 3 / 5
    assert r["boxes_drawn"] == 4 and r["boxes_on_no_detected_face"] == 1
    assert r["frames_after_cut_until_all_boxed"] == {"2": 2}


def test_reidentify_audit_counts_right_wrong_missed_and_strangers() -> None:
    """``benchmarks.reidentify.count``: new faces against ended tracks, by who they truly are."""
    import numpy as np

    from benchmarks.reidentify import count, nearest_stranger

    a, b, c = (np.eye(128, dtype=np.float32)[i] for i in range(3))  # 1.41 apart
    near_a = a + np.float32(0.1) * b
    # tracks 1 (person 0) and 2 (person 1) ended at t=1; track 3 is person 0 back, 4 person 1 back
    # but far from its old look, 5 a new person (2) near nobody, 6 person 1 back too late
    ended = [(1, 1.0, [a]), (2, 1.0, [b])]
    born = [(3, 2.0, near_a), (4, 2.0, c), (5, 2.0, c), (6, 40.0, b)]
    person = {1: 0, 2: 1, 3: 0, 4: 1, 5: 2, 6: 1}
    got = count([(born, ended, person)], window=30.0, limit=0.25)
    assert got == {"right": 1, "wrong": 0, "missed": 1, "strangers": 0}
    # a limit that takes anyone: person 0 back is still right; 4 and 5 take a stranger's track, and
    # with their own ended tracks taken away, 3, 4 and 5 all would; 6 came back after the window
    loose = count([(born, ended, person)], window=30.0, limit=2.0)
    assert loose == {"right": 1, "wrong": 2, "missed": 0, "strangers": 3}
    assert nearest_stranger([(born, ended, person)], 30.0) == round(float(np.linalg.norm(near_a - b)), 3)


def test_gpu_scenario_helpers() -> None:
    """benchmarks/gpu.py (run on the GPU machine by benchmarks/gpu.sh): frames, sweep bounds, model."""
    from benchmarks.gpu import throughput_model
    from benchmarks.gpu_parts.common import fit, parse
    from benchmarks.gpu_parts.streams import _bounds

    wide = np.full((360, 640, 3), 200, np.uint8)
    boxed = fit(wide, (640, 480))  # 16:9 into 4:3: black bands above and below, the picture unscaled
    assert boxed.shape == (480, 640, 3)
    assert boxed[:60].max() == 0 and boxed[-60:].max() == 0 and boxed[60:420].min() == 200
    assert fit(wide, (1280, 720)).min() == 200
    rows = [
        {"streams": n, "p95_ok": ok, "every_frame": ev}
        for n, ok, ev in ((1, True, True), (2, True, True), (4, True, False), (8, False, False))
    ]
    assert _bounds(rows, "p95_ok") == (4, 8) and _bounds(rows, "every_frame") == (2, 4)
    assert _bounds(rows[:2], "p95_ok") == (2, None)
    det = {"rows": [{"size": "640x480", "batch": 8, "frames_per_s": 95.0}, {"size": "1280x720", "batch": 8}]}
    assert throughput_model(det) == [{"batch": 8, "det_frames_per_s": 95.0, "streams_at_30fps": 3}]
    args = parse(["--quick"])
    assert args.sizes == [(640, 480)] and args.stream_counts == (1, 2)
    assert args.parts == ["detector", "backbone", "streams"]


def test_rates_part_measures_each_variant_in_turn_and_compares_with_the_defaults(monkeypatch) -> None:
    from benchmarks.service import harness, rates
    from benchmarks.service.harness import Service
    from benchmarks.service.options import Options
    from benchmarks.service.summary import markdown

    # the setting reaches the service's config, over the part's own pipeline keys
    svc = Service(classifiers=[], pipeline={"propose": False, "worker_nice": 3})
    assert svc.config.pipeline.propose is False and svc.config.pipeline.worker_nice == 3
    assert svc.config.classifiers == []
    # the parts' one way in passes every option on: --strategy too, and the part's own settings
    got = {}

    async def fake_run(*args):
        got["args"] = args
        return {}

    monkeypatch.setattr(harness, "run", fake_run)
    asyncio.run(harness.run_options(Options(strategy="whole"), 1, [], {"propose": False}))
    assert got["args"][7] == [] and got["args"][-2:] == ("whole", {"propose": False})
    seen = []

    async def window(opts, classifiers, propose):
        seen.append((classifiers, propose))
        rate = 4.0 + 2 * (not propose) + (not classifiers) + len(seen) / 100  # (noise)
        return {
            "detections_per_s": rate,
            "output_fps": 30.0,
            "cpu_service_pct": 50.0,
            "cpu_workers_pct": 120.0,
        }

    monkeypatch.setattr(rates, "_window", window)
    r = rates.run(Options(seconds=1.0), rounds=2)
    assert seen == [(c, p) for _ in range(2) for _, c, p in rates.VARIANTS]  # in turn, round by round
    rows = {x["variant"]: x for x in r["rows"]}
    assert rows["defaults"]["mean"] == pytest.approx(4.03) and rows["defaults"]["vs_defaults"] == 1
    assert rows["no proposals"]["mean"] == pytest.approx(6.05) and rows["no proposals"]["vs_defaults"] == 1.5
    assert rows["neither"]["detections_per_s"] == "7.04 / 7.08"
    machine = {"cpu": "x", "cores": 2, "gpu": None, "keras_backend": "-", "git_commit": "-"}
    data = {"command": "c", "started_at": "t", "duration_s": 1.0, "notes": [], "errors": {}}
    md = markdown(
        {
            **data,
            "scenarios": {"rates": r},
            "machine": machine,
            "options": {"detector": "mmod", "video": "v"},
        },
        "cpu",
    )
    assert "| no classifiers | off | on | 5.02 / 5.06 | 5.04 | 1.25 |" in md
    assert "(proposals on; off: 6.05 / 7.06) | >= 8 Hz with them on | 4.03 / 5.04 |" in md


@pytest.mark.slow
def test_people_named_enrols_the_clearest_of_the_biggest_faces_not_a_wipe_between_shots(shared: Path) -> None:
    from benchmarks.people_named import photo
    from streamer.config import load_config
    from streamer.people.faces import FaceFinder

    clip = shared / "media" / "real" / "bitornobit-meeting.mp4"
    if not clip.exists():
        pytest.skip("the real meeting clip is not in ../shared")
    finder = FaceFinder.from_config(load_config(None, {"demo": {"enabled": False}}, environ={}))
    # the young man's detections (tracker boxes): at 28.16 s a slide zooms in over half his face,
    # and his face is biggest there (138 px); before the wipe it is whole (114 and 127 px)
    at = {
        27.361: [271.0, 16.9, 384.0, 131.1],
        27.661: [311.0, 8.4, 437.0, 135.6],
        28.161: [408.0, -28.2, 545.0, 110.2],
    }
    tracks = {8: {"first_seen": 24.02, "at": at}}
    got = photo(clip, tracks, [8], finder)
    assert got is not None and got["track"] == 8
    assert got["at_s"] in (27.361, 27.661) and got["frontal"] >= 0.8, got
