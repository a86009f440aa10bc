"""Labels per person on the real clips (benchmarks/real/labels.py): the label a drawn track settles
on, scored against people labelled by time and place, whatever the reference's frame step."""

from __future__ import annotations

import csv

from benchmarks.real.labels import CLASSIFIERS, LABELS, add_up, score_labels
from benchmarks.real.reference import ALL
from streamer.types import Box

FPS = 10.0


def _ref(every: int) -> dict[int, list[Box]]:
    """Two people side by side for 4 s, on every ``every``-th frame."""
    return {n: [Box(100, 100, 160, 160, 1.0), Box(400, 100, 460, 160, 1.0)] for n in range(0, 40, every)}


def _lines(left: list[str], right_track: int | None) -> list[dict]:
    """Drawn track 1 on the left face showing ``left``'s genders over time; track
    ``right_track`` on the right face, never settled (None: no box there)."""
    out = []
    for n in range(40):
        g = left[n * len(left) // 40]
        faces = [
            {
                "left": 101,
                "top": 101,
                "right": 161,
                "bottom": 161,
                "track": 1,
                "labels": {
                    "gender": {"label": g, "p": 0.9},
                    "beard": {"label": "shaved" if g == "male" else "?", "p": 0.9},
                },
            }
        ]
        if right_track is not None:
            faces.append(
                {
                    "left": 400,
                    "top": 100,
                    "right": 460,
                    "bottom": 160,
                    "track": right_track,
                    "labels": {"gender": {"label": "?", "p": 0.0}},
                }
            )
        out.append({"frame": n, "time_s": n / FPS, "faces": faces})
    return out


def _truth(gender_left: str, beard_left: str) -> list[dict]:
    return [
        {
            "clip": "c",
            "from_s": 0.0,
            "to_s": 3.5,
            "at_s": 2.0,
            "cx": 130,
            "cy": 130,
            "width": 61,
            "gender": gender_left,
            "beard": beard_left,
        },
        {
            "clip": "c",
            "from_s": 0.0,
            "to_s": 3.5,
            "at_s": 2.0,
            "cx": 430,
            "cy": 130,
            "width": 61,
            "gender": "female",
            "beard": "",
        },
        {
            "clip": "c",
            "from_s": 0.0,
            "to_s": 3.5,
            "at_s": 2.0,
            "cx": 430,
            "cy": 130,
            "width": 61,
            "gender": "unsure",
            "beard": "",
        },
    ]


def test_the_label_a_track_settles_on_is_scored_right_wrong_or_unsettled() -> None:
    # the left track shows '?' then female, then settles on male: its last settled label counts
    s = score_labels(_lines(["?", "female", "male", "male"], 2), _ref(5), 5, FPS, _truth("male", "shaved"))
    assert (s["gender_right"], s["gender_wrong"], s["gender_unsettled"]) == (1, 0, 1)
    assert (s["beard_right"], s["beard_wrong"], s["not_boxed"]) == (1, 0, 0)
    lines = _lines(["?", "male", "female", "female"], 2)
    s = score_labels(lines, _ref(5), 5, FPS, _truth("male", "unshaved"))
    # labelled female at the end: the gender is wrong, the beard (shown on men only) never settled
    assert (s["gender_right"], s["gender_wrong"], s["beard_wrong"], s["beard_unsettled"]) == (0, 1, 0, 1)


def test_what_a_viewer_sees_is_counted_on_every_reference_frame_of_the_person() -> None:
    # the left man's track shows '?', then female, then male on the 8 reference frames (0, 5 .. 35):
    # 2 unsure, 2 wrong, 4 right; the beard shows (shaved) only while he is shown male
    s = score_labels(_lines(["?", "female", "male", "male"], 2), _ref(5), 5, FPS, _truth("male", "shaved"))
    # the woman on the right: her track shows "?" on all 8 frames
    assert (s["gender_frames_right"], s["gender_frames_wrong"], s["gender_frames_unsure"]) == (4, 2, 2 + 8)
    assert (s["beard_frames_right"], s["beard_frames_wrong"], s["beard_frames_unsure"]) == (4, 0, 4)
    assert add_up([s, s])["gender_frames_wrong"] == 4


def test_people_are_found_by_time_and_place_on_a_reference_rebuilt_with_another_step() -> None:
    for every in (4, 5, 8):
        s = score_labels(_lines(["male"], None), _ref(every), every, FPS, _truth("male", "unsure"))
        # the unsure row is left out; the right face has no drawn track
        assert (s["gender_right"], s["not_boxed"], s["truth_unmatched"], len(s["people"])) == (1, 1, 0, 2)
        assert s["beard_right"] + s["beard_wrong"] + s["beard_unsettled"] == 0
    assert add_up([s, s])["gender_right"] == 2


def test_a_label_settled_after_the_persons_last_reference_box_counts_until_the_track_moves_on() -> None:
    # the reference loses the left face after 1.5 s; the track on it settles (a detection's
    # latency later) at 2 s, then at 3 s it is on the other reference face, labelled female there
    ref = {n: b[1:] if n > 15 else b for n, b in _ref(5).items()}
    lines = _lines(["?", "?", "male", "male"], None)
    for d in lines[30:]:
        d["faces"][0].update(left=400, right=460, labels={"gender": {"label": "female", "p": 0.9}})
    s = score_labels(lines, ref, 5, FPS, [{**_truth("male", "unsure")[0], "at_s": 1.0, "to_s": 1.5}])
    assert (s["gender_right"], s["gender_wrong"], s["gender_unsettled"]) == (1, 0, 0)


def test_every_row_of_labels_csv_names_a_clip_and_labels_the_scorer_reads() -> None:
    # a typo (a clip's stem, "Male", a beard on a woman, at_s outside the span) silently drops or
    # mislabels a person: the scorer skips values it does not know
    with LABELS.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows
    for r in rows:
        assert r["clip"] in ALL, r
        assert r["gender"] in (*CLASSIFIERS["gender"], "unsure"), r
        assert r["beard"] in ((*CLASSIFIERS["beard"], "unsure") if r["gender"] == "male" else ("",)), r
        assert float(r["from_s"]) <= float(r["at_s"]) <= float(r["to_s"]), r
        assert float(r["width"]) > 0, r
