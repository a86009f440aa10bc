#!/usr/bin/python3
"""A real RTSP camera for tests: GStreamer's rtsp-server serving an MP4 (H.264).

Run with Debian's system python3 (python3-gi, gir1.2-gst-rtsp-server-1.0):
    /usr/bin/python3 rtsp_server.py --port 8554 --path /cam clip.mp4
Prints "READY rtsp://127.0.0.1:PORT/PATH" once serving; runs until killed.
The clip is never re-encoded: its H.264 is demuxed, parsed and packetised. All
clients share one media, as with a real camera. Tests serve a clip made long
enough by tests/support/media.py (remuxed copies of a short one).
"""

import argparse
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("clip")
    ap.add_argument("--port", type=int, default=8554)
    ap.add_argument("--path", default="/cam")
    args = ap.parse_args()
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(
        f'( filesrc location="{args.clip}" ! qtdemux name=d d.video_0 ! h264parse ! '
        "rtph264pay name=pay0 pt=96 config-interval=1 )"
    )
    factory.set_shared(True)
    server.get_mount_points().add_factory(args.path, factory)
    if server.attach(None) == 0:
        print(f"cannot listen on port {args.port}", file=sys.stderr)
        return 1
    print(f"READY rtsp://127.0.0.1:{server.get_bound_port()}{args.path}", flush=True)
    GLib.MainLoop().run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
