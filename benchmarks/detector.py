"""dlib's CNN face detector vs the port on each runtime (Keras, ONNX Runtime), in one run.

    python -m benchmarks detector [--quick] [--out DIR] [--frames N] [--no-recall] [--threads N]

Frames: the shared obama-1080p still resized to 320x240, 640x480 and 1280x720. For each
size: batch 1 (frames one by one, the two runtimes alternating call by call so that both
see the same load) and batched (one call with --batch frames). Reports ms/frame,
megapixels/s, the speed-up over dlib-bin, the share of the port's time spent building
the canvas, in the network and in post-processing (thresholds, NMS), plus recall on
the labelled faces of dlib's example images (IoU >= 0.5, ignore='1' labels skipped) for
every detector. Writes
``detector-<machine>.json`` and ``.md`` (``-quick`` added with --quick) into --out (default
benchmarks/results).
"""

from __future__ import annotations

import json
import os
import platform
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from benchmarks.machine import cpu_model, git_commit, machine_tag
from benchmarks.report import output_args, parser, progress, save

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
    try:
        import onnxruntime

        info["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        info["onnxruntime"] = None
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        info["tensorflow"] = tf.__version__
        info["gpu"] = [d.name for d in tf.config.list_physical_devices("GPU")] or None
    info["git_commit"] = git_commit() or "unknown"
    return info


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


def labelled_faces(folder: Path) -> dict[str, list[tuple[int, int, int, int]]]:
    """The hand-labelled face boxes of dlib's example images (imglab's training.xml and testing.xml
    in ``folder``), inclusive corners, by file name; boxes marked ignore left out."""
    labels: dict[str, list[tuple[int, int, int, int]]] = {}
    for xml in ("training.xml", "testing.xml"):
        for image in ET.parse(folder / xml).getroot().iter("image"):
            boxes = labels.setdefault(image.get("file", ""), [])
            for b in image.iter("box"):
                if b.get("ignore") == "1":
                    continue
                x, y = int(b.get("left", 0)), int(b.get("top", 0))
                boxes.append((x, y, x + int(b.get("width", 0)) - 1, y + int(b.get("height", 0)) - 1))
    return labels


def recall_table(dlib_det, ports: dict) -> list[dict[str, object]]:
    import cv2

    from streamer.types import Box

    faces = shared_dir() / "data" / "dlib_faces"
    labels = labelled_faces(faces)
    images = {n: cv2.cvtColor(cv2.imread(str(faces / n)), cv2.COLOR_BGR2RGB) for n in labels}

    def recall(found: dict[str, list[Box]]) -> tuple[int, int]:
        hit = sum(
            any(Box(*t, 1.0).iou(d) >= 0.5 for d in found[n]) for n, truth in labels.items() for t in truth
        )
        return hit, sum(len(t) for t in labels.values())

    rows = []
    names = list(labels)
    for up in (0, 1):
        d_hit, total = recall({n: dlib_det.detect([images[n]], up)[0] for n in names})
        row: dict[str, object] = {"upsample": up, "labelled_faces": total, "dlib_recall": d_hit / total}
        for rt, port in ports.items():
            p_hit, _ = recall(dict(zip(names, port.detect([images[n] for n in names], up), strict=True)))
            row[f"{rt}_recall"] = p_hit / total
        row["images"] = len(names)
        rows.append(row)
    return rows


RUNTIMES = ("keras", "onnxruntime")


def stage_shares(port) -> dict[str, float]:
    """Share of the port's time per stage since the last reset (canvas, network, postprocess)."""
    total = sum(port.stage_seconds.values()) or 1.0
    return {k: round(v / total, 3) for k, v in port.stage_seconds.items()}


def reset_stages(port) -> None:
    for k in port.stage_seconds:
        port.stage_seconds[k] = 0.0


def run(quick: bool, n_frames: int, batch: int, with_recall: bool, threads: int) -> dict[str, object]:
    """Every size: dlib-bin and the port on each runtime, timed alternately in this process."""
    from streamer.detect import make_detector

    load_before = os.getloadavg()[0]
    info = machine_info()
    ports = {}
    load_s = {}
    for rt in RUNTIMES:
        t0 = time.perf_counter()
        ports[rt] = make_detector("mmod", max_batch=batch, runtime=rt, threads=threads)
        load_s[rt] = round(time.perf_counter() - t0, 2)
    dlib_det = make_detector("dlib", batch_size=batch)
    sizes = SIZES[:1] if quick else SIZES
    results = []
    for w, h in sizes:
        frame = frames_at((w, h))
        frames = [frame] * batch
        mp = w * h / 1e6
        row: dict[str, object] = {"size": f"{w}x{h}", "megapixels": mp}
        for rt, port in ports.items():  # warm-up: traces the graph / plans the canvas
            t0 = time.perf_counter()
            port.detect(frames[:1])
            row[f"{rt}_first_call_s"] = round(time.perf_counter() - t0, 3)
            port.detect(frames)
        # Batch 1, alternated: keras, onnxruntime, keras, ... so both see the same neighbours.
        # Medians: on a shared machine a neighbour's burst hits some calls, not the median.
        repeats = max(2, n_frames * 2)
        calls: dict[str, list[float]] = {rt: [] for rt in RUNTIMES}
        shares = {}
        for rt in RUNTIMES:
            reset_stages(ports[rt])
        for _ in range(repeats):
            for rt in RUNTIMES:
                calls[rt].append(time_calls(ports[rt], frames, 1, 1))
        for rt in RUNTIMES:
            shares[rt] = stage_shares(ports[rt])
        dlib_n = 1 if quick or w >= 1280 else n_frames
        dlib_s = float(np.median([time_calls(dlib_det, frames, 1, 1) for _ in range(dlib_n)]))
        row["dlib"] = {"ms_per_frame": round(dlib_s * 1000, 1), "megapixels_per_s": round(mp / dlib_s, 3)}
        for rt in RUNTIMES:
            port_s = float(np.median(calls[rt]))
            batched_s = time_calls(ports[rt], frames, batch, 1)
            row[rt] = {
                "ms_per_frame": round(port_s * 1000, 1),
                "min_ms_per_frame": round(min(calls[rt]) * 1000, 1),
                "megapixels_per_s": round(mp / port_s, 2),
                "speedup_vs_dlib": round(dlib_s / port_s, 1),
                "share": shares[rt],
                f"batch{batch}_ms_per_frame": round(batched_s * 1000, 1),
            }
        row["onnxruntime_vs_keras"] = round(
            row["keras"]["ms_per_frame"] / row["onnxruntime"]["ms_per_frame"], 2
        )  # type: ignore[index]
        want = [(b.left, b.top, b.right, b.bottom) for b in dlib_det.detect([frame])[0]]
        for rt in RUNTIMES:
            got = [(b.left, b.top, b.right, b.bottom) for b in ports[rt].detect([frame])[0]]
            row[rt]["same_boxes_as_dlib"] = got == want  # type: ignore[index]
        results.append(row)
        progress(json.dumps(row))
    out: dict[str, object] = {
        "benchmark": "face detector: dlib cnn_face_detection_model_v1 vs the MMOD port (Keras, ONNX Runtime)",
        "command": "python -m benchmarks detector" + (" --quick" if quick else ""),
        "quick": quick,
        "machine": info,
        "threads": {
            "onnxruntime_intra_op": ports["onnxruntime"]._onnx.threads,  # type: ignore[attr-defined]
            **{k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS")},
        },
        "mmod_load_s": load_s,
        # a shared machine: how busy it was around the run
        "load_average_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "batch1_repeats": max(2, n_frames * 2),
        "results": results,
    }
    if with_recall and not quick:
        out["recall"] = recall_table(dlib_det, ports)
    return out


def markdown(report: dict[str, object]) -> str:
    m = report["machine"]
    assert isinstance(m, dict)
    lines = [
        f"# Face detector benchmark ({machine_tag()})",
        "",
        f"`{report['command']}` on {m['cpu']} ({m['cores']} cores), keras {m['keras']} "
        f"({m['keras_backend']}), onnxruntime {m.get('onnxruntime')}, dlib {m['dlib']}, "
        f"commit `{str(m['git_commit'])[:10]}`. One frame per call, median of "
        f"{report['batch1_repeats']} calls; the runtimes alternate in one process. "
        f"1-minute load average before/after: {report['load_average_before_after']}.",
        "",
        "| frame | detector | ms/frame | Mpx/s | vs dlib | canvas | network | post | batched ms/frame "
        "| same boxes |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in report["results"]:  # type: ignore[union-attr]
        d = row["dlib"]
        lines.append(
            f"| {row['size']} | dlib-bin | {d['ms_per_frame']} | {d['megapixels_per_s']} | 1x | | | | | |"
        )
        for rt in RUNTIMES:
            r = row[rt]
            sh = r["share"]
            batched = next(v for k, v in r.items() if k.startswith("batch"))
            lines.append(
                f"| {row['size']} | mmod {rt} | {r['ms_per_frame']} | {r['megapixels_per_s']} | "
                f"{r['speedup_vs_dlib']}x | {sh['canvas']:.0%} | {sh['network']:.0%} | "
                f"{sh['postprocess']:.0%} | "
                f"{batched} | {r['same_boxes_as_dlib']} |"
            )
    if report.get("recall"):
        lines += [
            "",
            "Recall on the labelled faces of dlib's example images (training.xml + testing.xml, IoU >= 0.5):",
            "",
            "| upsample | labelled faces | dlib recall | keras recall | onnxruntime recall |",
            "|---:|---:|---:|---:|---:|",
        ]
        for r in report["recall"]:  # type: ignore[union-attr]
            lines.append(
                f"| {r['upsample']} | {r['labelled_faces']} | {r['dlib_recall']:.3f} | "
                f"{r['keras_recall']:.3f} | {r['onnxruntime_recall']:.3f} |"
            )
    lines += ["", "Batched: one call on --batch same-sized frames (ms per frame).", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = parser("detector", __doc__)
    ap.add_argument("--quick", action="store_true", help="320x240 only, one dlib frame, no recall")
    ap.add_argument("--frames", type=int, default=2, help="dlib frames timed per size at batch 1")
    ap.add_argument("--batch", type=int, default=8, help="frames per batched call")
    ap.add_argument("--no-recall", action="store_true")
    ap.add_argument("--threads", type=int, default=0, help="ONNX Runtime intra-op threads (0 = 2)")
    output_args(ap, "detector")
    args = ap.parse_args(argv)
    report = run(args.quick, max(1, args.frames), max(2, args.batch), not args.no_recall, args.threads)
    if args.quick and not args.name:
        args.name = f"detector-{machine_tag()}-quick"
    save(args, "detector", report, markdown(report))
    return 0
