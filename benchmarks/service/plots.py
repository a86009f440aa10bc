"""PNG plots of a run: FPS vs concurrent streams, latency CDF, stage breakdown (matplotlib, Agg)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np


def fps_vs_streams(sweeps: dict[str, Any], path: Path, title: str) -> Path:
    rows = sweeps["streams"]
    n = [r["streams"] for r in rows]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(n, [r["output_fps"] for r in rows], "o-", label="output FPS per stream (mean)")
    ax.plot(n, [r["output_fps_min"] for r in rows], "s--", label="output FPS per stream (worst)")
    ax.plot(n, [r["detections_per_s"] for r in rows], "^-", label="detections/s per stream")
    ax.axhline(sweeps["source_fps"], color="grey", lw=0.8, label="source FPS")
    ax.set_xscale("log", base=2)
    ax.set_xticks(n, [str(x) for x in n])
    ax.set_xlabel("concurrent streams")
    ax.set_ylabel("frames per second")
    return _finish(fig, ax, path, title)


def latency_cdf(series: dict[str, list[float]], path: Path, title: str) -> Path:
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, values in series.items():
        if not values:
            continue
        v = np.sort(np.asarray(values)) * 1000
        ax.plot(v, np.arange(1, len(v) + 1) / len(v), label=f"{name} (n={len(v)})")
    ax.set_xscale("log")
    ax.set_xlabel("latency or age (ms, log scale)")
    ax.set_ylabel("fraction of frames")
    for p in (0.5, 0.95, 0.99):
        ax.axhline(p, color="grey", lw=0.5)
    return _finish(fig, ax, path, title)


def stage_breakdown(stages: dict[str, Any], path: Path, title: str) -> Path:
    ms = stages["ms_per_frame"]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    names = list(ms)
    bars = ax.barh(names, [ms[k] for k in names])
    for b, k in zip(bars, names, strict=True):
        ax.text(
            b.get_width(),
            b.get_y() + b.get_height() / 2,
            f" {ms[k]:.1f} ms ({stages['share'][k]:.0%})",
            va="center",
            fontsize=8,
        )
    ax.set_xscale("log")
    ax.set_xlabel("ms per frame (log scale)")
    ax.invert_yaxis()
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _finish(fig, ax, path: Path, title: str) -> Path:
    """Title, legend, layout, write the PNG, free the figure."""
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
