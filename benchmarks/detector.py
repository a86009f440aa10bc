"""dlib's CNN face detector vs the Keras port, on the same frames, in one run.

    python -m benchmarks.detector [--quick] [--out DIR] [--frames N] [--no-recall]

Frames: the shared obama-1080p still resized to 320x240, 640x480 and 1280x720. For each
size: batch 1 (frames one by one) and batched (one call with --batch frames); dlib's
batched call needs same-sized frames, which these are. Reports frames/s, ms/frame and
the port's speed-up over dlib, plus recall on the labelled faces of dlib's example
images (IoU >= 0.5, ignore='1' labels skipped) for both detectors. Writes
``detector-<machine>.json`` and ``.md`` into --out (default benchmarks/results).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from benchmarks.machine import cpu_model

SIZES = ((320, 240), (640, 480), (1280, 720))
ROOT = Path(__file__).resolve().parents[1]


def shared_dir() -> Path:
    here = ROOT.parent / "shared"
    return here if here.is_dir() else Path(os.environ.get("STREAMER_SHARED", str(here)))


def machine_info() -> dict[str, object]:
    import cv2
    import dlib
    import keras

    info: dict[str, object] = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "keras": keras.__version__,
        "keras_backend": keras.backend.backend(),
        "dlib": dlib.__version__,
        "opencv": cv2.__version__,
        "gpu": None,
    }
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        info["tensorflow"] = tf.__version__
        info["gpu"] = [d.name for d in tf.config.list_physical_devices("GPU")] or None
    try:
        info["git_commit"] = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        info["git_commit"] = "unknown"
    return info


def machine_tag(info: dict[str, object]) -> str:
    kind = "gpu" if info.get("gpu") else "cpu"
    return f"{kind}-{info['cores']}core"


def frames_at(size: tuple[int, int]) -> np.ndarray:
    import cv2

    bgr = cv2.imread(str(shared_dir() / "media" / "obama-1080p.jpg"))
    if bgr is None:
        raise SystemExit("obama-1080p.jpg not found under the shared media folder")
    return cv2.cvtColor(cv2.resize(bgr, size, interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)


def time_calls(detector, frames: list[np.ndarray], batch: int, repeats: int) -> float:
    """Seconds per frame: ``repeats`` calls, each on ``batch`` frames."""
    start = time.perf_counter()
    for _ in range(repeats):
        detector.detect(frames[:batch])
    return (time.perf_counter() - start) / (repeats * batch)


def recall_table(dlib_det, port) -> list[dict[str, object]]:
    import cv2

    from streamer.types import Box

    faces = shared_dir() / "data" / "dlib_faces"
    labels: dict[str, list[tuple[int, int, int, int]]] = {}
    for xml in ("training.xml", "testing.xml"):
        for image in ET.parse(faces / xml).getroot().iter("image"):
            boxes = labels.setdefault(image.get("file", ""), [])
            for b in image.iter("box"):
                if b.get("ignore") == "1":
                    continue
                x, y = int(b.get("left", 0)), int(b.get("top", 0))
                boxes.append((x, y, x + int(b.get("width", 0)) - 1, y + int(b.get("height", 0)) - 1))
    images = {n: cv2.cvtColor(cv2.imread(str(faces / n)), cv2.COLOR_BGR2RGB) for n in labels}

    def iou(a, b) -> float:
        iw = min(a[2], b[2]) - max(a[0], b[0]) + 1
        ih = min(a[3], b[3]) - max(a[1], b[1]) + 1
        if iw <= 0 or ih <= 0:
            return 0.0
        inner = iw * ih
        return inner / ((a[2] - a[0] + 1) * (a[3] - a[1] + 1) + (b[2] - b[0] + 1) * (b[3] - b[1] + 1) - inner)

    def recall(found: dict[str, list[Box]]) -> tuple[int, int]:
        hit = sum(
            any(iou(t, (d.left, d.top, d.right, d.bottom)) >= 0.5 for d in found[n])
            for n, truth in labels.items()
            for t in truth
        )
        return hit, sum(len(t) for t in labels.values())

    rows = []
    names = list(labels)
    for up in (0, 1):
        d_hit, total = recall({n: dlib_det.detect([images[n]], up)[0] for n in names})
        p_hit, _ = recall(dict(zip(names, port.detect([images[n] for n in names], up), strict=True)))
        rows.append(
            {
                "upsample": up,
                "labelled_faces": total,
                "dlib_recall": d_hit / total,
                "mmod_recall": p_hit / total,
                "images": len(names),
            }
        )
    return rows


def run(quick: bool, n_frames: int, batch: int, with_recall: bool) -> dict[str, object]:
    from streamer.detect import make_detector

    info = machine_info()
    t0 = time.perf_counter()
    port = make_detector("mmod", max_batch=batch)
    load_s = time.perf_counter() - t0
    dlib_det = make_detector("dlib", batch_size=batch)
    sizes = SIZES[:1] if quick else SIZES
    results = []
    for w, h in sizes:
        frame = frames_at((w, h))
        frames = [frame] * batch
        # Warm-up: traces/compiles the port's graph for this canvas shape and batch sizes.
        t0 = time.perf_counter()
        port.detect(frames[:1])
        warm_s = time.perf_counter() - t0
        port.detect(frames)
        dlib_n = 1 if quick or w >= 1280 else n_frames
        row: dict[str, object] = {"size": f"{w}x{h}", "port_first_call_s": round(warm_s, 3)}
        for mode, bsz in (("batch1", 1), (f"batch{batch}", batch)):
            port_s = time_calls(port, frames, bsz, max(1, (n_frames * 2) // bsz) if bsz == 1 else 1)
            if bsz == 1:
                dlib_s = time_calls(dlib_det, frames, 1, dlib_n)
            elif quick or w >= 1280:
                dlib_s = None  # dlib's batched call is no faster on a CPU; not worth minutes
            else:
                dlib_s = time_calls(dlib_det, frames, min(bsz, 4), 1)
            row[mode] = {
                "frames_per_call": bsz,
                "mmod_ms_per_frame": round(port_s * 1000, 1),
                "mmod_fps": round(1 / port_s, 2),
                "dlib_ms_per_frame": None if dlib_s is None else round(dlib_s * 1000, 1),
                "dlib_fps": None if dlib_s is None else round(1 / dlib_s, 3),
                "dlib_frames_per_call": None if dlib_s is None else (1 if bsz == 1 else min(bsz, 4)),
                "speedup_vs_dlib": None if dlib_s is None else round(dlib_s / port_s, 1),
            }
        same = [(b.left, b.top, b.right, b.bottom) for b in port.detect([frame])[0]] == [
            (b.left, b.top, b.right, b.bottom) for b in dlib_det.detect([frame])[0]
        ]
        row["same_boxes_as_dlib"] = same
        results.append(row)
        print(json.dumps(row), flush=True)
    out: dict[str, object] = {
        "benchmark": "face detector: dlib cnn_face_detection_model_v1 vs streamer MMOD Keras port",
        "command": "python -m benchmarks.detector" + (" --quick" if quick else ""),
        "quick": quick,
        "machine": info,
        "threads": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS")},
        "mmod_load_s": round(load_s, 2),
        "results": results,
    }
    if with_recall and not quick:
        out["recall"] = recall_table(dlib_det, port)
    return out


def markdown(report: dict[str, object]) -> str:
    m = report["machine"]
    assert isinstance(m, dict)
    lines = [
        f"# Face detector benchmark ({machine_tag(m)})",
        "",
        f"`{report['command']}` on {m['cpu']} ({m['cores']} cores), keras {m['keras']} "
        f"({m['keras_backend']}), dlib {m['dlib']}, commit `{str(m['git_commit'])[:10]}`.",
        "",
        "| frame | call | dlib ms/frame | port ms/frame | port frames/s | speed-up | same boxes |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for row in report["results"]:  # type: ignore[union-attr]
        for key, val in row.items():
            if not key.startswith("batch"):
                continue
            d = val["dlib_ms_per_frame"]
            s = val["speedup_vs_dlib"]
            lines.append(
                f"| {row['size']} | {key} | {'-' if d is None else d} | {val['mmod_ms_per_frame']} | "
                f"{val['mmod_fps']} | {'-' if s is None else f'{s}x'} | {row['same_boxes_as_dlib']} |"
            )
    if report.get("recall"):
        lines += [
            "",
            "Recall on the labelled faces of dlib's example images (training.xml + testing.xml, IoU >= 0.5):",
            "",
            "| upsample | labelled faces | dlib recall | port recall |",
            "|---:|---:|---:|---:|",
        ]
        for r in report["recall"]:  # type: ignore[union-attr]
            lines.append(
                f"| {r['upsample']} | {r['labelled_faces']} | "
                f"{r['dlib_recall']:.3f} | {r['mmod_recall']:.3f} |"
            )
    lines += [
        "",
        "dlib batched: one call on 4 same-sized frames (none at 1280x720 or in --quick: minutes).",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="320x240 only, one dlib frame, no recall")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--frames", type=int, default=2, help="dlib frames timed per size at batch 1")
    parser.add_argument("--batch", type=int, default=8, help="frames per batched call")
    parser.add_argument("--no-recall", action="store_true")
    args = parser.parse_args(argv)
    report = run(args.quick, max(1, args.frames), max(2, args.batch), not args.no_recall)
    args.out.mkdir(parents=True, exist_ok=True)
    tag = machine_tag(report["machine"])  # type: ignore[arg-type]
    stem = f"detector-{tag}" + ("-quick" if args.quick else "")
    (args.out / f"{stem}.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / f"{stem}.md").write_text(markdown(report))
    print(markdown(report))
    return report


if __name__ == "__main__":
    main()
