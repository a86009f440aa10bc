"""Writing results: JSON with every figure and the machine, and a readable Markdown table.

Every scenario writes ``<scenario>-<machine>.json`` and ``.md`` into ``benchmarks/results`` (or
``--out DIR``; ``--name STEM`` for another file stem), and prints the Markdown; progress goes to
stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.machine import machine_info, machine_tag

RESULTS = Path(__file__).resolve().parent / "results"
_T0 = time.monotonic()
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


def progress(msg: str, end: str = "\n") -> None:
    """One line of progress on stderr, with the elapsed time."""
    print(f"[{time.monotonic() - _T0:6.1f}s] {msg}", file=sys.stderr, end=end, flush=True)


def parser(scenario: str, doc: str | None) -> argparse.ArgumentParser:
    """The command line of ``python -m benchmarks SCENARIO``, its help the module's docstring."""
    return argparse.ArgumentParser(
        prog=f"python -m benchmarks {scenario}",
        description=doc,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def results_dir(value: str) -> Path:
    """An ``--out`` folder, made now and checked writable: a run that could not save its results
    says so before it runs (minutes of measuring lost, otherwise)."""
    path = Path(value)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise argparse.ArgumentTypeError(f"{value}: cannot make the folder ({e.strerror or e})") from None
    if not os.access(path, os.W_OK):
        raise argparse.ArgumentTypeError(f"{value}: the folder is not writable")
    return path


def input_file(value: str) -> str:
    """A ``--clip``/``--labels`` file that must exist ("" stays "": none given)."""
    if value and not Path(value).is_file():
        raise argparse.ArgumentTypeError(f"{value}: no such file")
    return value


def input_path(value: str) -> Path:
    """A ``--video`` file that must exist, as a Path."""
    return Path(input_file(value))


def output_args(ap: argparse.ArgumentParser, stem: str) -> None:
    """``--out DIR`` and ``--name STEM``: where a scenario writes its JSON and Markdown."""
    ap.add_argument(
        "--out", type=results_dir, default=RESULTS, help="results folder (default benchmarks/results)"
    )
    ap.add_argument("--name", default=None, help=f"results file stem (default {stem}-<machine>)")


def command(scenario: str, argv: Sequence[str] | None) -> str:
    """The command line that ran ``scenario`` with ``argv``, as results files record it."""
    args = sys.argv[1:] if argv is None else [scenario, *argv]
    return "python -m benchmarks " + " ".join(args)


def run_record(scenario: str, argv: Sequence[str] | None) -> dict[str, Any]:
    """What every results file starts with: the scenario, its command, the machine, the time."""
    return {
        "benchmark": scenario,
        "command": command(scenario, argv),
        "machine": machine_info(),
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def save(args: argparse.Namespace, stem: str, data: dict[str, Any], markdown: str) -> tuple[Path, Path]:
    """Write ``<--name or stem-machine>.json`` and ``.md`` into ``--out``, print the Markdown."""
    js, md = write(args.name or f"{stem}-{machine_tag()}", data, markdown, args.out)
    print(markdown)
    progress(f"wrote {js} and {md}")
    return js, md
