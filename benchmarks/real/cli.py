"""Real footage: faces found, followed and labelled on real clips, against the detector offline.

    python -m benchmarks real [--clips a,b,..] [--held-out] [--runs 1] [--planned-every 8]
                              [--planned-latency 6] [--planned-sync off,busy,on]
                              [--live-sync config|on|off|both] [--no-live] [--no-planned]
                              [--misses] [--keep DIR] [--out DIR] [--name STEM]

Clips: ``../shared/media/real`` (reference.py's CLIPS: those with faces >= 40 px; each its first
seconds); ``--held-out``: the rest of the longer clips (reference.py's HELD_OUT, cut from a key
frame by segment.py), kept aside from the tuning. Reference: the detector at the clip's full
resolution, upsample 1, on every Nth frame, cached in ``.cache/real`` (reference.py; computed on
first use: minutes a clip on 2 cores). Reference tracks: reference boxes linked from one reference
frame to the next (scoring.link_tracks), never across a scene cut (reference.scene_cuts: the
tracker's own test, on every frame).

Each clip is played ``--runs`` times live (``streamer annotate --realtime`` with config.toml's
defaults, in a child process whose CPU is measured: detection as often as the machine allows,
frames skipped as a live stream skips them) and once planned (the face stage in-process with the
classifiers, detection on every ``--planned-every``-th frame, each answer ``--planned-latency``
frames late: about what a quiet 2-core machine gets on a 720p stream, the same on every
machine); ``--planned-sync`` (a row each): off, without ``pipeline.sync_output`` (each answer lands that
many frames after its frame; the detector takes a frame while another is out); busy, the same
with one frame at the detector at a time, as live; on, with it (each answer on its own frame,
the output late by ``output_delay_s`` = latency / fps; planned.py). Live runs play with config.toml's
``sync_output`` (auto: on for a file), or as ``--live-sync`` says. Scored on the reference frames
(``benchmarks.scoring.score_real``): recall of reference faces >= 40 px and >= 24 px from 1 s on
(and >= 40 px from 0 s); boxes off face: drawn boxes wholly inside the frame whose IoU with every
reference box is under 0.3, and with every face a closer look there finds (closer.py: the detector
on the box enlarged; a box on such a face counts in boxes_on_unreferenced_faces), nor with a box judged
a face by looking (looked.py: a head bowed or turned that the detector does not see; boxes off face
that no judgement covers are counted in boxes_off_unjudged), from 1 s on; the
median seconds from a reference track's first box >= 40 px to the first drawn box on it (IoU
>= 0.5), for faces there at the start and for faces coming in later (resolution N frames); tracks
never boxed; drawn track ids per reference track; IoU and width ratio (drawn / reference) of the
drawn box over the later half of reference tracks that grow 1.3x (people coming nearer); label
changes per drawn track; the label each person's drawn track settled on against labels.csv, right,
wrong or unsettled (labels.py); output frame rate; CPU per stream (cores), detector pixels per
frame (detect_px_per_frame: the live service's own count, HOG's scan at PROPOSE_COST, MMOD's looks
at HOG's proposals left out) and detector rounds per second (live); planned: the pixels MMOD looked
at per frame (mmod_px_per_frame, HOG's proposals' verify looks in), the pixels HOG scanned
(hog_px_per_frame) and the two as one cost (cost_px_per_frame: MMOD's plus HOG's at
PROPOSE_COST). Live runs move with the machine's load: compare runs of one invocation.
``--misses``: each planned row's missed faces (>= 40 px, from 1 s on) counted by cause (misses.py:
on the face's first reference frame, after a cut, a round looked and MMOD missed it, only HOG's
scan covered it, no round looked, a track hid or lost it, a box off it; the JSON lists each missed
face). Writes real-<machine>.json and .md.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.real import looked
from benchmarks.real import misses as why_missed
from benchmarks.real.closer import closer_look
from benchmarks.real.labels import CLASSIFIERS, FRAME_OUTCOMES, OUTCOMES, add_up, load_truth, score_labels
from benchmarks.real.reference import ALL, CLIPS, HELD_OUT, RealClip, clip_info, reference, scene_cuts
from benchmarks.real.segment import start_of
from benchmarks.report import markdown_table, output_args, parser, progress, run_record, save
from benchmarks.scoring import read_detection_lines, score_real
from benchmarks.small_faces.live_runs import play
from benchmarks.small_faces.planned import planned_lines
from streamer.detect.proposals import PROPOSE_COST

COLUMNS = (
    "run",
    "output_delay_s",
    "recall_ge40",
    "recall_ge24",
    "recall_ge40_from_0s",
    "boxes_off_face",
    "boxes_on_unreferenced_faces",
    "boxes_off_unjudged",
    "first_box_start_p50",
    "first_box_new_p50",
    "tracks_never_boxed",
    "ids_per_track",
    "nearer_iou",
    "nearer_width_ratio",
    "label_changes_per_track",
    "output_fps",
    "cpu_per_stream",
    "detect_px_per_frame",
    "mmod_px_per_frame",
    "hog_px_per_frame",
    "cost_px_per_frame",
    "detections_per_s",
)


def run_clip(
    name: str,
    runs: int,
    planned: tuple[int, int] | None,
    work: Path,
    modes: tuple[str, ...] = ("off",),
    live_syncs: tuple[str, ...] = ("",),
    misses: bool = False,
) -> dict[str, Any]:
    clip = ALL[name]
    fps, _, w, h = clip_info(clip.path)
    ref = reference(clip, log=progress)
    cuts = scene_cuts(clip)
    rows: list[dict[str, Any]] = []
    last = max(ref) + 1
    truth = load_truth(name)
    for k, sync in ((k, x) for k in range(runs) for x in live_syncs):
        tag = f" sync {sync}" if sync else ""
        m = play([clip.path], work / name, {"sync_output": sync} if sync else {}, f"live{k}{sync}")
        lines = [d for d in read_detection_lines(Path(m.pop("jsonl")[0])) if d["frame"] < last]
        s = _score(lines, ref, clip, cuts)
        rate = m["detections_per_s_per_stream"]
        labels = score_labels(lines, ref, clip.every, fps, truth)
        row = {"run": f"live {k + 1}{tag}", **_flat(s), **m, "detections_per_s": rate, "labels": labels}
        rows.append(row)
        progress(f"{name} live {k + 1}{tag}: {_brief(rows[-1])}")
    for mode in modes if planned else ():
        assert planned is not None
        every, latency = planned
        sync = mode == "on"
        rounds: list[dict[str, Any]] | None = [] if misses else None
        states: dict[int, list[dict[str, Any]]] = {}  # reference frame -> its tracks (--misses)
        on_frame = why_missed.keep_states(states, set(ref)) if misses else None
        cost: dict[str, float] = {}
        lines, _, _, wall = planned_lines(
            clip.path, name, fps, "regions", every, latency, classify=True, max_frames=last, sync=sync,
            busy=mode == "busy", on_frame=on_frame, rounds=rounds, cost=cost,
        )  # fmt: skip
        tag = {"off": "", "busy": " busy", "on": " sync"}[mode]
        (work / name).mkdir(parents=True, exist_ok=True)
        (work / name / f"planned{tag.strip()}.jsonl").write_text("".join(json.dumps(d) + "\n" for d in lines))
        s = _score(lines, ref, clip, cuts)
        rows.append(
            {
                "run": f"planned {every}/{latency}{tag}",
                "output_delay_s": round(latency / fps, 3) if sync else 0.0,
                **_flat(s),
                "wall_s": wall,
                **per_frame(cost, len(lines)),
                "labels": score_labels(lines, ref, clip.every, fps, truth),
            }
        )
        if rounds is not None:  # (with sync_output each answer lands on its own frame: no latency)
            lost = why_missed.classify(
                lines, rounds, states, ref, clip.every, fps, 0 if sync else latency, (w, h), cuts
            )
            rows[-1]["misses"] = why_missed.count(lost)
            rows[-1]["missed_faces"] = lost  # (frame, box, width, cause): the JSON only
        progress(f"{name} planned{tag}: {_brief(rows[-1])}")
    faces = sum(len(b) for b in ref.values())
    return {
        "clip": name,
        "note": clip.note,
        **({"source": clip.source, "starts_at_s": start_of(clip.path)} if clip.source else {}),
        "size": f"{w}x{h}",
        "fps": round(fps, 2),
        "seconds": round(last / fps, 1),
        "reference_every": clip.every,
        "reference_upsample": clip.upsample,
        "reference_frames": len(ref),
        "reference_faces": faces,
        "scene_cuts": cuts,
        "rows": rows,
    }


def _score(lines: list[dict[str, Any]], ref: dict[int, list[Any]], clip: RealClip, cuts: list[int]) -> dict:
    """``score_real`` with the faces a closer look finds and those judged by looking (looked.py) not
    off face, and the boxes off face nobody judged counted (``boxes_off_unjudged``)."""
    fps, _, w, h = clip_info(clip.path)
    closer = closer_look(clip, lines, ref)
    s = score_real(lines, ref, clip.every, fps, (w, h), looked.with_faces(closer, clip.stem), cuts)
    s["boxes_off_unjudged"] = sum(map(len, looked.unjudged(lines, ref, clip, closer).values()))
    return s


def per_frame(cost: dict[str, float], frames: int) -> dict[str, int]:
    """A planned run's detection work per frame: the pixels MMOD looked at (the plan's regions, HOG's
    proposals as the verify squares MMOD looked at), the pixels HOG scanned, and the two as one
    cost in MMOD pixels (HOG's at proposals.PROPOSE_COST each, as the planner's budget counts them)."""
    mmod, hog = cost.get("mmod", 0.0), cost.get("hog", 0.0)
    n = max(1, frames)
    return {
        "mmod_px_per_frame": round(mmod / n),
        "hog_px_per_frame": round(hog / n),
        "cost_px_per_frame": round((mmod + hog * PROPOSE_COST) / n),
    }


def _flat(s: dict[str, Any]) -> dict[str, Any]:
    out = dict(s)
    out["first_box_start_p50"] = s["first_box_s_start"]["p50"]
    out["first_box_new_p50"] = s["first_box_s_new"]["p50"]
    return out


def _brief(r: dict[str, Any]) -> str:
    keys = ("recall_ge40", "boxes_off_face", "first_box_start_p50", "first_box_new_p50", "ids_per_track")
    return ", ".join(f"{k} {r.get(k)}" for k in keys)


def main(argv: list[str] | None = None) -> int:
    ap = parser("real", __doc__)
    ap.add_argument("--clips", default=None, help="comma-separated (default: reference.py's CLIPS)")
    ap.add_argument(
        "--held-out",
        action="store_true",
        help="the held-out parts of the longer clips (reference.py's HELD_OUT), never used in tuning",
    )
    ap.add_argument("--runs", type=int, default=1, help="live runs per clip")
    ap.add_argument("--planned-every", type=int, default=8)
    ap.add_argument("--planned-latency", type=int, default=6)
    ap.add_argument(
        "--planned-sync",
        default="off,on",
        help="planned runs, a row each: off (without pipeline.sync_output, the detector idealised: "
        "it takes a frame while another is out), busy (without, one frame at the detector as live), "
        "on (with sync_output); comma-separated",
    )
    ap.add_argument(
        "--live-sync",
        choices=("config", "on", "off", "both"),
        default="config",
        help="live runs with config.toml's pipeline.sync_output, on, off, or both (two rows a run)",
    )
    ap.add_argument("--no-live", action="store_true")
    ap.add_argument("--no-planned", action="store_true")
    ap.add_argument(
        "--misses", action="store_true", help="planned rows: missed faces counted by cause (misses.py)"
    )
    ap.add_argument("--keep", type=Path, default=None, help="keep the runs' detection lines here")
    output_args(ap, "real")
    args = ap.parse_args(argv)
    planned = None if args.no_planned else (args.planned_every, args.planned_latency)
    runs = 0 if args.no_live else args.runs
    names = args.clips or ",".join(HELD_OUT if args.held_out else CLIPS)
    if unknown := [c for c in names.split(",") if c and c not in ALL]:
        raise SystemExit(f"--clips: unknown {unknown}; known: {', '.join(ALL)}")
    with tempfile.TemporaryDirectory() as tmp:
        work = args.keep or Path(tmp)
        modes = tuple(x for x in args.planned_sync.split(",") if x)
        if not set(modes) <= {"off", "busy", "on"}:
            raise SystemExit("--planned-sync: off, busy, on, comma-separated")
        live = {"config": ("",), "on": ("on",), "off": ("off",), "both": ("off", "on")}[args.live_sync]
        clips = [run_clip(c, runs, planned, work, modes, live, args.misses) for c in names.split(",") if c]
    result = run_record("real", argv) | {"clips": clips}
    save(args, "real", result, markdown(result))
    return 0


def markdown(data: dict[str, Any]) -> str:
    m = data["machine"]
    parts = [
        f"# Real footage ({m['cpu']}, {m['cores']} cores)\n\n"
        f"`{data['command']}`, {data['started_at']}, commit {m['git_commit']}. Reference: the "
        "detector at full resolution (upsample 1) on every Nth frame; recall from 1 s on (IoU >= "
        "0.5); boxes off face: drawn boxes wholly inside the frame with IoU < 0.3 against every "
        "reference box, every face a closer look there finds and every box judged a face by looking "
        "(benchmarks/real/looked.csv), from 1 s on (boxes on those faces: boxes_on_unreferenced_faces; "
        "boxes off face nobody judged by looking: boxes_off_unjudged); first box: seconds from a reference "
        "track's first box >= 40 px to the first drawn box on it (median; start: faces there at "
        "frame 0, new: faces coming in); nearer: the later half of reference tracks growing 1.3x; "
        "CPU per stream in cores (live); detection work per frame: detect_px (live: the service's "
        "count, HOG's scan at 1/6, its proposals' looks left out), mmod_px (planned: the pixels MMOD "
        "looked at, the looks at HOG's proposals in), hog_px (planned: the pixels HOG scanned), "
        "cost_px (mmod_px + hog_px / 6). Goals: recall_ge40 >= 0.85, boxes_off_face <= 0.05, "
        "first box <= 0.5 s, ids_per_track <= 1.3, output at the clip's frame rate.\n"
    ]
    for c in data["clips"]:
        parts.append(
            f"\n## {c['clip']} ({c['size']}, {c['fps']} fps, first {c['seconds']} s{_part(c)}): "
            f"{c['note']}\n\n"
            f"Reference every {c['reference_every']}th frame: {c['reference_frames']} frames, "
            f"{c['reference_faces']} faces; scene cuts at frames {c.get('scene_cuts', [])}.\n\n"
            + markdown_table(c["rows"], COLUMNS)
        )
    return "".join(parts) + labels_markdown(data["clips"]) + misses_markdown(data["clips"])


def _part(c: dict[str, Any]) -> str:
    return f" of {c['source']} from {c['starts_at_s']} s" if c.get("source") else ""


def misses_markdown(clips: list[dict[str, Any]]) -> str:
    """The planned rows' missed faces by cause (``--misses``), per clip and run."""
    rows = [
        {"clip": c["clip"], "run": r["run"], "missed": sum(r["misses"].values()), **r["misses"]}
        for c in clips
        for r in c["rows"]
        if "misses" in r
    ]
    if not rows:
        return ""
    return (
        "\n## Missed faces by cause\n\nReference faces >= 40 px from 1 s on that no drawn box matched, "
        "each by its first cause that holds (benchmarks/real/misses.py): box_off, a drawn box at IoU "
        "0.1-0.5; hidden, a track's box on it not drawn; lost, found since it came but no track on "
        "it; after_cut, no answer of the scene in yet; new, its first reference frame; not_found, "
        "looked at where MMOD sees it; not_proposed, only HOG's scan covered it; not_looked, no "
        "round looked there finely enough.\n\n"
        + markdown_table(rows, ("clip", "run", "missed", *why_missed.CAUSES))
    )


LABEL_COLUMNS = ("clip", "run", *(f"{c}_{o}" for c in CLASSIFIERS for o in OUTCOMES), "not_boxed")
FRAME_COLUMNS = ("clip", "run", *(f"{c}_{o}" for c in CLASSIFIERS for o in FRAME_OUTCOMES))


def labels_markdown(clips: list[dict[str, Any]]) -> str:
    """The labels per person (benchmarks/real/labels.py), per clip and run, and their sums per run."""
    rows, runs = [], {}
    for c in clips:
        for r in c["rows"]:
            if "labels" in r:
                rows.append({"clip": c["clip"], "run": r["run"], **r["labels"]})
                runs.setdefault(r["run"], []).append(r["labels"])
    if not rows:
        return ""
    rows += [{"clip": "total", "run": run, **add_up(ls)} for run, ls in runs.items()]
    return (
        "\n## Labels per person\n\nPeople labelled by looking (benchmarks/real/labels.csv; unsure ones "
        "left out); per classifier, the label the drawn track on them settled on: right, wrong, or "
        'never settled ("unsettled"; the beard of a man labelled female counts here); not boxed: no '
        "drawn track on them.\n\n" + markdown_table(rows, LABEL_COLUMNS) + "\n\nWhat a viewer sees on the "
        "way: on the reference frames where that drawn track is on the person, the label it shows "
        'then: right, wrong or "?" (frames counted).\n\n' + markdown_table(rows, FRAME_COLUMNS)
    )
