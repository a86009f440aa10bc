"""Small faces, planned: detection on every Nth frame in this process, each answer L frames late,
the same every run and on every machine (it compares planners, not machines)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.clips.truth import Clip
from benchmarks.scoring import score_small_faces

ROOT = Path(__file__).resolve().parents[2]


def planned_run(
    clip: Clip,
    strategy: str,
    every: int,
    latency: int,
    pipeline: dict[str, Any] | None = None,
    classify: bool = False,
    on_frame: Callable[[Any, int], None] | None = None,
) -> dict[str, Any]:
    """``clip`` through the face stage in this process, detecting (with the config's engine and
    ``strategy``) on every ``every``-th frame, each answer reaching the stage ``latency`` frames
    later: the same every run, whatever the machine's speed or load, so it measures what the
    planner chooses to look at, not how fast the detector is (the live runs measure both).
    ``classify``: with the config's classifiers (labels, and the identities that split a track
    pulled onto someone else); without, boxes only (faster). ``on_frame(stage, n)``: called after
    each frame (to look at the tracks, say)."""
    lines, stage, pixels, wall = planned_lines(
        clip.path, clip.name, clip.fps, strategy, every, latency, pipeline, classify, on_frame
    )
    s = score_small_faces(clip, lines)
    return {
        "strategy": strategy,
        "streams": 1,
        "clips": [clip.name],
        "planned_every": every,
        "planned_latency": latency,
        "classify": classify,
        "pipeline": pipeline or {},
        "wall_s": wall,
        "detect_mpx_per_round": round(pixels / 1e6 / max(1, stage.detections_due), 3) if pixels else None,
        "per_stream": [s],
        "recall_ge40": s["recall_ge40"],
        "recall_ge80": s["recall_ge80"],
        "recall_40to80": s["recall_40to80"],
        "boxes_off_face": s["boxes_off_face"],
        "ids_per_person": s["ids_per_person"],
        "main_id_share": s["main_id_share"],
        "tracks_on_two_people": s["tracks_on_two_people"],
        "boxes_on_another_person": s["boxes_on_another_person"],
        "first_box_s_p50": s["first_box_s"]["p50"],
        # tracks ended because their box had moved onto someone else; ended tracks resumed because
        # their face came back and was recognised (both need --planned-classify: identities)
        "track_switches": stage.tracker.switches,
        "tracks_resumed": stage.tracker.resumed,
    }


def planned_lines(
    path: Path,
    name: str,
    fps: float,
    strategy: str,
    every: int,
    latency: int,
    pipeline: dict[str, Any] | None = None,
    classify: bool = False,
    on_frame: Callable[[Any, int], None] | None = None,
    max_frames: int = 0,
    sync: bool = False,
    busy: bool = False,
    rounds: list[dict[str, Any]] | None = None,
    cost: dict[str, float] | None = None,
) -> tuple[list[dict[str, Any]], Any, float, float]:
    """The video at ``path`` through the face stage as ``planned_run`` says: its ``--detections``
    lines, the stage, the detector pixels looked at, and the wall time.

    ``sync``: as a stream with ``pipeline.sync_output`` (stream.py): the answer for frame t is
    applied on frame t itself (the frames after it were held until it came, and the output is
    ``latency`` frames late), and while it is out the detector is busy: frames t+1 .. t+latency-1
    are not asked whether they are due, frame t+latency (the newest held when the answer comes)
    is. Without: each answer lands ``latency`` frames after its frame, and every frame is asked
    (an idealised detector that takes a frame while another is out); with ``busy`` too, as a live
    stream without sync_output: one frame at the detector at a time, and the frame its answer
    lands on is planned (after the answer) and sent at once (``FaceStage.plan_last``).

    ``rounds``: if given, each detection is appended to it: its frame, the faces found, the
    regions planned and the regions MMOD looked at (HOG's proposals expanded: proposals.py).
    ``cost``: if given, its "mmod" and "hog" grow by the pixels MMOD looked at (the plan's regions
    with HOG's proposals expanded into their verify looks) and the pixels HOG scanned (the plan's
    propose regions); the pixels returned are the plan's regions at full pixels, propose ones too."""
    from collections import deque

    import cv2

    from streamer.annotate import build_engine
    from streamer.config import load_config
    from streamer.pipeline.planner import planner_for
    from streamer.pipeline.tracking import FaceStage, rule_for
    from streamer.types import Detections, Frame

    cfg = load_config(ROOT / "config.toml", environ={})
    p = cfg.pipeline.model_copy(update={"strategy": strategy, **(pipeline or {})})
    engine = build_engine(cfg.model_copy(update={"pipeline": p, **({} if classify else {"classifiers": []})}))
    stage = FaceStage(name, every, rule=rule_for(p), planner=planner_for(p))
    cap = cv2.VideoCapture(str(path))
    lines: list[dict[str, Any]] = []
    waiting: deque[tuple[int, Detections]] = deque()
    pixels = 0.0
    busy_until = -1  # sync, busy: the detector is out until this frame
    looked: list[tuple] = [()]  # the regions MMOD looked at in the last round (``rounds``, ``cost``)
    if rounds is not None or cost is not None:
        expand = engine._proposer.expand

        def expanded(image, plan, *args, **kwargs):  # type: ignore[no-untyped-def]
            looked[0] = expand(image, plan, *args, **kwargs)
            return looked[0]

        engine._proposer.expand = expanded

    def detect(frame: Frame, regions: tuple) -> Detections:
        nonlocal pixels, busy_until
        (res,), _ = engine.run([frame.image], [stage.skip_boxes()], [regions] if regions else None)
        pixels += sum(r.pixels for r in regions) if regions else 0.0
        busy_until = frame.index + max(1, latency)
        if cost is not None:  # (no regions: the whole frame, as the engine scales it)
            h, w = frame.image.shape[:2]
            f = min(1.0, engine.spec.detect_max_side / max(w, h)) if engine.spec.detect_max_side else 1.0
            whole = round(w * f) * round(h * f) * 4**engine.spec.upsample
            cost["mmod"] = cost.get("mmod", 0.0) + (sum(r.pixels for r in looked[0]) if regions else whole)
            cost["hog"] = cost.get("hog", 0.0) + sum(r.pixels for r in regions if r.why == "propose")
        if rounds is not None:
            rounds.append({"frame": frame.index, "faces": res.faces, "planned": regions, "looked": looked[0]})
        looked[0] = ()
        return Detections(name, frame.index, frame.captured_at, res.faces, regions)

    t0 = time.perf_counter()
    n = 0
    while not max_frames or n < max_frames:
        ok, bgr = cap.read()
        if not ok:
            break
        img = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        frame = Frame(name, n, img, n / fps)
        free = n >= busy_until if sync else n > busy_until or not busy
        due = free and stage.due(n)
        regions = stage.prepare(frame, plan=due)
        if due and sync:
            stage.on_detections(detect(frame, regions))
        elif due:
            waiting.append((n + latency, detect(frame, regions)))
        while waiting and waiting[0][0] <= n:
            stage.on_detections(waiting.popleft()[1])
        out = stage.finish(frame, draw=False)
        if busy and not sync and n == busy_until and stage.due(n):  # the answer just landed
            waiting.append((n + latency, detect(frame, stage.plan_last(frame))))
        lines.append({"frame": n, "time_s": round(n / fps, 3), "faces": [f.as_dict() for f in out.faces]})
        if on_frame is not None:
            on_frame(stage, n)
        n += 1
    cap.release()
    if rounds is not None or cost is not None:
        del engine._proposer.expand  # the class's again: a reused engine is not wrapped twice
    return lines, stage, pixels, round(time.perf_counter() - t0, 1)


def planned_settings(every: str, latency: str) -> list[tuple[int, int]]:
    """``--planned-every`` and ``--planned-latency`` as (every, latency) pairs (none: live runs).
    One planned run is deterministic but touchy: a change in the last bits of a float (the flow's
    statistics computed another way) moved one clip from 0.714 to 0.651, so compare planners over
    several settings (7,8,9 with 2,3,4) and take the mean."""
    if not every:
        return []
    es = [int(x) for x in every.split(",")]
    ls = [int(x) for x in latency.split(",")]
    if len(ls) == 1:
        ls = ls * len(es)
    if len(ls) != len(es):
        raise SystemExit("--planned-latency: one value, or as many as --planned-every has")
    return list(zip(es, ls, strict=True))
