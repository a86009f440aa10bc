"""The Markdown summary of a run: headline against the goals, then one table per scenario."""

from __future__ import annotations

from typing import Any

from benchmarks.report import LIVE_COLUMNS, markdown_table


def _ms(v: float | None) -> str:
    return "" if v is None else f"{1000 * v:.0f} ms"


def headline(data: dict[str, Any]) -> list[dict[str, object]]:
    sc, rows = data["scenarios"], []
    b = sc.get("baseline")
    if b:
        s = b["service"]
        rows += [
            {"figure": "output FPS, one 30 fps stream", "goal (CPU)": ">= 29", "reached": s["output_fps"]},
            {
                "figure": "p95 capture-to-send latency (MJPEG, loopback)",
                "goal (CPU)": "<= 150 ms",
                "reached": _ms(s["latency_s"]["p95"]),
            },
            {
                "figure": "detections refreshed per second",
                "goal (CPU)": ">= 8 Hz",
                "reached": s["detections_per_s"],
            },
            {
                "figure": "age of the boxes drawn (capture of detected frame to capture of shown), p50 / p95",
                "goal (CPU)": "",
                "reached": f"{_ms(s['detection_age_s']['p50'])} / {_ms(s['detection_age_s']['p95'])}",
            },
            {
                "figure": "service / tutorial's sequential loop (dlib-bin), output FPS",
                "goal (CPU)": ">= 50x",
                "reached": f"{b['tutorial_output_fps_ratio']}x "
                f"({s['output_fps']} vs {(b['tutorial'] or b['baseline'])['output_fps']})",
            },
        ]
        if b["tutorial"]:
            rows.append(
                {
                    "figure": f"service / the same loop with {b['detector']}, output FPS",
                    "goal (CPU)": "",
                    "reached": f"{b['output_fps_ratio']}x "
                    f"({s['output_fps']} vs {b['baseline']['output_fps']})",
                }
            )
    w = sc.get("webrtc")
    if w:
        rows.append(
            {
                "figure": "p95 end-to-end latency through WebRTC (aiortc, loopback)",
                "goal (CPU)": "",
                "reached": _ms(w["e2e_latency_s"]["p95"]),
            }
        )
    sw = sc.get("sweeps")
    if sw and sw.get("streams"):
        rows.append(
            {
                "figure": f"concurrent streams at full rate, p95 <= {_ms(sw['latency_limit_s'])}",
                "goal (CPU)": "(GPU: >= 16, p95 <= 100 ms)",
                "reached": sw["max_realtime_streams"],
            }
        )
        for r in sw["streams"]:
            if r["streams"] in (8, 16):
                rows.append(
                    {
                        "figure": f"{r['streams']} streams: worst stream's output FPS; box recall / "
                        "mean IoU vs the true boxes",
                        "goal (CPU)": ">= 29; recall >= 0.97 x every-frame detection"
                        if r["streams"] == 16
                        else "",
                        "reached": f"{r['output_fps_min']}; {r.get('box_recall')} / {r.get('box_mean_iou')}",
                    }
                )
    if "rates" in sc:
        mean = {x["variant"]: x["mean"] for x in sc["rates"]["rows"]}
        rows.append(
            {
                "figure": "one stream's detections a second, classifiers on / off (proposals on; off: "
                f"{mean['no proposals']} / {mean['neither']})",
                "goal (CPU)": ">= 8 Hz with them on",
                "reached": f"{mean['defaults']} / {mean['no classifiers']}",
            }
        )
    return rows


def markdown(data: dict[str, Any], tag: str) -> str:
    sc, m = data["scenarios"], data["machine"]
    out = [
        f"# streamer benchmarks ({tag})\n",
        f"`{data['command']}` — {data['started_at']}, {data['duration_s']:.0f} s, detector "
        f"{data['options']['detector']}, video {data['options']['video']}\n",
        f"Machine: {m['cpu']}, {m['cores']} cores, GPU {m['gpu'] or 'none'}, Keras backend "
        f"{m['keras_backend']}, commit {m['git_commit']}.\n",
    ]
    out += [f"- Note: {n}" for n in data["notes"]]
    out += [f"- ERROR in {k}: {v}" for k, v in data["errors"].items()]
    out.append("\n## Headline\n")
    out.append(markdown_table(headline(data), ["figure", "goal (CPU)", "reached"]))
    if "baseline" in sc:
        b = sc["baseline"]
        rows = []
        loops = [(f"sequential loop ({b['baseline']['detector']})", b["baseline"])]
        if b["tutorial"]:
            loops.append(("tutorial's loop (dlib-bin)", b["tutorial"]))
        for name, r in (*loops, (f"service ({b['detector']})", b["service"])):
            rows.append({"": name, **r, **{f"latency {k}": _ms(v) for k, v in r["latency_s"].items()}})
        out.append("\n## 1. Sequential loop vs service (one stream, same models, same video)\n")
        out.append(markdown_table(rows, ["", *LIVE_COLUMNS]))
        out.append(
            f"\nOutput FPS ratio, service / loop with the same detector: **{b['output_fps_ratio']}x**"
            f" (service / tutorial's loop with dlib-bin: {b['tutorial_output_fps_ratio']}x); "
            f"p95 latency ratio (loop / service): {b['p95_latency_ratio']}x.\n"
        )
    if "stages" in sc:
        s = sc["stages"]
        out.append(
            f"\n## 2. Stage breakdown ({s['frames']} frames {s['resolution']}, "
            f"{s['faces_per_frame']} faces/frame, one frame at a time, in-process)\n"
        )
        rows = [
            {"stage": k, "ms/frame": v, "share": f"{s['share'][k]:.1%}"} for k, v in s["ms_per_frame"].items()
        ]
        rows.append({"stage": "total", "ms/frame": s["total_ms_per_frame"], "share": "100%"})
        out.append(markdown_table(rows, ["stage", "ms/frame", "share"]))
    if "sweeps" in sc:
        sw = sc["sweeps"]
        cols = [
            "streams",
            "input_fps",
            "output_fps",
            "output_fps_min",
            "drop_rate",
            "detections_per_s",
            "latency p50",
            "latency p95",
            "latency p99",
            "box age p95",
            "cpu_service_pct",
            "cpu_workers_pct",
        ]

        def lrows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return [
                {
                    **r,
                    **{f"latency {k}": _ms(v) for k, v in r.get("latency_s", {}).items()},
                    "box age p95": _ms(r.get("detection_age_s", {}).get("p95")),
                    "box age p50": _ms(r.get("detection_age_s", {}).get("p50")),
                    "box recall": r.get("box_recall"),
                    "box recall min": r.get("box_recall_min"),
                    "box mean IoU": r.get("box_mean_iou"),
                    "frames all boxed": r.get("frames_all_boxed"),
                }
                for r in rows
            ]

        out.append(
            f"\n## 3. Sweeps (per-stream figures; real time = worst stream >= 95% of "
            f"{sw['source_fps']} fps and p95 <= {_ms(sw['latency_limit_s'])})\n"
        )
        box_cols = ["box recall", "box recall min", "box mean IoU", "frames all boxed", "box age p50"]
        if sw.get("streams"):
            ref = sw["streams_every_frame_detection"]
            out.append(f"\n### Concurrent streams ({sw['streams_clip']})\n")
            stream_cols = [*cols, *box_cols, "output_vs_input", "realtime"]
            out.append(markdown_table(lrows(sw["streams"]), stream_cols))
            out.append(
                f"\nMost streams in real time: **{sw['max_realtime_streams']}**; first not: "
                f"{sw['first_not_realtime'] or 'none reached'}; sweep stopped at {sw['stopped_at']}. "
                "Box columns: the boxes drawn on each output frame against the true boxes from the camera "
                "path (matched one to one, found at IoU >= 0.5; mean IoU 0 where missed; frames all "
                "boxed = share of frames with every true face found). Detection on every frame "
                f"(every {ref['sampled_every']}th clip frame) gives recall {ref['box_recall']}, mean IoU "
                f"{ref['box_mean_iou']} against the same truth.\n"
            )
        for key, title, first in (
            ("max_batch", "Max batch size", ["max_batch", *cols]),
            ("resolution", "Input resolution (one stream)", ["resolution", *cols[1:]]),
            ("detector", "Detector (one stream, moving camera)", ["detector", *cols[1:], *box_cols]),
        ):
            if sw.get(key):
                out.append(f"\n### {title}\n")
                skipped = ["skipped"] if key == "detector" else []
                out.append(markdown_table(lrows(sw[key]), [*first, *skipped]))
    if "webrtc" in sc:
        w = sc["webrtc"]
        out.append(
            "\n## 4. Live latency through WebRTC (aiortc sender + receiver on loopback, stamped frames)\n"
        )
        rows = [
            {
                "path": "client send -> client receive (e2e)",
                **{k: _ms(v) for k, v in w["e2e_latency_s"].items()},
            },
            {
                "path": "service capture -> MJPEG receive",
                **{k: _ms(v) for k, v in w["service_capture_to_receive_s"].items()},
            },
        ]
        out.append(markdown_table(rows, ["path", "p50", "p95", "p99"]))
        out.append(
            f"\nSent {w['sent_fps']} fps, received {w['received_fps']} fps, stamps decoded "
            f"{w['decoded_share']:.1%}, detections {w['service_detections_per_s']}/s.\n"
        )
    if "classifier" in sc:
        c = sc["classifier"]
        out.append(f"\n## 5. Classifier throughput (Keras backend {c['backend']})\n")
        out.append(markdown_table(c["rows"], ["classifier", "input", "batch", "faces_per_s", "ms_per_batch"]))
    if "live" in sc:
        r = sc["live"]
        out.append(f"\n## The service alone ({r['streams']} x {r['video']}, one window)\n")
        row = {**r, **{f"latency {k}": _ms(v) for k, v in r["latency_s"].items()}}
        out.append(markdown_table([row], ["detector", "worker_nice", "streams", *LIVE_COLUMNS]))
    if "rates" in sc:
        r = sc["rates"]
        out.append(
            f"\n## What sets the detection rate (1 x {r['video']}, {r['rounds']} windows of "
            f"{r['seconds']:g} s each, the four in turn)\n"
        )
        cols = ["variant", "classifiers", "proposals", "detections_per_s", "mean", "vs_defaults"]
        out.append(markdown_table(r["rows"], [*cols, "output_fps", "cpu_workers_pct"]))
    if data.get("plots"):
        out.append("\nPlots: " + ", ".join(data["plots"]) + "\n")
    return "".join(x if x.endswith("\n") else x + "\n" for x in out)
