"""GPU figures in one run (benchmarks/gpu.sh runs it on the GPU machine): the MMOD detector and the face
backbone on Keras (``KERAS_BACKEND=jax``), the classifier heads as the service runs them (a head on
the backbone's features in NumPy, classify/feature_head.py; a pixel model on Keras), and a streams
sweep on the inference side.

    python -m benchmarks gpu [--quick] [--parts detector,backbone,streams]
                             [--sizes 640x480,1280x720,1920x1080] [--batches 1,8,16]
                             [--face-batches 1,32,128] [--max-batch 16] [--workers 1]
                             [--stream-counts 1,8,16] [--max-streams 128] [--seconds 5]
                             [--latency-limit 0.1] [--budget-s 300] [--out DIR] [--name STEM]

Frames: the demo clip's (streamer/assets/demo.mp4, 640x360, in git), nine frames from across it,
letterboxed (black bands) to a 4:3 size and resized to a 16:9 one.

detector: ``MMODDetector(runtime="keras")`` per size, batch 1 (one frame a call) and each of
--batches (one call of B frames): ms per frame and det-frames/s of the whole ``detect`` (the image
pyramid's canvas is built on the CPU, the network runs on the GPU, NMS on the CPU), each stage's
share, the network's own frames/s, the first call's seconds (XLA compiles one program per canvas
shape and batch count) and faces per frame. ONNX Runtime on the CPU (the service's default on a
CPU-only machine, 2 threads) at batch 1, where installed, is the same machine's CPU reference.

backbone: ``FaceBackbone.features`` (dlib's face ResNet ported to Keras) on random 150x150 chips
at --face-batches: faces/s; dlib's 5-point alignment (``chips``, CPU) per face on the frames'
faces where dlib-bin is installed; then each config.toml classifier head
(``Classifier.predict_proba`` on backbone features) at the same batches: ms per face.

streams: the web service itself needs aiortc and av, which the GPU machine lacks (av's wheel
bundles FFmpeg, too big beside the model files in the 64 MiB a device call carries), so the
streams figure is the inference side's: the service's own DetectionBatcher and WorkerPool
(--workers spawned processes, each the service's Engine: MMOD on Keras over whole 640x480 frames
at detect_max_side 640, config.toml's classifiers on the face backbone, warmed up as the service
warms them) driven in this process by N streams paced at 30 fps. As the service's Stream does, a
stream sends its newest frame whenever its last one has come back. Not included: decoding,
tracking, drawing, JPEG/WebRTC encoding (CPU work per stream, the service scenario's ``stages``),
and "regions" planning (the service's default looks at less than the whole frame). Latency is
from a frame's capture to its faces (detected and classified), not to the viewer. Per level:
detections per second per stream (min, mean), latency p50/p95/p99, frames per detector call,
faces per frame. A level keeps up ("p95") when p95 latency <= --latency-limit, and detects
"every frame" when also every stream gets >= 95% of its 30 fps detected. Levels 1, 2, 4, ...
until both fail or --max-streams, then bisection between the last level that kept up and the
first that did not (--refine levels). Before the sweep, the detector is compiled for every batch
count up to --max-batch (a batch of a new size otherwise waits for XLA; the seconds are reported).
Beside it a throughput model: the detector part's 640x480 det-frames/s at each batch / 30.

Writes ``gpu-<machine>.json`` and ``.md`` after each part, so a run cut short keeps what it measured.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from benchmarks.gpu_parts.common import ABSENT, FPS, STREAM_SIZE, Clock, demo_frames, parse
from benchmarks.gpu_parts.models import backbone_part, detector_part
from benchmarks.gpu_parts.streams import streams_part
from benchmarks.machine import machine_tag
from benchmarks.report import (
    markdown_table,
    progress,
    run_record,
    save,
    write,
)

HEAD_COLUMNS = ["classifier", "input", "runs_on", "batch", "ms_per_face", "ms_per_batch", "first_call_s"]


def throughput_model(detector: dict[str, Any]) -> list[dict[str, Any]]:
    """Streams the detector alone could serve at 30 fps, from its 640x480 det-frames/s per batch."""
    size = f"{STREAM_SIZE[0]}x{STREAM_SIZE[1]}"
    return [
        {
            "batch": r["batch"],
            "det_frames_per_s": r["frames_per_s"],
            "streams_at_30fps": int(r["frames_per_s"] // FPS),
        }
        for r in detector.get("rows", [])
        if r.get("size") == size and "frames_per_s" in r
    ]


def markdown(data: dict[str, Any]) -> str:
    m = data["machine"]
    lines = [
        f"# GPU figures: {m.get('gpu') or 'no GPU'} ({data.get('keras_backend')}, jax {data.get('jax')})",
        "",
        f"`{data['command']}`, {data['started_at']}, commit {m.get('git_commit')}; "
        f"devices: {data.get('jax_devices')}",
        "",
    ]
    det = data.get("detector")
    if det:
        lines += [
            "## MMOD detector (Keras)",
            "",
            markdown_table(
                det["rows"],
                [
                    "size",
                    "batch",
                    "frames_per_s",
                    "ms_per_frame",
                    "network_frames_per_s",
                    "canvas_share",
                    "network_share",
                    "postprocess_share",
                    "first_call_s",
                    "faces_per_frame",
                    "skipped",
                ],
            ),
        ]
        if det.get("onnxruntime_cpu"):
            lines += [
                "ONNX Runtime on this machine's CPU (2 threads), batch 1:",
                "",
                markdown_table(det["onnxruntime_cpu"], ["size", "frames_per_s", "ms_per_frame", "error"]),
            ]
    if data.get("throughput_model"):
        lines += [
            "Throughput model (detector alone, 640x480): streams at 30 fps = det-frames/s / 30",
            "",
            markdown_table(data["throughput_model"], ["batch", "det_frames_per_s", "streams_at_30fps"]),
        ]
    bb = data.get("backbone")
    if bb:
        lines += [
            "## Face backbone (dlib ResNet on Keras)",
            "",
            markdown_table(
                bb["rows"], ["batch", "faces_per_s", "ms_per_face", "ms_per_batch", "first_call_s", "skipped"]
            ),
        ]
        if "chips_ms_per_face" in bb:
            lines += [f"dlib's alignment (chips, CPU): {bb['chips_ms_per_face']} ms per face", ""]
        if bb.get("note"):
            lines += [bb["note"], ""]
        if bb.get("heads"):
            lines += [
                "Classifier heads:",
                "",
                markdown_table(
                    bb["heads"],
                    HEAD_COLUMNS,
                ),
            ]
    st = data.get("streams")
    if st:
        lines += [
            "## Streams (inference side, 30 fps 640x480, whole frames)",
            "",
            f"Keeps p95 <= {st['latency_limit_s']} s: **{st['max_streams_p95']}** streams "
            f"(first miss: {st['first_not_streams_p95']}); every frame detected too: "
            f"**{st['max_streams_every_frame']}** (first miss: {st['first_not_streams_every_frame']}). "
            f"max_batch {st['max_batch']}, {st['workers']} worker(s); workers up in "
            f"{st['workers_start_s']} s, detector compiled for batches 1..{st['max_batch']} in "
            f"{sum(st['detector_compile_s_per_batch']):.1f} s.",
            "",
            markdown_table(
                st["rows"],
                [
                    "streams",
                    "det_per_s_min",
                    "det_per_s_mean",
                    "det_frames_per_s_total",
                    "latency_p50_s",
                    "latency_p95_s",
                    "latency_p99_s",
                    "frames_per_call",
                    "faces_per_frame",
                    "p95_ok",
                    "every_frame",
                ],
            ),
            st["what"],
            "",
        ]
        if st.get("error"):
            lines += [f"**streams stopped early**: {st['error']}", ""]
    if data.get("part_seconds"):
        lines += [f"Seconds per part: {data['part_seconds']}", ""]
    for name, err in data.get("errors", {}).items():
        lines += [f"**{name} failed**: {err}", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # the workers share the GPU
    clock = Clock(args.budget_s, args.parts)
    data: dict[str, Any] = run_record("gpu", argv)
    import keras

    data["keras_backend"] = keras.backend.backend()
    data["keras"] = keras.__version__
    if data["keras_backend"] == "jax":
        import jax

        data["jax"] = jax.__version__
        data["jax_devices"] = [str(d) for d in jax.devices()]
    data["options"] = {k: v for k, v in vars(args).items() if k not in ("out", "name")}
    data["options"]["sizes"] = [f"{w}x{h}" for w, h in args.sizes]
    data["errors"] = {}
    progress(f"keras {data['keras']} on {data['keras_backend']}; devices {data.get('jax_devices')}")
    clip = demo_frames()
    stem = args.name or f"gpu-{machine_tag()}" + ("-quick" if args.quick else "")
    args.name = stem
    parts = {"detector": detector_part, "backbone": backbone_part, "streams": streams_part}
    for name in args.parts:
        clock.start(name)
        t0 = time.monotonic()
        try:
            data[name] = parts[name](args, clip, clock)
        except Exception as e:  # one part failing keeps the others' figures
            import traceback

            traceback.print_exc()
            data["errors"][name] = f"{type(e).__name__}: {e}"[:500]
        data.setdefault("part_seconds", {})[name] = round(time.monotonic() - t0, 1)
        if "detector" in data:
            data["throughput_model"] = throughput_model(data["detector"])
        data["loaded_modules_absent_on_gpu_machine"] = sorted(m for m in ABSENT if m in sys.modules)
        write(stem, data, markdown(data), args.out)  # after each part: a run cut short keeps it
    save(args, "gpu", data, markdown(data))
    return 1 if data["errors"] else 0
