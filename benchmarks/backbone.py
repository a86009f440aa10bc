"""The face backbone (dlib's face-recognition ResNet) on each runtime, and the heads on it.

    python -m benchmarks backbone [--repeats N] [--threads N] [--out DIR]

Chips: dlib's aligned 150x150 chips of the faces HOG finds in dlib's example images (real
faces of every size). For batch sizes 1, 3, 8 and 32: ms per face of the backbone's feature
pass on ONNX Runtime and on Keras (the runtimes alternating call by call, so that both see the
same load on a shared machine; median of --repeats calls), and of dlib-bin's own
``compute_face_descriptor`` on the same chips (the descriptor only); the largest difference
between the two runtimes' features; and ms per face of each shipped head (models/*.keras that
take the backbone's features) at batch 1 and 32. Writes ``backbone-<machine>.json`` and
``.md`` into --out (default benchmarks/results).
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.machine import machine_tag
from benchmarks.report import output_args, parser, progress, run_record, save

ROOT = Path(__file__).resolve().parents[1]
BATCHES = (1, 3, 8, 32)
RUNTIMES = ("onnxruntime", "keras")


def real_chips(limit: int = 64) -> np.ndarray:
    """Aligned chips of HOG's faces in the shared dlib example images, up to ``limit``."""
    import cv2
    import dlib

    from streamer.classify.backbone import FaceAligner
    from streamer.types import Box

    folder = ROOT.parent / "shared" / "data" / "dlib_faces"
    if not folder.is_dir():
        raise SystemExit(f"{folder}: the shared example faces are needed")
    hog, aligner = dlib.get_frontal_face_detector(), FaceAligner()
    chips: list[np.ndarray] = []
    for path in sorted(folder.glob("*.jpg")):
        rgb = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
        boxes = [Box(r.left(), r.top(), r.right(), r.bottom(), 0.0) for r in hog(rgb, 1)]
        chips += aligner.chips(rgb, boxes)
        if len(chips) >= limit:
            break
    return np.asarray(chips[:limit])


def _median_ms_per_face(calls: list[float], batch: int) -> float:
    return round(statistics.median(calls) * 1000 / batch, 3)


def run(repeats: int, threads: int) -> dict[str, Any]:
    import dlib
    import face_recognition_models as frm

    from streamer.classify import Classifier
    from streamer.classify.backbone import FaceBackbone
    from streamer.classify.classifier import _compiled_predict

    chips = real_chips()
    progress(f"{len(chips)} chips")
    backbones = {rt: FaceBackbone(runtime=rt, threads=threads) for rt in RUNTIMES}
    reference = dlib.face_recognition_model_v1(frm.face_recognition_model_location())
    got = {rt: b.features(chips) for rt, b in backbones.items()}
    diff = max(float(np.abs(got["onnxruntime"][k] - got["keras"][k]).max()) for k in got["keras"])
    rows = []
    for batch in BATCHES:
        x = np.resize(chips, (batch, *chips.shape[1:]))
        times: dict[str, list[float]] = {rt: [] for rt in RUNTIMES}
        for b in backbones.values():
            b.features(x)  # warm: Keras traces each padded size once
        for _ in range(repeats):
            for rt, b in backbones.items():
                t0 = time.perf_counter()
                b.features(x)
                times[rt].append(time.perf_counter() - t0)
        dl = []
        for _ in range(max(1, repeats // 4)):
            t0 = time.perf_counter()
            reference.compute_face_descriptor(list(x))
            dl.append(time.perf_counter() - t0)
        row: dict[str, Any] = {"batch": batch}
        row |= {f"{rt}_ms_per_face": _median_ms_per_face(times[rt], batch) for rt in RUNTIMES}
        row["dlib_descriptor_ms_per_face"] = _median_ms_per_face(dl, batch)
        row["keras_over_onnxruntime"] = round(row["keras_ms_per_face"] / row["onnxruntime_ms_per_face"], 2)
        rows.append(row)
        progress(f"batch {batch}: {row}")
    heads = []
    for path in sorted((ROOT / "models").glob("*.keras")):
        clf = Classifier(path.stem, str(path))
        if not clf.uses_backbone:
            continue
        feats = backbones["onnxruntime"].features(chips, mirrored=True)
        names = clf.meta.features.split("+")
        x = np.concatenate([feats[n] for n in names], axis=1)
        head: dict[str, Any] = {"head": path.name, "features": clf.meta.features}
        on_keras = _compiled_predict(clf.model)  # the same head on Keras, as the service ran it before
        for batch in (1, 32):
            xb = np.resize(x, (batch, x.shape[1]))
            ways = {"": clf.predict_proba, "keras_": on_keras}
            calls: dict[str, list[float]] = {k: [] for k in ways}
            for fn in ways.values():
                fn(xb)
            for _ in range(repeats):  # alternating, so that load from others hits both alike
                for k, fn in ways.items():
                    t0 = time.perf_counter()
                    fn(xb)
                    calls[k].append(time.perf_counter() - t0)
            for k in ways:
                head[f"{k}batch{batch}_ms_per_face"] = _median_ms_per_face(calls[k], batch)
        heads.append(head)
    return {
        **run_record("backbone", None),
        "chips": len(chips),
        "repeats": repeats,
        "onnxruntime_threads": threads or 2,
        "load_average_before_after": None,
        "max_feature_difference": diff,
        "results": rows,
        "heads": heads,
    }


def markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        f"# Face backbone and heads ({machine_tag()})",
        "",
        f"`{report['command']}` on {m.get('cpu')} ({m.get('cores')} cores), commit "
        f"`{str(m.get('git_commit'))[:10]}`, {report['started_at']}. {report['chips']} real chips (dlib's "
        f"example images); median of {report['repeats']} calls per size, the two runtimes alternating "
        f"call by call; ONNX Runtime with {report['onnxruntime_threads']} threads. Largest difference "
        f"between the runtimes' features: {report['max_feature_difference']:.1e}. 1-minute load average "
        f"before/after: {report['load_average_before_after']}.",
        "",
        "| faces per call | ONNX Runtime ms/face | Keras ms/face | Keras / ONNX Runtime "
        "| dlib-bin descriptor ms/face |",
        "|---:|---:|---:|---:|---:|",
    ]
    for r in report["results"]:
        lines.append(
            f"| {r['batch']} | {r['onnxruntime_ms_per_face']} | {r['keras_ms_per_face']} | "
            f"{r['keras_over_onnxruntime']}x | {r['dlib_descriptor_ms_per_face']} |"
        )
    lines += [
        "",
        "The heads run in NumPy (`streamer/classify/feature_head.py`); the same head on Keras beside it.",
        "",
        "| head | features | batch 1 ms/face | batch 32 ms/face | on Keras: batch 1 | on Keras: batch 32 |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for h in report["heads"]:
        lines.append(
            f"| {h['head']} | `{h['features']}` | {h['batch1_ms_per_face']} | {h['batch32_ms_per_face']} "
            f"| {h.get('keras_batch1_ms_per_face')} | {h.get('keras_batch32_ms_per_face')} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = parser("backbone", __doc__)
    ap.add_argument("--repeats", type=int, default=20, help="calls timed per batch size and runtime")
    ap.add_argument("--threads", type=int, default=0, help="ONNX Runtime intra-op threads (0 = 2)")
    output_args(ap, "backbone")
    args = ap.parse_args(argv)
    before = os.getloadavg()[0]
    report = run(max(2, args.repeats), args.threads)
    report["load_average_before_after"] = [round(before, 2), round(os.getloadavg()[0], 2)]
    save(args, "backbone", report, markdown(report))
    return 0
