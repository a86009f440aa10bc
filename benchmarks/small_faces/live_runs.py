"""Small faces, live: clips played at their own frame rate through the live pipeline, in a child
process whose CPU (and its workers') is measured; what a viewer saw is scored against the truth."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.clips.truth import Clip
from benchmarks.processes import tree_cpu_s
from benchmarks.scoring import read_detection_lines, score_small_faces

ROOT = Path(__file__).resolve().parents[2]


def _metric_sum(counter: Any) -> float:
    return float(sum(s.value for m in counter.collect() for s in m.samples if s.name.endswith("_total")))


def child(spec_path: Path) -> int:
    """Run one live measurement (in its own process, so its CPU is its own) and write its samples."""
    import aiortc  # noqa: F401  (before TensorFlow: pylibsrtp segfaults otherwise)

    import streamer.annotate as annotate
    from streamer.config import load_config
    from streamer.metrics import Metrics

    spec = json.loads(spec_path.read_text())
    cfg = load_config(ROOT / "config.toml", environ={})
    cfg = cfg.model_copy(update={"pipeline": cfg.pipeline.model_copy(update=spec["pipeline"])})
    metrics = Metrics()  # the live pipeline's, read while it runs
    samples: list[list[float]] = []
    stop = threading.Event()
    me = os.getpid()

    def sample() -> None:
        while not stop.is_set():
            m = metrics
            samples.append(
                [
                    time.monotonic(),
                    tree_cpu_s(me),
                    _metric_sum(m.frames_out),
                    _metric_sum(m.detect_pixels),
                    _metric_sum(m.detections),
                ]
            )
            stop.wait(0.25)

    t = threading.Thread(target=sample, daemon=True)
    t0 = time.monotonic()
    t.start()
    rc = annotate.annotate_realtime(cfg, [tuple(j) for j in spec["jobs"]], metrics=metrics)
    stop.set()
    t.join()
    m = metrics
    final = [
        time.monotonic(),
        tree_cpu_s(me),
        _metric_sum(m.frames_out),
        _metric_sum(m.detect_pixels),
        _metric_sum(m.detections),
    ]
    samples.append(final)
    Path(spec["result"]).write_text(json.dumps({"rc": rc, "t0": t0, "samples": samples}))
    return rc


def live_run(
    clips: list[Clip],
    strategy: str,
    work: Path,
    pipeline: dict[str, Any] | None = None,
    keep_video: bool = False,
) -> dict[str, Any]:
    """Play ``clips`` at once through the live pipeline with ``strategy``; score every stream."""
    m = play([c.path for c in clips], work, {"strategy": strategy, **(pipeline or {})}, strategy, keep_video)
    jsonl = m.pop("jsonl")
    streams = [score_small_faces(c, read_detection_lines(Path(j))) for c, j in zip(clips, jsonl, strict=True)]
    m["cpu_per_stream_with_startup"] = round(m.pop("cpu_total") / sum(c.seconds for c in clips), 3)
    return {
        "strategy": strategy,
        "streams": len(clips),
        "clips": [c.name for c in clips],
        "pipeline": pipeline or {},
        **m,
        "per_stream": streams,
        "recall_ge40": _mean(streams, "recall_ge40"),
        "recall_ge80": _mean(streams, "recall_ge80"),
        "recall_40to80": _mean(streams, "recall_40to80"),
        "boxes_off_face": _mean(streams, "boxes_off_face"),
        "ids_per_person": _mean(streams, "ids_per_person"),
        "main_id_share": _mean(streams, "main_id_share"),
        "tracks_on_two_people": sum(s["tracks_on_two_people"] for s in streams),
        "boxes_on_another_person": sum(s["boxes_on_another_person"] for s in streams),
        "first_box_s_p50": _mean([s["first_box_s"] for s in streams], "p50"),
        "output_fps_min": min((s["output_fps"] or 0.0) for s in streams),
        "published_min": round(min(s["frames_published"] / s["frames_in_clip"] for s in streams), 3),
    }


def play(
    videos: list[Path], work: Path, pipeline: dict[str, Any], tag: str, keep_video: bool = False
) -> dict[str, Any]:
    """Play ``videos`` at once through the live pipeline (config.toml's, ``pipeline`` keys replaced)
    in a child process: its wall time, CPU per stream (cores, while playing), detector pixels and
    rounds per second per stream, CPU in all (``cpu_total``, start-up included), and the
    ``--detections`` file of each video (``jsonl``)."""
    work.mkdir(parents=True, exist_ok=True)

    # the annotated video goes nowhere unless asked for: encoding 1080p is the recorder's cost,
    # not the service's (OpenCV cannot open a writer on /dev/null and then writes nothing)
    def video(k: int) -> str:
        return str(work / f"{k}-{tag}.avi") if keep_video else os.devnull

    jobs = [(str(v), video(k), str(work / f"{k}-{tag}.jsonl")) for k, v in enumerate(videos)]
    spec = work / f"spec-{tag}-{len(videos)}.json"
    result = work / f"result-{tag}-{len(videos)}.json"
    spec.write_text(json.dumps({"pipeline": pipeline, "jobs": jobs, "result": str(result)}))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.small_faces.live_runs", str(spec)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    wall = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0 or not result.exists():
        raise RuntimeError(f"live run failed (rc {proc.returncode}): {proc.stderr[-2000:]}")
    res = json.loads(result.read_text())
    s = np.asarray(res["samples"])  # time, cpu, frames out, detector pixels, detections
    played = s[s[:, 2] > 0]  # from the first published frame
    first, last = played[0], played[-1]
    seconds = max(1e-6, last[0] - first[0])
    n = len(videos)
    return {
        "wall_s": round(wall, 1),
        "played_s": round(seconds, 1),
        "cpu_per_stream": round((last[1] - first[1]) / n / seconds, 3),
        "cpu_total": (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime),
        "detect_mpx_per_s_per_stream": round((last[3] - first[3]) / 1e6 / n / seconds, 3),
        "detections_per_s_per_stream": round((last[4] - first[4]) / n / seconds, 2),
        "detect_px_per_frame": round((last[3] - first[3]) / max(1.0, last[2] - first[2])),
        "jsonl": [j[2] for j in jobs],
    }


def _mean(rows: list[dict[str, Any]], key: str) -> float | None:
    v = [r[key] for r in rows if r.get(key) is not None]
    return round(float(np.mean(v)), 4) if v else None


if __name__ == "__main__":  # the child: python -m benchmarks.small_faces.live_runs SPEC.json
    sys.exit(child(Path(sys.argv[1])))
