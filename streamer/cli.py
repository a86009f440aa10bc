"""Command line: ``streamer serve | model-server | detect | annotate | people``."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from streamer import __version__
from streamer.people import cli as people_cli

log = logging.getLogger("streamer")


def _setup_logging(verbose: bool) -> None:
    from streamer import logsafe

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # control characters escaped in every message, floods of one kind of record rate-limited
    logsafe.install(logging.DEBUG if verbose else logging.INFO)
    for noisy in ("aioice", "aiortc", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="streamer", description=__doc__)
    p.add_argument("--version", action="version", version=f"streamer {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("serve", help="run the service (web page, WebRTC, RTSP, MJPEG, /metrics)")
    s.add_argument(
        "--config",
        default=None,
        help="config.toml path (default: built-in defaults, the shipped classifiers)",
    )
    s.add_argument("--host", help="override [server] host")
    s.add_argument("--port", type=int, help="override [server] port")
    s.add_argument("--detector", choices=["dlib", "mmod"], help="override [pipeline] detector")

    d = sub.add_parser("detect", help="detect faces in images; one JSON object per image on stdout")
    d.add_argument("images", nargs="+", metavar="IMAGE")
    d.add_argument(
        "--detector",
        choices=["dlib", "mmod"],
        default="mmod",
        help="mmod (default: the Keras port) or dlib (the reference)",
    )
    d.add_argument("--upsample", type=int, default=0, choices=[0, 1, 2], help="dlib upsample_num_times")
    d.add_argument(
        "--descriptors",
        action="store_true",
        help="add each face's 128-D dlib face descriptor (aligned chip + face-recognition ResNet)",
    )
    d.add_argument(
        "--runtime",
        choices=["auto", "onnxruntime", "keras"],
        default="auto",
        help="mmod's network and the face backbone: ONNX Runtime (CPU), Keras, or auto (ONNX Runtime "
        "unless Keras has a GPU)",
    )

    a = sub.add_parser("annotate", help="run the pipeline offline over an image or a video file")
    a.add_argument("input", metavar="INPUT")
    a.add_argument("--output", required=True, help="annotated image or video (.mp4/.avi) to write")
    a.add_argument("--detections", help="write one JSON line per frame with its faces")
    a.add_argument(
        "--config",
        default=None,
        help="config.toml for detector and classifiers (default: built-in defaults, the shipped classifiers)",
    )
    a.add_argument("--detector", choices=["dlib", "mmod"], help="override [pipeline] detector")
    a.add_argument(
        "--every",
        type=int,
        default=None,
        help="detect every Nth video frame, track the faces in between (default: pipeline.detect_every; "
        "with pipeline.detect_between, frames between get small looks at what came into view)",
    )
    a.add_argument("--max-frames", type=int, default=0, help="stop after N frames (0 = all)")
    a.add_argument(
        "--realtime",
        action="store_true",
        help="play the video at its own frame rate through the live pipeline (detection as often as "
        "the machine allows, tracks in between) and write every frame as a viewer saw it (an image is "
        "annotated as a still)",
    )
    a.add_argument(
        "--history",
        action="store_true",
        help="with --realtime: keep the run's track records in the config's [store], send them to its "
        "MQTT broker and webhook, and name people from its face library, as the service does "
        "(default: nothing is kept or sent, nobody is named)",
    )
    m = sub.add_parser(
        "model-server", help="serve the detector and classifiers through NVIDIA Triton (backend triton)"
    )
    m.add_argument("--config", default=None, help="config.toml: [pipeline] models, [model_server] settings")
    m.add_argument("--host", help="override [model_server] host (default 127.0.0.1)")
    m.add_argument("--grpc-port", type=int, help="override [model_server] grpc_port")
    m.add_argument("--http-port", type=int, help="override [model_server] http_port")
    m.add_argument("--metrics-port", type=int, help="override [model_server] metrics_port (Triton's metrics)")
    people_cli.add_parser(sub)  # the face library (people/cli.py)
    return p


def _overrides(args: argparse.Namespace) -> dict[str, dict[str, object]]:
    o: dict[str, dict[str, object]] = {}
    if getattr(args, "host", None):
        o.setdefault("server", {})["host"] = args.host
    if getattr(args, "port", None) is not None:
        o.setdefault("server", {})["port"] = args.port
    if getattr(args, "detector", None):
        o.setdefault("pipeline", {})["detector"] = args.detector
    if getattr(args, "history", True) is False:  # annotate: a run over a file keeps and sends nothing
        o.setdefault("store", {})["enabled"] = False
        o.setdefault("mqtt", {})["enabled"] = False
        o.setdefault("webhook", {})["url"] = ""
    return o


def cmd_serve(args: argparse.Namespace) -> int:
    from streamer.config import load_config
    from streamer.web import connections
    from streamer.web.app import create_app
    from streamer.web.keys import METRICS

    config = load_config(args.config, _overrides(args), shipped_models=True)
    app = create_app(config)
    # web.run_app's loop, with a cap on connections, request deadlines and the file limit raised
    limits = connections.Limits.of(config.server)
    try:
        connections.run(app, config.server.host, config.server.port, limits, app[METRICS])
    except connections.ListenError as e:
        print(f"streamer: {e} (--port or [server] port picks another)", file=sys.stderr)
        return 1
    return 0


def cmd_model_server(args: argparse.Namespace) -> int:
    from streamer.config import load_config
    from streamer.inference.model_server import Ports, serve

    o: dict[str, object] = {}
    for key in ("host", "grpc_port", "http_port", "metrics_port"):
        if getattr(args, key, None) is not None:
            o[key] = getattr(args, key)
    config = load_config(args.config, {"model_server": o})
    ms = config.model_server
    return serve(config, Ports(ms.host, ms.grpc_port, ms.http_port, ms.metrics_port))


def cmd_detect(args: argparse.Namespace) -> int:
    import cv2

    from streamer.detect import BadImageError, make_detector

    detector = make_detector(args.detector, **({"runtime": args.runtime} if args.detector == "mmod" else {}))
    backbone = None
    if args.descriptors:
        from streamer.classify.backbone import BackboneError, FaceBackbone

        try:
            backbone = FaceBackbone(runtime=args.runtime)
        except BackboneError as e:
            print(f"streamer detect: {e}", file=sys.stderr)
            return 2
    status = 0
    for path in args.images:
        bgr = cv2.imread(path, cv2.IMREAD_COLOR) if os.path.isfile(path) else None
        if bgr is None:
            why = "no such file" if not os.path.exists(path) else "not a readable image"
            print(f"streamer detect: {path}: {why}", file=sys.stderr)
            status = 1
            continue
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        try:
            (boxes,) = detector.detect([rgb], args.upsample)
        except BadImageError as e:
            print(f"streamer detect: {path}: {e}", file=sys.stderr)
            status = 1
            continue
        h, w = rgb.shape[:2]
        faces = [b.as_dict() for b in boxes]
        if backbone is not None:
            for face, d in zip(faces, backbone.descriptors(rgb, boxes), strict=True):
                face["descriptor"] = [round(float(v), 6) for v in d]
        print(json.dumps({"path": path, "width": w, "height": h, "faces": faces}), flush=True)
    return status


def cmd_annotate(args: argparse.Namespace) -> int:
    from streamer.annotate import IMAGE_SUFFIXES, annotate_file, annotate_realtime, unwritable
    from streamer.config import load_config

    for path in (args.output, args.detections):
        if path and (why := unwritable(path)):
            print(f"streamer annotate: {path}: {why}", file=sys.stderr)
            return 1
    config = load_config(args.config, _overrides(args), shipped_models=True)
    if args.realtime and Path(args.input).suffix.lower() in IMAGE_SUFFIXES:
        log.info("%s: an image, annotated as a still (--realtime plays videos)", args.input)
    elif args.realtime:
        return annotate_realtime(
            config, [(args.input, args.output, args.detections)], max_frames=args.max_frames
        )
    return annotate_file(
        config,
        args.input,
        args.output,
        args.detections,
        every=args.every or config.pipeline.detect_every,
        max_frames=args.max_frames,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    _setup_logging(args.verbose)
    from streamer.config import ConfigError

    try:
        commands = {
            "serve": cmd_serve,
            "model-server": cmd_model_server,
            "detect": cmd_detect,
            "annotate": cmd_annotate,
            "people": people_cli.cmd_people,
        }
        return commands[args.command](args)
    except ConfigError as e:
        print(f"streamer: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
