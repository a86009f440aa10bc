"""python -m benchmarks SCENARIO [options]: one entry point for every benchmark scenario.

``python -m benchmarks SCENARIO --help`` gives a scenario's options. Each scenario writes
``<scenario>-<machine>.json`` and ``.md`` into benchmarks/results (or ``--out DIR``; the service
scenario ``bench-<machine>.*``); docs/benchmarks.md says what each measures and how long it takes.
"""

from __future__ import annotations

import contextlib
import importlib
import sys

# name: (module with main(argv) -> int, one line on what it measures)
SCENARIOS = {
    "service": (
        "benchmarks.service.cli",
        "the whole service: sequential loop vs service, stages, sweeps, WebRTC latency, classifiers",
    ),
    "detector": ("benchmarks.detector", "dlib's CNN face detector vs the MMOD port (Keras, ONNX Runtime)"),
    "backbone": (
        "benchmarks.backbone",
        "the face backbone on ONNX Runtime vs Keras vs dlib-bin (ms per face by batch), and the heads on it",
    ),
    "tracking": (
        "benchmarks.tracking",
        "boxes and labels with detection every Nth frame against every frame (moving camera)",
    ),
    "small-faces": (
        "benchmarks.small_faces.cli",
        "small faces in 1080p clips with exact truth, live or planned: recall, tracks, CPU",
    ),
    "live-clip": ("benchmarks.live_clip", "a real clip played live, against detection on every frame"),
    "triton": ("benchmarks.triton", "local worker pool vs a Triton model server: latency, throughput, CPU"),
    "reidentify": (
        "benchmarks.reidentify",
        "new faces against ended tracks: right, wrong and missed per re-identification limit",
    ),
    "proposals": ("benchmarks.proposals", "what dlib's HOG proposes on the 1080p clips, and what it costs"),
    "proposals-real": (
        "benchmarks.real.proposals",
        "what dlib's HOG proposes on the real clips' reference frames, scanning colour or grey",
    ),
    "real": (
        "benchmarks.real.cli",
        "real clips played live and planned, against the detector offline: recall, ghosts, delays, ids, CPU",
    ),
    "people-lfw": (
        "benchmarks.people_lfw",
        "the face library on LFW: people named right, wrong, strangers named (people held out from tuning)",
    ),
    "people-backend": (
        "benchmarks.people_backend",
        "a learned back-end (PLDA) on dlib's descriptors against the library's rule, LFW's held-out people",
    ),
    "people-rule": (
        "benchmarks.people_rule",
        "the face library's rule as the library grows: fitted on LFW's tune half, held-out people",
    ),
    "people-clusters": (
        "benchmarks.people_clusters",
        "unknown clusters by PLDA's set-against-set score against the service's rule (LFW groups, clips)",
    ),
    "people-clip": (
        "benchmarks.people_clip",
        "the face library on a real clip: time to name an enrolled person; unknown clusters",
    ),
    "people-named": (
        "benchmarks.people_named",
        "the face library on a real clip: each labelled person enrolled from one frame, named within 1 s?",
    ),
    "events": (
        "benchmarks.events",
        "the event history: GET /events with 100,000 events, retention, event-loop delay while writing",
    ),
    "hardening": (
        "benchmarks.hardening.cli",
        "hostile input on loopback: a connection flood, hostile requests and cameras, what each costs now",
    ),
    "gpu": (
        "benchmarks.gpu",
        "GPU figures (gpu.sh): MMOD det-frames/s, backbone faces/s, heads, streams (inference side)",
    ),
}


def usage() -> str:
    width = max(map(len, SCENARIOS))
    lines = [
        "usage: python -m benchmarks SCENARIO [options]",
        "       python -m benchmarks SCENARIO --help   (that scenario's options)",
        "",
        "scenarios:",
        *(f"  {name:<{width}}  {line}" for name, (_, line) in SCENARIOS.items()),
        "",
        "Results: benchmarks/results/<scenario>-<machine>.{json,md}, the service's bench-<machine>.*",
        "(--out DIR elsewhere); what each measures and how long it takes: docs/benchmarks.md.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(usage())
        return 0 if args else 2
    name, rest = args[0], args[1:]
    if name not in SCENARIOS:
        print(f"unknown scenario {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    # aiortc (pylibsrtp) first: importing it after TensorFlow or dlib are loaded segfaults. Where it is
    # not installed (the GPU machine: scenario gpu), nothing can segfault.
    with contextlib.suppress(ImportError):
        import aiortc  # noqa: F401

    module = importlib.import_module(SCENARIOS[name][0])
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
