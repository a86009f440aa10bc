"""Where the re-identification limit comes from: new faces against the tracks ended before them.

    python -m benchmarks reidentify [--runs street,street2,group,group2] [--every 12] [--latency 24]
                                    [--window 30] [--limits 0.2,0.25,0.3,0.35] [--seconds 20]
                                    [--out DIR]

Each 1080p clip (benchmarks/clips/catalog.py, exact truth) goes through the face stage as in
``small-faces --planned-every N --planned-classify``, with re-identification off, so
every face that came back starts a track of its own. Each track is given the person its boxes lay
on most (by the truth). Then every track born with a face descriptor is put against every track
ended in the ``--window`` seconds before it, as ``streamer/track/identity.recognised`` would see
them, and per limit it counts:

- right: recognised as an ended track of the same person;
- wrong: recognised as someone else's;
- missed: not recognised though one of its person's ended tracks was there;
- strangers: wrong when the person's own ended tracks are taken away (a face never seen before,
  with only strangers remembered: the case where a wrong "same" costs most);

and the nearest a new face came to a stranger's ended track.

Writes reidentify-<machine>.json and .md (``--out``, default benchmarks/results).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from benchmarks.clips.catalog import CACHE, SHARED, make_clip
from benchmarks.report import markdown_table, output_args, parser, progress, run_record, save
from benchmarks.scoring import xyxy
from benchmarks.small_faces.cli import RUNS
from benchmarks.small_faces.planned import planned_run
from streamer.track.identity import CLEARLY_NEARER, apart, recognised
from streamer.track.matching import iou_matrix, match


def audit(name: str, every: int, latency: int, seconds: float = 20.0) -> tuple[list, list, dict[int, int]]:
    """(born: (track, t, identity), ended: (track, t, identities), track -> person) for one clip."""
    (key,) = RUNS[name]
    clip = make_clip(key[0], key[1], seconds, CACHE, SHARED)
    born: list[tuple[int, float, Any]] = []
    ended: list[tuple[int, float, list[Any]]] = []
    on: dict[int, Counter[int]] = defaultdict(Counter)
    live: dict[int, Any] = {}

    def look(stage: Any, n: int) -> None:
        t = n / clip.fps
        now = {tr.id: tr for tr in stage.tracker.tracks}
        for tid, tr in now.items():
            if tid not in live and tr.identities:
                born.append((tid, t, tr.identities[0]))
        for tid, tr in live.items():
            if tid not in now and tr.confirmed and tr.identities:
                ended.append((tid, t, list(tr.identities)))
        live.clear()
        live.update(now)
        faces = [f for f in clip.truth[n] if f.visible]
        pairs, _, _ = match(iou_matrix([xyxy(f.box) for f in faces], [xyxy(f.box) for f in stage.faces]), 0.5)
        for i, j in pairs:
            on[int(stage.faces[j].track)][faces[i].person] += 1

    planned_run(clip, "regions", every, latency, {"reidentify_s": 0}, classify=True, on_frame=look)
    return born, ended, {tid: c.most_common(1)[0][0] for tid, c in on.items()}


def count(clips: list[tuple], window: float, limit: float) -> dict[str, int]:
    out = Counter(right=0, wrong=0, missed=0, strangers=0)
    for born, ended, person in clips:
        for tid, t, ident in born:
            if tid not in person:
                continue
            cands = [(e, ids) for e, te, ids in ended if te <= t and t - te <= window and e in person]
            if not cands:
                continue
            k = recognised(ident, [ids for _, ids in cands], limit, CLEARLY_NEARER)
            own = any(person[e] == person[tid] for e, _ in cands)
            if k is None:
                out["missed"] += own
            else:
                out["right" if person[cands[k][0]] == person[tid] else "wrong"] += 1
            others = [ids for e, ids in cands if person[e] != person[tid]]
            out["strangers"] += bool(others) and recognised(ident, others, limit, CLEARLY_NEARER) is not None
    return dict(out)


def nearest_stranger(clips: list[tuple], window: float) -> float:
    """The nearest a new face came to a stranger's ended track (its nearest identity)."""
    d = [
        apart(ids, ident)
        for born, ended, person in clips
        for tid, t, ident in born
        if tid in person
        for e, te, ids in ended
        if te <= t and t - te <= window and e in person and person[e] != person[tid]
    ]
    return round(min(d), 3) if d else float("inf")


def main(argv: list[str] | None = None) -> int:
    ap = parser("reidentify", __doc__)
    ap.add_argument("--runs", default="street,street2,group,group2")
    ap.add_argument("--every", type=int, default=12)
    ap.add_argument("--latency", type=int, default=24)
    ap.add_argument("--window", type=float, default=30.0, help="seconds an ended track is remembered")
    ap.add_argument("--limits", default="0.2,0.25,0.3,0.35")
    ap.add_argument("--seconds", type=float, default=20.0, help="length of each clip (as small-faces')")
    output_args(ap, "reidentify")
    args = ap.parse_args(argv)

    clips = []
    for name in args.runs.split(","):
        progress(f"{name}: detection every {args.every}th frame, {args.latency} late, re-identification off")
        clips.append(audit(name, args.every, args.latency, args.seconds))
    rows = [{"limit": float(x), **count(clips, args.window, float(x))} for x in args.limits.split(",")]
    data = run_record("reidentify", argv) | {
        "runs": args.runs.split(","),
        "every": args.every,
        "latency": args.latency,
        "window_s": args.window,
        "seconds": args.seconds,
        "rows": rows,
        "nearest_stranger": nearest_stranger(clips, args.window),
    }
    md = (
        "# Re-identification: new faces against the tracks ended before them\n\n"
        f"`{data['command']}`, {data['started_at']}, commit {data['machine']['git_commit']}; detection "
        f"every {args.every}th frame, {args.latency} frames late, ended tracks remembered "
        f"{args.window:g} s.\n\n"
    ) + markdown_table(rows, ("limit", "right", "wrong", "missed", "strangers"))
    md += f"\nThe nearest a new face came to a stranger's ended track: {data['nearest_stranger']}\n"
    save(args, "reidentify", data, md)
    return 0
