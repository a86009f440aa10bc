"""Small faces in a 1080p frame (issue #13): a generated street clip, its truth, and the live pipeline.

The clip (benchmarks/clips/catalog.py, kind ``street-lite``): people 26-140 px wide walking towards
a static 1080p camera, crossing it or standing, with exact per-frame truth boxes.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.clips.catalog import make_clip, validate
from benchmarks.clips.truth import Clip
from benchmarks.scoring import read_detection_lines
from streamer.track.matching import iou_matrix, match

ROOT = Path(__file__).resolve().parents[1]
SMALL = (40, 70)  # the faces a 640-px whole-frame detector (upsample 0: faces of 240 px and more) cannot see

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory, shared: Path) -> Clip:
    return make_clip("street-lite", 3, 8.0, tmp_path_factory.mktemp("clips"), shared)


def small_people_found(clip: Clip, lines: list[dict]) -> set[int]:
    """People shown with a box (IoU >= 0.5 with their truth) while their face was 40-70 px wide."""
    found = set()
    for line in lines:
        n = line["frame"]
        small = [f for f in clip.truth[n] if f.visible and SMALL[0] <= f.width <= SMALL[1]]
        got = [(d["left"], d["top"], d["right"], d["bottom"]) for d in line["faces"]]
        m = iou_matrix([(f.box.left, f.box.top, f.box.right, f.box.bottom) for f in small], got)
        pairs, _, _ = match(m, 0.5)
        found |= {small[i].person for i, _ in pairs}
    return found


def annotate_realtime(clip: Clip, out: Path, strategy: str) -> list[dict]:
    """``streamer annotate --realtime`` with the default config but ``strategy``, no classifiers
    (boxes are what is tested, and the workers start sooner) and the worker at the test's own
    niceness (on a busy machine a niced worker detects next to nothing in a few seconds)."""
    config = out / f"{strategy}.toml"
    config.write_text(f'[pipeline]\nstrategy = "{strategy}"\nworker_nice = 0\n')
    detections = out / f"{strategy}.jsonl"
    cmd = [sys.executable, "-m", "streamer", "annotate", str(clip.path), "--config", str(config)]
    cmd += ["--output", str(out / f"{strategy}.avi"), "--detections", str(detections), "--realtime"]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return read_detection_lines(detections)


def test_truth_matches_mmod_upsample_1_on_a_whole_frame(clip: Clip) -> None:
    """The truth boxes are where dlib's detector, run on the whole decoded 1080p frame at
    upsample 1, finds the faces of 40 px and more."""
    v = validate(clip, frames=1)
    assert v["truth_faces"] >= 3, v
    assert v["agreement"] >= 0.9, v
    assert v["extra"] <= 1, v  # no face the truth lacks (the background has none)


def test_realtime_finds_small_faces_the_whole_frame_misses(clip: Clip, tmp_path: Path) -> None:
    people = {
        f.person for faces in clip.truth for f in faces if f.visible and SMALL[0] <= f.width <= SMALL[1]
    }
    assert len(people) >= 3  # the clip has what the test needs
    for _ in range(3):  # (a machine loaded by other work can leave an 8 s realtime run no round there)
        regions = annotate_realtime(clip, tmp_path, "regions")
        if found := small_people_found(clip, regions):
            break
    whole = annotate_realtime(clip, tmp_path, "whole")
    assert regions and whole
    assert found, "strategy regions found none of the 40-70 px faces in three realtime runs"
    assert not small_people_found(clip, whole), "the 640-px whole frame should not see 40-70 px faces"


def test_planned_run_is_the_same_every_time_and_regions_beat_the_whole_frame(clip: Clip) -> None:
    """``python -m benchmarks small-faces --planned-every N`` (detection on every Nth frame, answers a few
    frames late, in one process) gives the same recall on every run, so planners can be compared
    without the live runs' noise; on small faces regions find what the whole frame cannot."""
    from benchmarks.small_faces.planned import planned_run

    first = planned_run(clip, "regions", 8, 6)
    again = planned_run(clip, "regions", 8, 6)
    whole = planned_run(clip, "whole", 8, 6)
    assert first["recall_ge40"] == again["recall_ge40"]
    assert first["per_stream"][0]["first_box_s"] == again["per_stream"][0]["first_box_s"]
    assert first["recall_40to80"] >= 0.3 > (whole["recall_40to80"] or 0.0)


def test_planned_settings_pair_every_with_latency() -> None:
    from benchmarks.small_faces.planned import planned_settings

    assert planned_settings("", "6") == []  # live runs
    assert planned_settings("8", "3") == [(8, 3)]
    assert planned_settings("7,8,9", "2,3,4") == [(7, 2), (8, 3), (9, 4)]
    assert planned_settings("7,8", "6") == [(7, 6), (8, 6)]
    with pytest.raises(SystemExit):
        planned_settings("7,8,9", "2,3")


def test_boxes_off_face_counts_boxes_on_no_true_face_hidden_ones_included() -> None:
    """``boxes_off_face``: the share of drawn boxes overlapping no true face by IoU 0.3, where a
    hidden or small true face still counts as a face (a box on it is not a box on nothing)."""
    from benchmarks.clips.truth import TruthFace
    from benchmarks.scoring import score_small_faces as score
    from streamer.types import Box

    seen = TruthFace(0, Box(100, 100, 149, 149, 1.0), True)
    hidden = TruthFace(1, Box(400, 100, 449, 149, 1.0), False)
    clip = Clip("unit", Path("unit.mp4"), 1.0, (1920, 1080), [[seen, hidden], [seen, hidden]])

    def box(x: int, y: int = 100) -> dict:
        return {"left": x, "top": y, "right": x + 49, "bottom": y + 49}

    lines = [
        {"frame": 0, "faces": [box(100), box(400), box(900)]},  # on the face, on the hidden one, on nothing
        {"frame": 1, "faces": [box(120), box(100, 160)]},  # IoU 0.43 with the face; beside it (IoU 0)
    ]
    s = score(clip, lines, warmup_s=0.0)
    assert s["boxes_drawn"] == 5
    assert s["boxes_off_face"] == 0.4
    assert s["recall_ge40"] == 0.5  # the hidden face is not scored; the shifted box misses at IoU 0.5


def test_a_track_going_on_with_someone_else_is_counted() -> None:
    """``boxes_on_another_person``: boxes of a track on someone other than the person it was on most
    (they show that person's label); ``tracks_on_two_people`` (5 frames each) and ids per person."""
    from benchmarks.clips.truth import TruthFace
    from benchmarks.scoring import SWITCH_FRAMES
    from benchmarks.scoring import score_small_faces as score
    from streamer.types import Box

    n = SWITCH_FRAMES + 3
    her, him = Box(100, 100, 149, 149, 1.0), Box(400, 100, 449, 149, 1.0)
    frames = [[TruthFace(0, her, True), TruthFace(1, him, True)] for _ in range(2 * n)]
    clip = Clip("unit", Path("unit.mp4"), 1.0, (1920, 1080), frames)

    def on(b: Box, track: int) -> dict:
        return {"left": b.left, "top": b.top, "right": b.right, "bottom": b.bottom, "track": track}

    # track 1 on her, then on him (his own track 2 ended); then a new track 3 on him
    lines = [{"frame": i, "faces": [on(her, 1), on(him, 2)]} for i in range(n)]
    lines += [{"frame": n + i, "faces": [on(him, 1 if i < n - 1 else 3)]} for i in range(n)]
    s = score(clip, lines, warmup_s=0.0)
    assert s["boxes_on_another_person"] == n - 1
    assert s["tracks_on_two_people"] == 1
    assert s["ids_per_person"] == 2.0  # her: 1; him: 2, 1 and 3
    assert s["main_id_share"] == round((n + n) / (n + 2 * n), 4)  # her track 1; his 2 (n of his 2n)
    assert s["recall_ge40"] == (2 * n + n) / (4 * n)  # she has no box once hers went with him
    short = score(clip, lines[: n + SWITCH_FRAMES - 1], warmup_s=0.0)  # on him for 4 frames only
    assert short["tracks_on_two_people"] == 0 and short["boxes_on_another_person"] == SWITCH_FRAMES - 1
    # a track on him for its first 2 frames (a box carried onto a neighbour), then on her: 2 wrong
    late = [{"frame": i, "faces": [on(him if i < 2 else her, 1)]} for i in range(2 * n)]
    assert score(clip, late, warmup_s=0.0)["boxes_on_another_person"] == 2
