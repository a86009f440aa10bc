"""Small faces in big frames: recall on 1080p clips with exact truth, regions against the whole frame.

    python -m benchmarks small-faces [--seconds 20] [--runs street,group,4] [--strategies regions,whole]
                                     [--clips DIR] [--out DIR] [--name NAME] [--validate N]
                                     [--planned-every N[,N..] [--planned-latency L[,L..]]
                                      [--planned-classify]] [--clips-only]

Clips: benchmarks/clips/catalog.py (a street camera and a virtual camera over group photos, each
with exact per-frame truth), cached in ``--clips``; runs ``street2`` and ``group2`` play the 4-stream
run's other two clips alone. Each run plays its clips through
``streamer.annotate.annotate_realtime`` (the live pipeline at the clips' own frame rate, N
streams sharing one batcher and workers; config.toml's defaults but for ``pipeline.strategy``)
in a child process (live_runs.py), and scores what a viewer saw (``benchmarks.scoring``):

- recall: truth faces (visible, >= 40 px and >= 80 px wide) carrying an output box with IoU >= 0.5,
  on every published frame once the stream has run 2 s;
- time to first box: from a face's first frame as a visible >= 40 px face to its first matching box;
- CPU per stream: CPU seconds of the child and its worker processes (the whole process tree) while
  the clips played, / streams / seconds played; and the same including start-up (models, workers);
- detector pixels per second per stream (``streamer_detect_pixels_total``);
- output frame rate against the clip's, and the share of the clip's frames published;
- tracks: ids per person, the share of a person's boxes carrying their most shown id, tracks whose
  box was on two people (5 frames each), and boxes of a track on someone other than the person its
  box was on most (they show that person's label); planned runs also count the tracker's switches
  and resumed tracks.

``--planned-every N`` replaces the live runs by a deterministic one per 1-stream clip (planned.py):
detection on every Nth frame in this process, each answer ``--planned-latency`` frames late (the
same every run and on every machine: it compares planners, where the live runs' recall also moves
with the machine's load by +-0.05). One such run moves by up to +-0.06 with the last bits of a
float, so ``--planned-every 7,8,9 --planned-latency 2,3,4`` runs three settings and reports the
mean. ``--planned-classify`` runs them with the classifiers too (labels, and the face identities
that split a track pulled onto someone else); without, boxes only.

``--clips-only`` makes the runs' clips and describes them (with ``--validate N``: their truth
against MMOD at upsample 1 on N whole frames each), and runs nothing.

Writes ``small-faces-<machine>.json`` and ``.md`` (or ``--name``) into ``--out`` (default
benchmarks/results).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.clips.catalog import CACHE, SHARED, describe, make_clip, validate
from benchmarks.clips.truth import Clip
from benchmarks.report import markdown_table, output_args, parser, progress, run_record, save
from benchmarks.scoring import OFF_FACE_IOU, WARMUP_S
from benchmarks.small_faces.live_runs import live_run
from benchmarks.small_faces.planned import planned_run, planned_settings

RUNS = {  # name: the clips (kind, seed) played at once
    "street": [("street", 1)],
    "group": [("group", 1)],
    "street2": [("street", 2)],  # the 4-stream run's other clips, one at a time
    "group2": [("group", 2)],
    "4": [("street", 1), ("group", 1), ("street", 2), ("group", 2)],
}


SCORES = (  # what score_small_faces gives per stream, and runs as the mean or sum over streams
    "recall_ge40",
    "recall_ge80",
    "recall_40to80",
    "boxes_off_face",
    "ids_per_person",
    "main_id_share",
    "tracks_on_two_people",
    "boxes_on_another_person",
)
COLUMNS = (
    "run",
    "strategy",
    *SCORES,
    "track_switches",
    "tracks_resumed",
    "first_box_s_p50",
    "cpu_per_stream",
    "cpu_per_stream_with_startup",
    "detect_mpx_per_s_per_stream",
    "detections_per_s_per_stream",
    "output_fps_min",
    "published_min",
)


def markdown(data: dict[str, Any]) -> str:
    rows = [
        dict(r, run=f"{r['streams']} x " + "+".join(sorted({c.split("-")[0] for c in r["clips"]})))
        for r in data["runs"]
    ]
    per = [
        dict(
            s,
            run=f"{r['streams']} streams",
            strategy=r["strategy"],
            first_box_p50=s["first_box_s"]["p50"],
            first_box_p90=s["first_box_s"]["p90"],
        )
        for r in data["runs"]
        for s in r["per_stream"]
    ]
    cols = (
        "run",
        "strategy",
        "clip",
        *SCORES,
        "first_box_p50",
        "first_box_p90",
        "people",
        "people_found",
        "output_fps",
        "frames_published",
        "frames_in_clip",
    )
    out = [
        f"# Small faces in 1080p, live ({data['machine']['cpu']}, {data['machine']['cores']} cores)\n",
        f"`{data['command']}`, commit {data['machine']['git_commit']}, {data['started_at']}. "
        f"Recall: IoU >= 0.5 against the truth on every published frame after {WARMUP_S:g} s; "
        f"boxes off face: the share of boxes drawn then whose IoU with every true face (hidden, small "
        f"or partly out of view too) is under {OFF_FACE_IOU:g}; "
        "CPU in cores per stream (1.0 = one core busy).\n",
        markdown_table(rows, COLUMNS),
        "\nPer stream:\n",
        markdown_table(per, cols),
    ]
    if data.get("clips"):
        out.append("\nClips:\n")
        cols = ("clip", "frames", "people", "visible_faces_per_frame", "face_px_p10_p50_p90")
        out.append(markdown_table(data["clips"], cols))
    if data.get("validation"):
        out.append("\nTruth against MMOD upsample 1 on whole frames:\n")
        out.append(markdown_table(data["validation"], ("clip", "truth_faces", "found", "agreement", "extra")))
    for note in data.get("notes", []):
        out.append(f"\n- {note}")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = parser("small-faces", __doc__)
    ap.add_argument("--seconds", type=float, default=20.0, help="length of each clip")
    ap.add_argument("--runs", default="street,group,4", help=f"comma-separated, of {', '.join(RUNS)}")
    ap.add_argument("--strategies", default="regions,whole")
    ap.add_argument("--clips", type=Path, default=CACHE, help="clip cache (default .cache/clips)")
    output_args(ap, "small-faces")
    ap.add_argument("--validate", type=int, default=0, help="also check each clip's truth on N frames")
    ap.add_argument(
        "--pipeline",
        default="",
        help="config overrides for every run, e.g. worker_nice=0,region_budget_px=600000 ([pipeline] keys)",
    )
    ap.add_argument("--keep-video", action="store_true", help="write the annotated videos (costs CPU)")
    ap.add_argument(
        "--planned-every",
        default="",
        help="instead of live runs: each clip of the 1-stream runs detected on every Nth frame, "
        "in this process (the same every run: compares planners, not machines); a list (7,8,9) "
        "runs each setting and reports the mean recall over settings and clips",
    )
    ap.add_argument(
        "--planned-latency",
        default="6",
        help="with --planned-every: frames an answer takes (a list pairs with --planned-every's)",
    )
    ap.add_argument(
        "--planned-classify",
        action="store_true",
        help="with --planned-every: classify too (labels, and identities that split a track pulled "
        "onto someone else; slower)",
    )
    ap.add_argument(
        "--clips-only",
        action="store_true",
        help="make and describe the runs' clips (and --validate them), run nothing",
    )
    args = ap.parse_args(argv)

    clips: dict[tuple[str, int], Clip] = {}
    for run in args.runs.split(","):
        for key in RUNS[run]:
            if key not in clips:
                progress(f"clip {key[0]} seed {key[1]}, {args.seconds:g} s")
                clips[key] = make_clip(key[0], key[1], args.seconds, args.clips, SHARED)
    data: dict[str, Any] = run_record("small-faces", argv) | {
        "load_average_at_start": os.getloadavg(),
        "clips": [describe(c) for c in clips.values()],
        "runs": [],
        "notes": [],
    }
    if args.validate:
        data["validation"] = []
        for c in clips.values():
            progress(f"validating {c.name} on {args.validate} frames (MMOD upsample 1, slow)")
            data["validation"].append(validate(c, args.validate))
    overrides = {k: json.loads(v) for k, v in (kv.split("=", 1) for kv in args.pipeline.split(",") if kv)}
    data["pipeline_overrides"] = overrides
    work = Path(tempfile.mkdtemp(prefix="small-faces-"))
    progress(f"live outputs in {work}")
    settings = planned_settings(args.planned_every, args.planned_latency)
    runs = [] if args.clips_only else args.runs.split(",")
    for every, latency in settings:
        for run in runs:
            for strategy in args.strategies.split(",") if len(RUNS[run]) == 1 else []:
                (key,) = RUNS[run]
                progress(f"run {run}, strategy {strategy}, detection every {every}th frame, {latency} late")
                r = planned_run(clips[key], strategy, every, latency, overrides, args.planned_classify)
                r["run"] = run
                data["runs"].append(r)
                progress(
                    f"  recall >=40 {r['recall_ge40']}, >=80 {r['recall_ge80']}, "
                    f"off face {r['boxes_off_face']}, ids/person {r['ids_per_person']}, "
                    f"main id share {r['main_id_share']}, "
                    f"tracks on 2+ people {r['tracks_on_two_people']}, "
                    f"boxes on another {r['boxes_on_another_person']}, "
                    f"switches {r['track_switches']}, resumed {r['tracks_resumed']}"
                )
    if len(settings) > 1:
        for strategy in args.strategies.split(","):
            got = [r["recall_ge40"] for r in data["runs"] if r["strategy"] == strategy]
            if got:
                data["notes"].append(
                    f"{strategy}: mean recall >= 40 px over {len(settings)} settings x "
                    f"{len(got) // len(settings)} clips: {sum(got) / len(got):.3f}"
                )
    for run in runs if not settings else []:
        for strategy in args.strategies.split(","):
            progress(f"run {run} ({len(RUNS[run])} streams), strategy {strategy}")
            r = live_run(
                [clips[k] for k in RUNS[run]], strategy, work / run, overrides, keep_video=args.keep_video
            )
            r["run"] = run
            data["runs"].append(r)
            progress(
                f"  recall >=40 {r['recall_ge40']}, >=80 {r['recall_ge80']}, "
                f"cpu/stream {r['cpu_per_stream']}, Mpx/s/stream {r['detect_mpx_per_s_per_stream']}, "
                f"fps {r['output_fps_min']}"
            )
    data["load_average_at_end"] = os.getloadavg()
    save(args, "small-faces", data, markdown(data))
    return 0
