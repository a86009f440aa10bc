"""Every Prometheus metric of the service, defined once, on a registry of its own."""

from __future__ import annotations

import contextlib
import time

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)

P = "streamer_"
# no `<name>_created` series beside every counter and histogram: they double what Prometheus
# scrapes and say only when the process started, which `process_start_time_seconds` says once
disable_created_metrics()
LATENCY_BUCKETS = (0.005, 0.01, 0.02, 0.033, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0, 2.0, 5.0)
STAGE_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)

# Reasons a frame does not make it through a stage, as the values of frames_dropped_total{reason}:
DROP_SOURCE_OVERRUN = "source_overrun"  # the decoder got ahead of the pipeline; older frame replaced
DROP_DETECT_SKIPPED = "detect_skipped"  # not sent to the detector: the stream's last frame is still there
DROP_SLOW_CONSUMER = "slow_consumer"  # an output (peer, MJPEG client) skipped frames to stay live
DROP_CORRUPT = "corrupt"  # undecodable or wrongly shaped frame
DROP_TOO_LARGE = "too_large"  # a frame over the configured max_frame_side
# Outcomes of a face-library match, as the values of recognitions_total{outcome} (people/match.py)
RECOGNITION_OUTCOMES = ("known", "unknown", "uncertain", "too_small")


class Metrics:
    """The service's metrics. One instance per app, so tests do not share counters."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry or CollectorRegistry()
        ProcessCollector(registry=r)  # process_cpu_seconds_total, process_resident_memory_bytes, ...
        s = ["stream"]
        self.frames_in = Counter(P + "frames_in_total", "Frames received from sources", s, registry=r)
        self.frames_out = Counter(P + "frames_out_total", "Annotated frames sent to outputs", s, registry=r)
        self.frames_dropped = Counter(
            P + "frames_dropped_total", "Frames dropped, by reason", [*s, "reason"], registry=r
        )
        self.faces = Counter(
            P + "faces_total",
            "Tracked faces (people), each counted once per classifier by the first label it settles on "
            "(a new track from its 5th detection, or its end)",
            [*s, "label"],
            registry=r,
        )
        self.tracks = Counter(
            P + "tracks_total",
            "Distinct faces seen: new tracks past their 4th detection or ended, not merged into a "
            "remembered track; a resumed one is not counted again",
            s,
            registry=r,
        )
        self.tracks_active = Gauge(P + "tracks_active", "Face tracks shown now", s, registry=r)
        self.track_switches = Counter(
            P + "track_switches_total",
            "Tracks ended because the face they had come to lie on was someone else's (face descriptors)",
            s,
            registry=r,
        )
        self.tracks_resumed = Counter(
            P + "tracks_resumed_total",
            "Ended tracks taken up again: their face came back and was recognised (face descriptors)",
            s,
            registry=r,
        )
        self.scene_cuts = Counter(
            P + "scene_cuts_total",
            "Scene cuts (an edited clip's cuts, a camera switched) and frame-size changes: each ends "
            "the tracks it must and sends the next frame to the detector, looked at whole",
            s,
            registry=r,
        )
        self.events_dropped = Counter(
            P + "events_dropped_total", "Track events not delivered to a slow event client", s, registry=r
        )
        self.stage_seconds = Histogram(
            P + "stage_seconds",
            "Time per frame (or batch) in each stage",
            ["stage"],
            buckets=STAGE_BUCKETS,
            registry=r,
        )
        self.frame_latency = Histogram(
            P + "frame_latency_seconds",
            "Capture to send, per annotated frame",
            s,
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            P + "batch_size", "Items per model call", ["model"], buckets=BATCH_BUCKETS, registry=r
        )
        self.queue_depth = Gauge(P + "queue_depth", "Frames waiting for the detector", registry=r)
        self.detection_age = Gauge(
            P + "detection_age_seconds", "Age of the detections drawn on the latest frame", s, registry=r
        )
        self.output_delay = Gauge(
            P + "output_delay_seconds",
            "sync_output: how long the stream's frames are held for their detections (0: not held)",
            s,
            registry=r,
        )
        self.sync_released = Counter(
            P + "sync_released_total",
            "sync_output: frames that went out before their detection answered (held past sync_max_hold_s)",
            s,
            registry=r,
        )
        self.stream_up = Gauge(P + "stream_up", "1 while the source delivers frames", s, registry=r)
        self.source_reconnects = Counter(
            P + "source_reconnects_total", "Source reconnect attempts", s, registry=r
        )
        self.errors = Counter(P + "errors_total", "Errors, by kind", ["kind"], registry=r)
        self.detections = Counter(
            P + "detections_total", "Frames that went through the detector", s, registry=r
        )
        self.detect_pixels = Counter(
            P + "detect_pixels_total",
            "Detection work in detector pixels: regions at their scale (a HOG proposal scan at its "
            "cost, 1/6 a pixel), or the scaled whole frame",
            s,
            registry=r,
        )
        self.peers = Gauge(P + "webrtc_peers", "Open WebRTC peer connections", registry=r)
        self.mjpeg_viewers = Gauge(P + "mjpeg_viewers", "Open MJPEG viewer connections", registry=r)
        self.output_disconnects = Counter(
            P + "output_disconnects_total",
            "Clients that left an output, by reason: left (normal) or stalled (dropped, socket not drained)",
            ["output", "reason"],
            registry=r,
        )
        self.recognitions = Counter(
            P + "recognitions_total",
            "Looks at a face matched against the face library, by outcome: known (a person), unknown, "
            "uncertain (between the thresholds, or too near a second person), too_small",
            ["outcome"],
            registry=r,
        )
        for o in RECOGNITION_OUTCOMES:
            self.recognitions.labels(o)
        self.faces_learned = Counter(
            P + "faces_learned_total",
            "Faces of named people learned from their tracks (in memory, per stream: people/learned.py)",
            registry=r,
        )
        self.event_clients = Gauge(P + "event_clients", "Open event-stream (SSE) connections", registry=r)
        self.http_connections = Gauge(P + "http_connections", "Open HTTP connections", registry=r)
        self.http_closed = Counter(
            P + "http_connections_closed_total",
            "HTTP connections the service closed, by reason: header_timeout (a request not sent in time), "
            "idle, evicted (the oldest idle one, for a new one at max_connections), refused (at "
            "max_connections with none idle)",
            ["reason"],
            registry=r,
        )
        self.backend_up = Gauge(
            P + "inference_backend_up",
            "1 while this model server answers (backend triton)",
            ["url"],
            registry=r,
        )

        # the event history (streamer/history): store, MQTT, webhook
        self.events_written = Counter(
            P + "events_written_total", "Track records written to the event store", registry=r
        )
        self.event_store_errors = Counter(
            P + "event_store_errors_total", "Failed event store writes (each retry counts)", registry=r
        )
        self.event_snapshot_bytes = Gauge(
            P + "event_snapshot_bytes",
            "Bytes of face snapshots and thumbnails in the event store",
            registry=r,
        )
        self.event_sink_dropped = Counter(
            P + "event_sink_dropped_total",
            "Track events or records dropped: a sink's queue was full (store, mqtt, webhook)",
            ["sink"],
            registry=r,
        )
        self.event_sink_errors = Counter(
            P + "event_sink_errors_total",
            "Failed deliveries to an event sink (mqtt, webhook)",
            ["sink"],
            registry=r,
        )
        self.mqtt_up = Gauge(P + "mqtt_up", "1 while connected to the MQTT broker", registry=r)

    def forget_stream(self, stream: str) -> None:
        """Remove a deleted stream's labelled series so label sets stay bounded."""
        for m in (
            self.frames_in,
            self.frames_out,
            self.frame_latency,
            self.detection_age,
            self.output_delay,
            self.sync_released,
            self.stream_up,
            self.source_reconnects,
            self.detections,
            self.detect_pixels,
            self.tracks,
            self.tracks_active,
            self.track_switches,
            self.tracks_resumed,
            self.scene_cuts,
            self.events_dropped,
        ):
            with contextlib.suppress(KeyError):
                m.remove(stream)
        for m in (self.frames_dropped, self.faces):
            for labels in list(m._metrics):
                if labels[0] == stream:
                    m.remove(*labels)

    def render(self, max_age_s: float = 0.0) -> bytes:
        """The exposition text; with ``max_age_s``, the same text for that long (a scraper flood
        costs one rendering a second, not one per request)."""
        now = time.monotonic()
        cached = getattr(self, "_rendered", None)
        if cached is None or now - cached[0] >= max_age_s:
            cached = self._rendered = (now, generate_latest(self.registry))
        return cached[1]
