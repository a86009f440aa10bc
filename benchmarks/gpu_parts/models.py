"""The gpu scenario's model parts: the MMOD detector per size and batch, the face backbone and heads."""

from __future__ import annotations

import importlib.util
import time
from typing import Any

import numpy as np

from benchmarks.gpu_parts.common import STREAM_SIZE, Clock, _stage_row, fit, timed
from benchmarks.report import (
    progress,
)


def detector_part(args: Any, clip: list[np.ndarray], clock: Clock) -> dict[str, Any]:
    from streamer.detect.mmod import MMODDetector

    det = MMODDetector(runtime="keras", max_batch=max(args.batches))
    rows, cpu_rows = [], []
    for size in args.sizes:
        frames = [fit(f, size) for f in clip]
        for b in args.batches:
            if clock.over():
                progress(f"detector {size[0]}x{size[1]} batch {b}: skipped, out of time")
                rows.append({"size": f"{size[0]}x{size[1]}", "batch": b, "skipped": "out of time"})
                continue
            t0 = time.perf_counter()
            det.detect([frames[i % len(frames)] for i in range(b)])
            first = time.perf_counter() - t0
            det.detect([frames[(i + 1) % len(frames)] for i in range(b)])  # a second warm call
            for k in det.stage_seconds:
                det.stage_seconds[k] = 0.0
            found: list[int] = []
            calls, dt = timed(
                lambda c, b=b, fr=frames, found=found: found.extend(
                    map(len, det.detect([fr[(c * b + i) % len(fr)] for i in range(b)]))
                ),
                args.row_seconds,
            )
            row = {
                "size": f"{size[0]}x{size[1]}",
                "batch": b,
                **_stage_row(det, calls * b, dt),
                "first_call_s": round(first, 2),
                "faces_per_frame": round(float(np.mean(found)), 2),
                "calls": calls,
            }
            rows.append(row)
            progress(
                f"detector keras {row['size']} batch {b}: {row['frames_per_s']} det-frames/s "
                f"({row['ms_per_frame']} ms/frame; network alone {row['network_frames_per_s']} frames/s, "
                f"canvas {row['canvas_share']:.0%}); first call {row['first_call_s']} s"
            )
    if importlib.util.find_spec("onnxruntime") is not None and not clock.over():
        try:
            ort = MMODDetector(runtime="onnxruntime")
            for size in args.sizes:
                frames = [fit(f, size) for f in clip]
                ort.detect(frames[:1])
                for k in ort.stage_seconds:
                    ort.stage_seconds[k] = 0.0
                calls, dt = timed(
                    lambda c, fr=frames: ort.detect([fr[c % len(fr)]]), min(1.0, args.row_seconds), 2
                )
                row = {"size": f"{size[0]}x{size[1]}", "batch": 1, **_stage_row(ort, calls, dt)}
                cpu_rows.append(row)
                progress(
                    f"detector onnxruntime (CPU, 2 threads) {row['size']}: {row['frames_per_s']} det-frames/s"
                )
                if clock.over():
                    break
        except Exception as e:  # the reference only: never costs the GPU figures
            progress(f"onnxruntime reference failed: {type(e).__name__}: {e}")
            cpu_rows.append({"error": f"{type(e).__name__}: {e}"[:300]})
    return {"runtime": "keras", "rows": rows, "onnxruntime_cpu": cpu_rows}


# ---------------------------------------------------------------------------- backbone and heads


def backbone_part(args: Any, clip: list[np.ndarray], clock: Clock) -> dict[str, Any]:
    from benchmarks.service.options import Options, classifier_configs
    from streamer.classify import Classifier
    from streamer.classify.backbone import FaceBackbone

    out: dict[str, Any] = {}
    biggest = max(args.face_batches)
    try:
        bb: Any = FaceBackbone(max_batch=biggest)
        features = bb.features
    except ImportError as e:  # no dlib-bin: the ResNet alone (the chips need dlib's landmarks)
        from streamer.classify.backbone import default_paths
        from streamer.classify.classifier import _compiled_predict
        from streamer.classify.face_resnet import load_face_resnet

        bb = None
        predict = _compiled_predict(load_face_resnet(default_paths()[0]))
        out["note"] = f"dlib not importable ({e}): the ResNet alone, no chips"

        def features(x: np.ndarray) -> Any:
            return predict(np.asarray(x, np.float32))

    rng = np.random.default_rng(0)
    rows = []
    for b in args.face_batches:
        if clock.over():
            rows.append({"batch": b, "skipped": "out of time"})
            continue
        chips = rng.integers(0, 256, (b, 150, 150, 3), dtype=np.uint8)
        t0 = time.perf_counter()
        features(chips)
        first = time.perf_counter() - t0
        features(chips)
        calls, dt = timed(lambda _c, x=chips: features(x), args.row_seconds)
        rows.append(
            {
                "batch": b,
                "faces_per_s": round(calls * b / dt, 1),
                "ms_per_face": round(1000 * dt / (calls * b), 3),
                "ms_per_batch": round(1000 * dt / calls, 3),
                "first_call_s": round(first, 2),
                "calls": calls,
            }
        )
        progress(f"backbone batch {b}: {rows[-1]['faces_per_s']} faces/s, first call {first:.2f} s")
    out["rows"] = rows
    if bb is not None and not clock.over():  # dlib's alignment, on the CPU, per face of the clip
        try:
            from streamer.detect.mmod import MMODDetector

            frames = [fit(f, STREAM_SIZE) for f in clip]
            runtime = "onnxruntime" if importlib.util.find_spec("onnxruntime") else "keras"  # boxes only
            boxes = MMODDetector(runtime=runtime, max_batch=len(frames)).detect(frames)
            faces = sum(map(len, boxes))
            if faces:
                calls, dt = timed(
                    lambda _c: [bb.chips(f, bs) for f, bs in zip(frames, boxes, strict=True)], 0.5, 2
                )
                out["chips_ms_per_face"] = round(1000 * dt / (calls * faces), 3)
                progress(f"dlib chips: {out['chips_ms_per_face']} ms per face (CPU, {faces} faces)")
        except Exception as e:  # never costs the heads' figures
            progress(f"chips failed: {type(e).__name__}: {e}")
            out["chips_error"] = f"{type(e).__name__}: {e}"[:300]
    heads = []
    for c in classifier_configs(Options()):
        if clock.over():
            break
        clf = Classifier(c.name, c.model, c.threshold, max_batch=biggest)
        d = clf.inputs if clf.uses_backbone else None
        h, w = clf.meta.input_size
        for b in args.face_batches:
            x = (
                rng.normal(size=(b, d)).astype(np.float32)
                if d is not None
                else rng.integers(0, 256, (b, h, w, 3), dtype=np.uint8)
            )
            t0 = time.perf_counter()
            clf.predict_proba(x)
            first = time.perf_counter() - t0
            calls, dt = timed(lambda _c, x=x, clf=clf: clf.predict_proba(x), min(1.0, args.row_seconds))
            heads.append(
                {
                    "classifier": c.name,
                    "input": clf.meta.features if d is not None else f"{w}x{h} pixels",
                    "runs_on": "numpy" if clf.head is not None else "keras",  # (classify/feature_head.py)
                    "batch": b,
                    "ms_per_face": round(1000 * dt / (calls * b), 4),
                    "ms_per_batch": round(1000 * dt / calls, 3),
                    "first_call_s": round(first, 2),
                }
            )
            progress(f"head {c.name} batch {b}: {heads[-1]['ms_per_face']} ms per face")
    out["heads"] = heads
    return out


# ---------------------------------------------------------------------------- streams
