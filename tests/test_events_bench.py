"""benchmarks/events.py (`python -m benchmarks events`) on a tiny run, so it cannot rot: its JSON has
every figure, and the Markdown says them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def test_events_store_benchmark_writes_json_and_markdown(tmp_path: Path) -> None:
    from benchmarks.events import main

    argv = [
        "--out",
        str(tmp_path),
        "--name",
        "events",
        "--events",
        "600",
        "--requests",
        "2",
        "--seconds",
        "0.3",
        "--repeats",
        "1",
    ]
    assert main(argv) == 0
    r = json.loads((tmp_path / "events.json").read_text())
    assert r["events"] == 600 and r["database"] == "sqlite"
    assert len(r["queries"]) == 8 and all(v["p95_ms"] > 0 for v in r["queries"].values())
    assert r["snapshot_bytes"]["faces_measured"] >= 1 and r["snapshot_bytes"]["face"] > 500
    assert set(r["retention"]["rates"]) == {"typical", "busy"}
    assert r["loop_delay"]["with store"]["records_written"] > 0
    assert r["loop_delay"]["without store"]["records_written"] == 0
    md = (tmp_path / "events.md").read_text()
    assert "label=female" in md and "24 h fit" in md and "with store" in md
