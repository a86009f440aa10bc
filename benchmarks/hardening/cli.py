"""Hostile input at the real service on loopback (issue 34): what each attack costs it now.

Parts (``--parts``, all three by default):

- ``flood``: `streamer serve` with its file limit lowered, flooded by event-stream clients that
  never read, half-sent requests and silent connections: the slowest answer of /healthz, /streams
  and /metrics meanwhile, the service's files, how much its log grows, tracebacks (about 30 s;
  ``--nofile``, ``--sse``, ``--half``, ``--bare``, ``--hold``).
- ``web``: a camera URL forging a log line, ``#`` in a password, 250 KB camera URLs, 300 wrong
  tokens, ``?token=`` on POST and DELETE, an MJPEG viewer while /metrics is fetched back to back
  (about 1.5 min).
- ``sources``: a 16000x16000 MJPEG camera, a good camera behind cameras that stall after the
  pre-check (HTTP, RTSP), 24 add/delete cycles of a stalled camera (about 3 min; ``--skip-huge``).

    python -m benchmarks hardening [--parts flood,web,sources] [--out DIR] [--name STEM]

Writes hardening-<machine>.json (every figure) and .md (attack, figure now, limit) into
benchmarks/results (or --out DIR). Loopback only; bounded connections and time.

Before/after: the "before" figures come from this same scenario run against the code before the
fixes: that checkout's ``streamer`` first on PYTHONPATH (the flood and web parts' service is a child
process and inherits it; the sources part uses only the HTTP API), run from outside the checkout
(``python -m`` puts the working directory first on sys.path), its results written elsewhere:

    mkdir -p /tmp/old && git archive 3e2942b streamer | tar -x -C /tmp/old
    cd /tmp && PYTHONPATH=/tmp/old:/path/to/repo python -m benchmarks hardening --out /tmp/old-results

(``--skip-huge`` leaves out the 16000x16000 camera, which takes GBs of memory on old code.)
"""

from __future__ import annotations

import importlib
from typing import Any

from benchmarks.report import markdown_table, output_args, parser, progress, run_record, save

PARTS = ("flood", "web", "sources")
TITLES = {
    "flood": "Connection flood under a lowered file limit (issue 34, item 1)",
    "web": "Hostile requests (issue 34, web items 5, 7, 9, 11)",
    "sources": "Hostile cameras (issue 34, sources)",
}


def part(name: str) -> Any:
    return importlib.import_module(f"benchmarks.hardening.{name}")


def markdown(data: dict[str, Any]) -> str:
    machine = data["machine"]
    lines = [
        "# Hardening probes (issue 34)",
        "",
        f"`{data['command']}`, {data['started_at']}, commit {machine.get('git_commit')}, "
        f"{machine.get('cores', '?')} cores ({machine.get('cpu')}).",
        "",
    ]
    for name in data["parts"]:
        rows = [
            {"attack": r["attack"], "figure now": r["now"], "limit": r["limit"]}
            for r in part(name).rows(data[name])
        ]
        lines += [f"## {TITLES[name]}", "", markdown_table(rows, ("attack", "figure now", "limit"))]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = parser("hardening", __doc__)
    ap.add_argument("--parts", default=",".join(PARTS), help="comma-separated, of " + ", ".join(PARTS))
    part("flood").options(ap)
    ap.add_argument_group("sources").add_argument(
        "--skip-huge", action="store_true", help="leave out the 16000x16000 camera (GBs on old code)"
    )
    output_args(ap, "hardening")
    args = ap.parse_args(argv)
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    if unknown := sorted(set(parts) - set(PARTS)):
        ap.error(f"unknown parts {unknown}; choose from {', '.join(PARTS)}")
    data: dict[str, Any] = run_record("hardening", argv) | {"parts": parts}
    for name in parts:
        progress(f"part {name}")
        data[name] = part(name).run(args)
    save(args, "hardening", data, markdown(data))
    return 0
