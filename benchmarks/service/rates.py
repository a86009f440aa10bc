"""The ``rates`` part: what sets one stream's detection rate. The service on --video with its
defaults, without its classifiers, without HOG's proposals (``pipeline.propose``), and without
either, each over one measuring window; the four in turn, ``rounds`` times, so that the machine's
noise falls on each alike (issue #30's goal: with the classifiers on, detections stay >= 8 Hz).
"""

from __future__ import annotations

import asyncio
import statistics
from typing import Any

from benchmarks.report import progress
from benchmarks.service import harness
from benchmarks.service.options import Options

# (name, classifiers on, proposals on)
VARIANTS = (
    ("defaults", True, True),
    ("no classifiers", False, True),
    ("no proposals", True, False),
    ("neither", False, False),
)


async def _window(opts: Options, classifiers: bool, propose: bool) -> dict[str, Any]:
    return await harness.run_options(opts, 1, None if classifiers else [], {"propose": propose})


def run(opts: Options, rounds: int = 2) -> dict[str, Any]:
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name, *_ in VARIANTS}
    for r in range(rounds):
        for name, classifiers, propose in VARIANTS:
            progress(f"round {r + 1}/{rounds}: {name}")
            m = asyncio.run(_window(opts, classifiers, propose))
            keep = ("detections_per_s", "output_fps", "cpu_service_pct", "cpu_workers_pct")
            runs[name].append({k: m[k] for k in keep})
    base = statistics.mean(x["detections_per_s"] for x in runs["defaults"])
    rows = []
    for name, classifiers, propose in VARIANTS:
        rate = [x["detections_per_s"] for x in runs[name]]
        mean = statistics.mean(rate)
        rows.append(
            {
                "variant": name,
                "classifiers": "on" if classifiers else "off",
                "proposals": "on" if propose else "off",
                "detections_per_s": " / ".join(f"{x:.2f}" for x in rate),
                "mean": round(mean, 2),
                "vs_defaults": round(mean / base, 2) if base else None,
                "output_fps": round(statistics.mean(x["output_fps"] for x in runs[name]), 1),
                "cpu_workers_pct": round(statistics.mean(x["cpu_workers_pct"] for x in runs[name])),
            }
        )
    return {"video": opts.video.name, "rounds": rounds, "seconds": opts.seconds, "rows": rows, "runs": runs}
