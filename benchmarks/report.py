"""Writing results: JSON with every figure and the machine, and a readable Markdown table."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
# the columns of one live measurement (see live.Service.measure), as every table shows them
LIVE_COLUMNS = (
    "input_fps",
    "output_fps",
    "drop_rate",
    "detections_per_s",
    "latency p50",
    "latency p95",
    "latency p99",
    "frames_measured",
)


def percentiles(values: Sequence[float], ps: Sequence[int] = (50, 95, 99)) -> dict[str, float | None]:
    if not values:
        return {f"p{p}": None for p in ps}
    arr = np.asarray(values, dtype=np.float64)
    return {f"p{p}": round(float(np.percentile(arr, p)), 4) for p in ps}


def markdown_table(rows: Sequence[dict[str, object]], columns: Sequence[str]) -> str:
    def cell(v: object) -> str:
        if isinstance(v, float):
            return f"{v:.3g}" if abs(v) < 100 else f"{v:.0f}"
        return "" if v is None else str(v)

    head = "| " + " | ".join(columns) + " |\n|" + "|".join("---" for _ in columns) + "|\n"
    return head + "".join("| " + " | ".join(cell(r.get(c)) for c in columns) + " |\n" for r in rows)


def write(
    name: str, data: dict[str, object], markdown: str, out_dir: Path | None = None
) -> tuple[Path, Path]:
    out = out_dir or RESULTS
    out.mkdir(parents=True, exist_ok=True)
    js, md = out / f"{name}.json", out / f"{name}.md"
    js.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
    md.write_text(markdown)
    return js, md
